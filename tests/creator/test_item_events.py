"""Pushed events and change sweeps over the real broker and a real HTTP receiver, with a store-backed system.

The common part every system's events use: the receiver authenticates through the tracker, item ids go
through ``<system>.events.queue``, a finished item is answered once, and its tracking record, when it
comes back, ends without a second response.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from broker_queues import Queues, StartService, start_creator, wait_for
from creator_testkit import ItemStore, StoreHandler, StoreTracker, context, make_task
from worker_proxy import TcpProxy

from exchanger.amqp.topology import Topology
from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator.base import Changes, Done, EventRefused, Finished, SystemContext
from exchanger.creator.event_receiver import EventReceiver
from exchanger.creator.service import CreatorService
from exchanger.settings import RabbitMQSettings

StartReceiver = Callable[["EventStoreTracker"], EventReceiver]
SYSTEM = "1c"  # a system of the default routing table; its queues exist
TOKEN = "s3cret-token"


class EventStoreTracker(StoreTracker):
    """The store's tracker that also takes events (JSON ``{"token", "items"}``) and sweeps (``changed``)."""

    def __init__(self, context: SystemContext, *, store: ItemStore, interval_s: float, sweep_s: float = 0.0) -> None:
        super().__init__(context, store=store, interval_s=interval_s)
        self.sweep_interval_s = sweep_s
        self.changed: list[str] = []  # item ids the next sweep lists
        self.finished_calls: list[list[str]] = []
        self.failing_reads = 0  # the next reads that fail (the system away a moment)

    def parse_event(self, headers: Mapping[str, str], body: bytes) -> list[str]:
        call = json.loads(body)
        if call.get("token") != TOKEN:
            raise EventRefused("wrong token")
        return [str(item) for item in call["items"]]

    def finished(self, item_ids: Sequence[str]) -> list[Finished]:
        self.finished_calls.append(list(item_ids))
        if self.failing_reads:
            self.failing_reads -= 1
            raise ConnectionError("the system is away a moment")
        found = []
        for item_id in item_ids:
            item = self.store.find(item_id.removeprefix("item-"))
            if item and item["status"] == "done":
                task = make_task(item_id.removeprefix("item-"), "store_task", SYSTEM)
                record = SentRecord(task=task, item=ExternalItem(system=SYSTEM, id=item_id))
                found.append(Finished(record, Done(variables={"from": "event"})))
        return found

    def changed_since(self, since: datetime) -> Changes:
        found, self.changed = self.changed, []
        return Changes(found)


@pytest.fixture
def store(tmp_path: Path) -> ItemStore:
    return ItemStore(tmp_path / "items")


def started(start_service: StartService, store: ItemStore, *, interval_s: float = 60.0,
            sweep_s: float = 0.0) -> tuple[EventStoreTracker, CreatorService]:
    ctx = context(SYSTEM)
    tracker = EventStoreTracker(ctx, store=store, interval_s=interval_s, sweep_s=sweep_s)
    handler = StoreHandler(ctx, store=store)
    assert ctx.sent_queue is not None
    service = start_service(handlers={ctx.queue: handler}, trackers={ctx.sent_queue: tracker})
    return tracker, service


def events_counted(service: CreatorService, result: str) -> float:
    return service.registry.get_sample_value("exchanger_creator_item_events_total",
                                             {"system": SYSTEM, "result": result}) or 0


