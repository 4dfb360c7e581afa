"""Checks of many tracking records in one call to the system, without giving up ack-after-effect.

The consumer of ``<system>.sent.queue`` runs each delivery in a thread of its own (up to its prefetch).
Each of those threads hands its record to one :class:`CheckBatcher` and blocks; the batcher lets the
first record of a window wait up to ``window_s`` for others (or until ``max_batch`` are there), then
one thread runs the tracker's :meth:`~exchanger.creator.base.BaseTracker.check_batch` for all of them
and every thread goes on with its own result: publishes its response or re-check, then acks its own
message. A crash in between loses nothing: unacked records are redelivered and checked again.

So 1,000 open Bitrix24 tasks cost a few requests per round instead of 1,000 ``tasks.task.get``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from exchanger.contracts import SentRecord
from exchanger.creator.base import TrackerOutcome

DEFAULT_WINDOW_S = 1.0  # how long the first record of a batch waits for others to arrive

CheckResult = TrackerOutcome | Exception
BatchCheck = Callable[[Sequence[SentRecord]], list[CheckResult]]


class CheckBatcher:
    """Collects records from many threads into calls of ``check_batch`` (at most ``max_batch`` records).

    ``window_s``: the longest a record waits for company before its batch is checked.
    """

    def __init__(self, check_batch: BatchCheck, *, max_batch: int, window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._check_batch = check_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self._clock = clock
        self._pending: list[tuple[SentRecord, Future[CheckResult]]] = []
        self._cond = threading.Condition()
        self.batches = 0  # calls made (for stats and tests)

    def check(self, record: SentRecord) -> TrackerOutcome:
        """The tracker's answer for ``record``, checked together with the records of other threads.

        Returns the outcome or raises what the check raised for this record.
        """
        future: Future[CheckResult] = Future()
        batch = self._join(record, future)
        if batch:
            self._run(batch)
        result = future.result()
        if isinstance(result, Exception):
            raise result
        return result

    def _join(self, record: SentRecord, future: Future[CheckResult]) -> list[tuple[SentRecord, Future[CheckResult]]]:
        """Queue ``record``; return the batch this thread must check (empty: another thread checks it)."""
        with self._cond:
            self._pending.append((record, future))
            if len(self._pending) >= self.max_batch:
                return self._take()
            if len(self._pending) > 1:
                return []  # the first record's thread leads this window
            deadline = self._clock() + self.window_s
            while self._leads(future) and len(self._pending) < self.max_batch:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take() if self._leads(future) else []

    def _leads(self, future: Future[CheckResult]) -> bool:
        return bool(self._pending) and self._pending[0][1] is future

    def _take(self) -> list[tuple[SentRecord, Future[CheckResult]]]:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._cond.notify_all()  # a waiting leader whose record was taken stops leading
        return batch

    def _run(self, batch: list[tuple[SentRecord, Future[CheckResult]]]) -> None:
        self.batches += 1
        try:
            results = self._check_batch([record for record, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"check_batch answered {len(results)} results for {len(batch)} records (a bug)")
        except Exception as exc:  # noqa: BLE001 - every record of the batch takes the error path
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
