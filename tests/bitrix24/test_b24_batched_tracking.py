"""Batched Bitrix24 checks against the fake portal: many open tasks per request, the same outcomes as one
by one, a deletion still verified, and through the broker a few requests where one per task was spent."""

from __future__ import annotations

import pytest
from b24_helpers import client_for, inject, new_task
from broker_queues import serve_system, wait_for
from test_b24_handler import CONTEXT, handler_for, make_task
from test_b24_tracker import PERSON, QUESTION, enum_id, finish, person

from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator.base import BpmnErrorOutcome, Done, StillOpen
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.ratelimit import LeakyBucket
from exchanger.systems.bitrix24.tracker import Bitrix24Tracker
from exchanger_sandbox.bitrix24.server import PortalServer


def open_records(portal: PortalServer, count: int, **task_fields: str) -> list[SentRecord]:
    """``count`` open tasks on the portal and the tracking records a handler would have published."""
    records = []
    for n in range(count):
        task = make_task(f"batch-{n}", task_fields or None, process_instance_id=f"pi-{n}")
        fields = {"RESPONSIBLE_ID": PERSON, "UF_CAMUNDA_ID_EXTERNAL_TASK": task.task_id}
        if task_fields:
            fields["UF_RESULT_EXPECTED"] = "Y"
        created = new_task(portal.webhook_url, **fields)
        records.append(SentRecord(task=task, item=ExternalItem(system="bitrix24", id=str(created["id"]))))
    return records


def requests_of(portal: PortalServer) -> int:
    with portal.portal.lock:
        return portal.portal.requests


def test_one_request_answers_for_120_open_tasks_and_the_done_ones_cost_one_more(
        client: Bitrix24Client, portal: PortalServer) -> None:
    records = open_records(portal, 120, **QUESTION)
    finish(portal, records[7], answer="ok", result="Signed")
    finish(portal, records[64], answer="no")
    person(portal, "tasks.task.start", {"taskId": int(records[99].item.id)})
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    tracker.answer_xml_id("0")  # the answer field's values, read once and cached
    before = requests_of(portal)
    results = tracker.track_many(records)
    assert requests_of(portal) - before == 2  # one batch of three tasks.task.list, one batch of result lists
    done = {n: r for n, r in enumerate(results) if isinstance(r, Done)}
    assert set(done) == {7, 64}
    assert done[7].variables["Activity_Approve"] == "ok" and done[7].variables["bitrix_result"] == "Signed"
    assert done[64].variables["Activity_Approve"] == "no" and done[64].variables["bitrix_closed_by"] == PERSON
    assert results[99] == StillOpen(note="status 3 (in progress)")
    assert all(isinstance(r, StillOpen) for n, r in enumerate(results) if n not in (7, 64))
    single = tracker.check(records[7])
    assert isinstance(single, Done) and single.variables == done[7].variables  # the same answer as alone
    assert tracker.get_stats()["checks"] == 120 and tracker.get_stats()["done"] == 2


def test_a_task_missing_from_the_list_is_checked_alone_and_only_a_verified_deletion_takes_the_error_path(
        client: Bitrix24Client, portal: PortalServer) -> None:
    records = open_records(portal, 5)
    person(portal, "tasks.task.delete", {"taskId": int(records[2].item.id)})
    results = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client).track_many(records)
    assert isinstance(results[2], BpmnErrorOutcome) and results[2].code == "BITRIX_TASK_DELETED"
    assert [type(r) for n, r in enumerate(results) if n != 2] == [StillOpen] * 4


def test_a_failed_batch_is_each_records_error(client: Bitrix24Client, portal: PortalServer) -> None:
    records = open_records(portal, 3)
    inject(portal, status=401, count=10, body={"error": "NO_AUTH_FOUND", "error_description": "Wrong auth"})
    results = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client).track_many(records)
    assert len(results) == 3 and all(isinstance(r, Exception) for r in results)


def test_through_the_broker_60_open_tasks_cost_a_few_requests_per_round(
        portal: PortalServer, rabbit_settings, topology, queues) -> None:
    client = client_for(portal, check_interval_s=0.3)
    records = open_records(portal, 60)
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    with serve_system(rabbit_settings, topology, handler_for(client), tracker, check_batch_window_s=0.5):
        before = requests_of(portal)
        for record in records:
            queues.publish_raw("bitrix24.sent.queue", record.to_bytes(), correlation_id=record.task.task_id)
        wait_for(lambda: tracker.get_stats().get("checks", 0) >= 60, what="the first round")
        first_round = requests_of(portal) - before
        for record in records[:5]:
            person(portal, "tasks.task.complete", {"taskId": int(record.item.id)})
        responses = queues.responses(5, timeout_s=20)
    assert sorted(r.task_id for r in responses) == sorted(r.task.task_id for r in records[:5])
    assert first_round <= 4, first_round  # one tasks.task.get per task would be 60
    assert tracker.get_stats()["batched_calls"] >= 1


def test_reads_leave_slots_to_writes() -> None:
    now = [0.0]
    bucket = LeakyBucket(rate_per_s=2, burst=20, clock=lambda: now[0])
    reads = sum(1 for _ in range(30) if bucket.try_take(reserve=10) == 0)
    writes = sum(1 for _ in range(30) if bucket.try_take() == 0)
    assert (reads, writes) == (10, 10)
    now[0] += 1.0  # two slots drained: a read still waits, a write goes
    assert bucket.try_take(reserve=10) > 0 and bucket.try_take() == 0


@pytest.mark.parametrize("answer", ["ok"])
def test_the_answer_enum_is_mapped_in_a_batch_as_alone(client: Bitrix24Client, portal: PortalServer,
                                                       answer: str) -> None:
    records = open_records(portal, 2, **QUESTION)
    person(portal, "tasks.task.update", {"taskId": int(records[0].item.id),
                                         "fields": {"UF_RESULT_ANSWER": enum_id(portal, answer)}})
    person(portal, "tasks.task.complete", {"taskId": int(records[0].item.id)})
    results = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client).track_many(records)
    assert isinstance(results[0], Done) and results[0].variables["Activity_Approve"] == answer


def test_a_malformed_item_id_in_a_batch_is_that_records_error_only(client: Bitrix24Client,
                                                                    portal: PortalServer) -> None:
    records = open_records(portal, 3)
    bad = SentRecord(task=make_task("bad-id"), item=ExternalItem(system="bitrix24", id="../../crm.deal.add"))
    results = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client).track_many([*records, bad])
    assert [type(r) for r in results[:3]] == [StillOpen] * 3
    assert isinstance(results[3], Exception)