@pytest.fixture
def receiver(rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[StartReceiver]:
    running: list[EventReceiver] = []

    def start(tracker: EventStoreTracker) -> EventReceiver:
        running.append(EventReceiver({SYSTEM: tracker}, rabbit_settings, topology, port=0).start())
        return running[-1]

    yield start
    for server in running:
        server.stop()


def post(server: EventReceiver, body: dict[str, object], system: str = SYSTEM,
         timeout_s: float = 10) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/events/{system}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def create(queues: Queues, store: ItemStore, task_id: str) -> None:
    """A task through the creator: its item exists and its tracking record waits in a delay queue."""
    queues.publish_task(make_task(task_id, "store_task", SYSTEM))
    wait_for(lambda: store.find(task_id), 10, f"item of {task_id} created")


pytestmark = pytest.mark.usefixtures("topology")  # declares and purges <system>.events.queue too


def test_an_event_answers_at_once_and_the_returning_record_ends_without_a_second_response(
        start_service: StartService, receiver: StartReceiver, queues: Queues,
        store: ItemStore) -> None:
    tracker, _ = started(start_service, store, interval_s=5)
    server = receiver(tracker)
    create(queues, store, "t-ev-1")
    store.finish("t-ev-1", answer="yes")
    assert post(server, {"token": TOKEN, "items": ["item-t-ev-1"]}) == (200, {"accepted": ["item-t-ev-1"]})
    response = queues.responses(1)[0]
    assert (response.task_id, response.status.value) == ("t-ev-1", "complete")
    assert response.variables["from"]["value"] == "event", "answered by the record's check, not by the event"
    second = queues.poll(queues.topology.settings.responses_queue, 9)  # the record comes back after 5 s
    assert second is None, "a second response after the tracking record came back"
    assert tracker.checks["t-ev-1"] == 0, "the record was checked although an event had answered its task"


def test_a_duplicated_event_gives_one_response(
        start_service: StartService, receiver: StartReceiver, queues: Queues, store: ItemStore) -> None:
    tracker, service = started(start_service, store)
    server = receiver(tracker)
    create(queues, store, "t-ev-2")
    store.finish("t-ev-2")
    for _ in range(2):
        assert post(server, {"token": TOKEN, "items": ["item-t-ev-2"]})[0] == 200
    assert [r.task_id for r in queues.responses(1)] == ["t-ev-2"]
    wait_for(lambda: events_counted(service, "answered") + events_counted(service, "already_answered") >= 2, 10,
             "both events handled")
    assert queues.poll(queues.topology.settings.responses_queue, 2) is None, "the duplicated event answered twice"


def test_a_forged_event_is_refused_and_changes_nothing(
        start_service: StartService, receiver: StartReceiver, queues: Queues, store: ItemStore) -> None:
    tracker, _ = started(start_service, store)
    server = receiver(tracker)
    create(queues, store, "t-ev-3")
    store.finish("t-ev-3")
    assert post(server, {"token": "guessed", "items": ["item-t-ev-3"]})[0] == 403
    assert post(server, {"token": TOKEN, "items": ["x"]}, system="nosuch")[0] == 404
    assert queues.poll(queues.topology.settings.responses_queue, 2) is None
    assert tracker.finished_calls == []


def test_an_event_for_an_unknown_or_open_item_is_ignored(
        start_service: StartService, receiver: StartReceiver, queues: Queues, store: ItemStore) -> None:
    tracker, _ = started(start_service, store)
    server = receiver(tracker)
    create(queues, store, "t-ev-4")  # open
    assert post(server, {"token": TOKEN, "items": ["item-nobody", "item-t-ev-4"]})[0] == 200
    wait_for(lambda: tracker.finished_calls, 10, "the events looked at")
    assert queues.poll(queues.topology.settings.responses_queue, 1) is None
    store.finish("t-ev-4")  # finished later: the next event answers it
    assert post(server, {"token": TOKEN, "items": ["item-t-ev-4"]})[0] == 200
    assert [r.task_id for r in queues.responses(1)] == ["t-ev-4"]


def test_a_change_sweep_answers_without_an_event(start_service: StartService, queues: Queues,
                                                  store: ItemStore) -> None:
    tracker, _ = started(start_service, store, sweep_s=0.5)
    create(queues, store, "t-ev-5")
    store.finish("t-ev-5")
    tracker.changed = ["item-t-ev-5", "item-t-ev-5"]
    assert [r.task_id for r in queues.responses(1, timeout_s=10)] == ["t-ev-5"]
    assert queues.poll(queues.topology.settings.responses_queue, 2) is None


def test_a_record_that_comes_back_to_the_other_task_creator_ends_there_too(
        start_service: StartService, receiver: StartReceiver, queues: Queues, store: ItemStore) -> None:
    tracker_a, service_a = started(start_service, store, interval_s=4)  # first: the events queue's active consumer
    tracker_b, service_b = started(start_service, store, interval_s=4)
    assert service_a.broadcast is not None and service_b.broadcast is not None
    wait_for(lambda: service_a.broadcast.ready.is_set() and service_b.broadcast.ready.is_set(), 10, "both listening")
    server = receiver(tracker_b)  # either receiver: both put the event into the one events queue
    create(queues, store, "t-ev-6")
    store.finish("t-ev-6")
    assert post(server, {"token": TOKEN, "items": ["item-t-ev-6"]})[0] == 200
    response = queues.responses(1)[0]
    assert response.task_id == "t-ev-6" and response.variables["from"]["value"] == "event"
    wait_for(lambda: service_b.broadcast.received >= 1, 5, "the other task-creator told")
    service_a.stop()  # the tracking record can only come back to the other one now
    second = queues.poll(queues.topology.settings.responses_queue, 9)
    assert second is None, "the other task-creator answered the record again"
    assert tracker_b.checks["t-ev-6"] == 0 and tracker_a.checks["t-ev-6"] == 0


def test_an_event_whose_item_cannot_be_read_for_a_moment_is_read_again_not_left_to_the_record(
        start_service: StartService, queues: Queues, store: ItemStore) -> None:
    """A sweep found the item but the system failed the read: the sweep has moved on and the record waits
    its check interval (60 s here), so the event itself is read again after EVENT_RETRY_S."""
    tracker, service = started(start_service, store, sweep_s=0.5)
    create(queues, store, "t-ev-7")
    store.finish("t-ev-7")
    tracker.failing_reads = 1
    tracker.changed = ["item-t-ev-7"]
    assert [r.task_id for r in queues.responses(1, timeout_s=30)] == ["t-ev-7"]
    assert len(tracker.finished_calls) == 2 and events_counted(service, "read_failed") == 1


class SlowReads(EventStoreTracker):
    """Holds every ``finished`` call until ``release`` is set: the events consumer keeps its messages unacked."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reading = threading.Event()
        self.release = threading.Event()

    def finished(self, item_ids: Sequence[str]) -> list[Finished]:
        self.reading.set()
        self.release.wait(20)
        return super().finished(item_ids)


def test_the_broker_gone_while_the_events_consumer_holds_an_event_gives_one_answer_and_the_notice_flows_again(
        rabbit_settings: RabbitMQSettings, topology: Topology, start_service: StartService, receiver: StartReceiver,
        queues: Queues, store: ItemStore) -> None:
    """Task-creator P (through a proxy that can drop its connections, as a broker restart does) is the events
    queue's active consumer and is reading an item when its connections go; Q takes over the queue."""
    proxy = TcpProxy(rabbit_settings.port)
    try:
        ctx = context(SYSTEM)
        assert ctx.sent_queue is not None
        slow = SlowReads(ctx, store=store, interval_s=60)
        service_p = start_creator(rabbit_settings.model_copy(update={"port": proxy.port}), topology,
                                  {ctx.queue: StoreHandler(ctx, store=store)}, {ctx.sent_queue: slow})
        try:
            tracker_q, service_q = started(start_service, store)
            create(queues, store, "t-ev-8")
            store.finish("t-ev-8")
            assert post(receiver(tracker_q), {"token": TOKEN, "items": ["item-t-ev-8"]})[0] == 200
            assert slow.reading.wait(10), "P never read the event"
            proxy.drop_connections()  # the broker "restarts" under P: its unacked event goes to Q
            [response] = queues.responses(1, timeout_s=20)
            assert response.task_id == "t-ev-8"
            slow.release.set()  # P's read ends: its answer must not be a second one
            assert queues.poll(queues.topology.settings.responses_queue, 5) is None, "answered twice"
            assert service_p.wait_ready(20), service_p.readiness()
            assert service_p.broadcast is not None
            wait_for(service_p.broadcast.ready.is_set, 20, "P's answered broadcast listening again")
            received = service_p.broadcast.received
            create(queues, store, "t-ev-9")
            store.finish("t-ev-9")
            assert post(receiver(tracker_q), {"token": TOKEN, "items": ["item-t-ev-9"]})[0] == 200
            assert [r.task_id for r in queues.responses(1, timeout_s=20)] == ["t-ev-9"]
            wait_for(lambda: service_p.broadcast.received > received, 10, "P told of Q's answer after the restart")
        finally:
            slow.release.set()
            service_p.stop()
    finally:
        proxy.close()
