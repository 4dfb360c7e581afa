"""Work items, trackers and queue retries at the queue boundary (real broker)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from creator_testkit import (
    ItemStore,
    ScriptedHandler,
    SecondCheckTracker,
    StoreHandler,
    StoreTracker,
    context,
    make_task,
)

from exchanger.amqp.publisher import ATTEMPT_HEADER
from exchanger.contracts import SCHEMA_HEADER, ExternalItem, ResponseStatus, SentRecord
from exchanger.creator.base import Done
from exchanger.errors import PermanentError, RateLimited, TransientError
from exchanger.variables import from_typed_map


def test_an_item_still_open_is_checked_again_after_its_interval_and_completes_when_done(
        start_service, queues, tmp_path):
    store = ItemStore(tmp_path / "items")
    handler = StoreHandler(context("1c"), store=store)
    tracker = StoreTracker(context("1c"), store=store, interval_s=1.0)
    start_service(handlers={"1c.queue": handler}, trackers={"1c.sent.queue": tracker})
    queues.publish_task(make_task("k1", "1c_create_document", "1c"))
    deadline = time.monotonic() + 10
    while tracker.checks["k1"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tracker.checks["k1"] >= 2, "the open item was not checked again"
    assert queues.depth("camunda.responses.queue") == 0
    store.finish("k1", approved=True)
    (response,) = queues.responses(timeout_s=5)
    assert response.status == ResponseStatus.COMPLETE and response.task_id == "k1"
    assert from_typed_map(response.variables)["item_result"] == {"approved": True}
    assert response.item is not None and response.item.id == "item-k1" and response.item.system == "1c"
    assert store.count() == 1 and handler.get_stats()["created_items"] == 1


def test_the_first_check_waits_for_the_interval(start_service, queues, tmp_path):
    store = ItemStore(tmp_path / "items")
    tracker = StoreTracker(context("1c"), store=store, interval_s=2.0)
    store.create("k2")
    store.finish("k2")
    start_service(handlers={"1c.queue": StoreHandler(context("1c"), store=store)},
                  trackers={"1c.sent.queue": tracker})
    started = time.monotonic()
    queues.publish_task(make_task("k2", "1c_create_document", "1c"))  # finds the existing item, tracks it
    (response,) = queues.responses(timeout_s=8)
    assert time.monotonic() - started >= 1.9
    assert response.status == ResponseStatus.COMPLETE and tracker.checks["k2"] == 1


def test_two_thousand_items_tracked_at_once_are_all_rechecked_and_completed(start_service, queues):
    tracker = SecondCheckTracker(context("openproject"), interval_s=1.0)
    start_service(trackers={"openproject.sent.queue": tracker}, prefetch={"openproject.sent.queue": 50})
    n = 2000
    for i in range(n):
        record = SentRecord(task=make_task(f"bulk-{i}", "op_create_task", "openproject"),
                            item=ExternalItem(system="openproject", id=str(i)))
        queues.publisher.publish("", "openproject.sent.queue", record.to_bytes(),
                                 headers={SCHEMA_HEADER: SentRecord.SCHEMA}, correlation_id=record.task.task_id)
    responses = queues.responses(n, timeout_s=60)
    assert {r.task_id for r in responses} == {f"bulk-{i}" for i in range(n)}
    assert all(r.status == ResponseStatus.COMPLETE for r in responses)
    assert len(tracker.checks) == n and set(tracker.checks.values()) == {2}
    assert tracker.get_stats()["still_open"] == n and tracker.get_stats()["done"] == n


def test_tracking_stops_after_the_maximum_age_with_a_clear_incident(start_service, queues):
    tracker = SecondCheckTracker(context("openproject"), interval_s=1.0)
    start_service(trackers={"openproject.sent.queue": tracker}, max_tracking_age_s=3600)
    old = datetime.now(UTC) - timedelta(hours=2)
    record = SentRecord(task=make_task("old-1", "op_create_task", "openproject"),
                        item=ExternalItem(system="openproject", id="77", url="http://op/wp/77", created_at=old))
    queues.publisher.publish("", "openproject.sent.queue", record.to_bytes(), correlation_id="old-1")
    (response,) = queues.responses()
    assert response.status == ResponseStatus.FAILURE and response.retries == 0
    assert "openproject item 77 http://op/wp/77 is still open after 2.0 h" in response.error_message
    assert "CREATOR_MAX_TRACKING_AGE_S=3600" in response.error_message
    (parked,) = queues.parked()
    assert parked.error_type == "TrackingTimeout" and parked.source_queue == "openproject.sent.queue"


def _transient_twice(task, n):
    if n <= 2:
        raise TransientError(f"503 on call {n}", status=503)
    return Done(variables={"calls": n})


def _always_transient(task, n):
    raise RateLimited("QUERY_LIMIT_EXCEEDED", retry_after_s=0.5)


def _permanent(task, n):
    raise PermanentError("ACCESS_DENIED: the webhook may not create tasks", status=403)


def test_transient_errors_are_retried_after_the_policy_delays_with_the_attempt_count(start_service, queues):
    handler = ScriptedHandler(context("bitrix24", tracked=False), script={"flaky": _transient_twice})
    start_service(handlers={"bitrix24.queue": handler})
    task = make_task("r1", "flaky", "bitrix24")
    task.bpmn_metadata.extension_properties["retryConfig"] = "PT1S,PT2S"
    queues.publish_task(task)
    (response,) = queues.responses(timeout_s=15)
    assert response.status == ResponseStatus.COMPLETE and from_typed_map(response.variables) == {"calls": 3}
    t1, t2, t3 = handler.call_times["r1"]
    assert 0.9 <= t2 - t1 < 3.0, t2 - t1
    assert 1.9 <= t3 - t2 < 4.0, t3 - t2


def test_exhausted_retries_become_a_failure_with_retries_0_and_a_parked_copy(start_service, queues):
    handler = ScriptedHandler(context("bitrix24", tracked=False), script={"limited": _always_transient})
    start_service(handlers={"bitrix24.queue": handler}, retry_config="R2/PT1S")
    queues.publish_task(make_task("r2", "limited", "bitrix24"))
    (response,) = queues.responses(timeout_s=15)
    assert response.status == ResponseStatus.FAILURE and response.retries == 0
    assert response.error_message.startswith("gave up after 3 attempt(s) (CREATOR_RETRY_CONFIG)")
    assert "RateLimited: QUERY_LIMIT_EXCEEDED" in response.error_message
    assert handler.calls["r2"] == 3
    (parked,) = queues.parked()
    assert parked.attempts == 3 and parked.headers[ATTEMPT_HEADER] == 3 and parked.error_type == "RateLimited"


def test_a_permanent_error_is_an_incident_at_once(start_service, queues):
    handler = ScriptedHandler(context("bitrix24", tracked=False), script={"denied": _permanent})
    start_service(handlers={"bitrix24.queue": handler})
    queues.publish_task(make_task("r3", "denied", "bitrix24"))
    (response,) = queues.responses()
    assert response.status == ResponseStatus.FAILURE and response.retries == 0
    assert response.error_message == "ACCESS_DENIED: the webhook may not create tasks"
    assert handler.calls["r3"] == 1
    assert queues.parked()[0].error_type == "PermanentError"


def test_a_redelivered_task_whose_item_exists_is_not_created_twice(start_service, queues, tmp_path):
    """In-process variant of the crash test: the first handler dies after creating, before the ack."""
    store = ItemStore(tmp_path / "items")

    class DiesAfterCreate(StoreHandler):
        def create(self, task):
            outcome = super().create(task)
            raise SystemExit("killed after creating")  # the worker thread ends; no ack is sent
            return outcome

    first = start_service(handlers={"1c.queue": DiesAfterCreate(context("1c"), store=store)})
    queues.publish_task(make_task("d1", "1c_create_document", "1c"))
    deadline = time.monotonic() + 10
    while store.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.stop()  # closes the connection: the unacked task goes back to the queue
    handler = StoreHandler(context("1c"), store=store)
    tracker = StoreTracker(context("1c"), store=store, interval_s=1.0)
    store.finish("d1")
    start_service(handlers={"1c.queue": handler}, trackers={"1c.sent.queue": tracker})
    (response,) = queues.responses()
    assert response.status == ResponseStatus.COMPLETE and response.item.id == "item-d1"
    assert store.count() == 1 and handler.get_stats() == {"total_messages": 1, "found_existing": 1}
