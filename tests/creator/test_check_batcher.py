"""CheckBatcher: records of many consumer threads are checked in one call, each thread gets its own answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from creator_testkit import make_task

from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator.base import Done, StillOpen, TrackerOutcome
from exchanger.creator.batching import CheckBatcher
from exchanger.errors import TransientError


def record(n: int) -> SentRecord:
    return SentRecord(task=make_task(f"t-{n}", "topic", "sys"), item=ExternalItem(system="sys", id=str(n)))


class Recorder:
    """A check_batch that answers Done for even ids, StillOpen for odd ones, and remembers its calls."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, records: Sequence[SentRecord]) -> list[TrackerOutcome | Exception]:
        with self.lock:
            self.calls.append([r.item.id for r in records])
        if self.fail:
            raise self.fail
        return [Done() if int(r.item.id) % 2 == 0 else StillOpen() for r in records]


def check_all(batcher: CheckBatcher, count: int) -> list[TrackerOutcome | Exception]:
    def one(n: int) -> TrackerOutcome | Exception:
        try:
            return batcher.check(record(n))
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_records_of_many_threads_are_checked_in_full_batches_and_each_gets_its_own_answer() -> None:
    recorder = Recorder()
    batcher = CheckBatcher(recorder, max_batch=25, window_s=5.0)
    started = time.monotonic()
    results = check_all(batcher, 100)
    assert time.monotonic() - started < 4.0  # full batches go at once, nobody waits for the window
    assert [type(r) for r in results] == [Done if n % 2 == 0 else StillOpen for n in range(100)]
    assert sorted(len(call) for call in recorder.calls) == [25, 25, 25, 25]
    assert sorted(int(i) for call in recorder.calls for i in call) == list(range(100))


def test_a_lone_record_is_checked_after_the_window() -> None:
    recorder = Recorder()
    batcher = CheckBatcher(recorder, max_batch=50, window_s=0.3)
    started = time.monotonic()
    assert isinstance(batcher.check(record(2)), Done)
    assert 0.25 <= time.monotonic() - started < 2.0
    assert recorder.calls == [["2"]]


def test_a_failed_batch_call_is_every_records_error() -> None:
    batcher = CheckBatcher(Recorder(fail=TransientError("portal away")), max_batch=10, window_s=0.2)
    results = check_all(batcher, 10)
    assert all(isinstance(r, TransientError) for r in results)


def test_an_answer_of_the_wrong_length_is_an_error_not_a_misattributed_result() -> None:
    batcher = CheckBatcher(lambda records: [Done()], max_batch=3, window_s=0.2)
    results = check_all(batcher, 3)
    assert all(isinstance(r, RuntimeError) for r in results)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CheckBatcher(Recorder(), max_batch=0)
