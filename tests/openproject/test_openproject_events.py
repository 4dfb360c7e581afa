"""OpenProject change sweeps and webhooks through the real broker: the fake OpenProject (its webhooks
configured as an administrator would) calls the task-creator's real event endpoint, item ids go through
``openproject.events.queue``, the response comes out of ``camunda.responses.queue``. The tracking
records stay the safety net: a lost webhook only delays, a duplicated one answers once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
import requests
from broker_queues import Queues, serve_system, wait_for
from pydantic import SecretStr
from test_openproject_handler import CONTEXT, op_task, set_status
from test_openproject_handler_queue import wait_for_work_package

from exchanger.amqp.topology import Topology
from exchanger.contracts import ResponseStatus
from exchanger.creator.event_receiver import EventReceiver
from exchanger.settings import RabbitMQSettings
from exchanger.systems.openproject.handler import OpenProjectTaskHandler
from exchanger.systems.openproject.settings import OpenProjectSettings
from exchanger.systems.openproject.tracker import OpenProjectTracker
from exchanger.variables import from_typed_map
from exchanger_sandbox.openproject import server as fake
from exchanger_sandbox.openproject.state import EXTERNAL_ID_FIELD, WorkPackage, now_iso

SECRET = "whsec-openproject-test"
SLOW = 60.0  # a check interval no test waits for: what answers came from a sweep or a webhook


class Running:
    """A task-creator serving OpenProject, with its event endpoint; ``tracker`` for its counters."""

    def __init__(self, tracker: OpenProjectTracker, receiver: EventReceiver) -> None:
        self.tracker = tracker
        self.receiver = receiver

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}/events/openproject"


Start = Callable[..., Running]


@pytest.fixture
def start(rabbit_settings: RabbitMQSettings, topology: Topology, op_settings: OpenProjectSettings,
          make_client) -> Iterator[Start]:
    with ExitStack() as stack:
        def run(*, check_s: float = SLOW, sweep_s: float = 0.0, secret: str = SECRET) -> Running:
            settings = op_settings.model_copy(update={"check_interval_s": check_s, "sweep_interval_s": sweep_s,
                                                      "webhook_secret": SecretStr(secret)})
            handler = OpenProjectTaskHandler(CONTEXT, settings=settings, client=make_client(settings))
            tracker = OpenProjectTracker(CONTEXT, settings=settings, client=make_client(settings))
            stack.enter_context(serve_system(rabbit_settings, topology, handler, tracker, sweep_overlap_s=1.0))
            receiver = EventReceiver({"openproject": tracker}, rabbit_settings, topology, port=0).start()
            stack.callback(receiver.stop)
            return Running(tracker, receiver)

        yield run


def webhook(op: fake.OpenProjectServer, url: str, secret: str = SECRET) -> None:
    """What the administrator enters in Administration → Webhooks."""
    hook = {"url": url, "secret": secret, "events": ["work_package:updated"], "projects": [1]}
    requests.put(f"{op.url}/_admin/webhooks", json={"webhooks": [hook]}, timeout=5).raise_for_status()


def webhook_faults(op: fake.OpenProjectServer, **faults: float) -> None:
    requests.post(f"{op.url}/_admin/webhooks/faults", json=faults, timeout=5).raise_for_status()


def deliveries(op: fake.OpenProjectServer) -> list[dict]:
    return requests.get(f"{op.url}/_admin/webhooks", timeout=5).json()["deliveries"]


def open_work_package(queues: Queues, op: fake.OpenProjectServer, task_id: str) -> int:
    queues.publish_task(op_task(task_id))
    return wait_for_work_package(op, task_id)


def no_more_responses(queues: Queues, seconds: float) -> None:
    extra = queues.poll(queues.topology.settings.responses_queue, seconds)
    assert extra is None, "a second response for the same task"


def test_a_change_sweep_completes_without_reading_each_open_work_package(start, queues, op, api):
    running = start(sweep_s=0.3)
    wp_ids = [open_work_package(queues, op, f"sweep-{n}") for n in range(5)]
    set_status(op, api, wp_ids[2], 5, percentageDone=100)
    (response,) = queues.responses(1, timeout_s=10)
    assert (response.task_id, response.status) == ("sweep-2", ResponseStatus.COMPLETE)
    assert from_typed_map(response.variables)["op_status"] == "Closed"
    assert response.item is not None and response.item.id == str(wp_ids[2])
    stats = running.tracker.get_stats()
    assert stats.get("checks", 0) == 0, "the sweep's find went through a per-item check"
    no_more_responses(queues, 1.0)  # later sweeps overlap the first: the ledger answers once


def test_a_webhook_completes_the_task_promptly(start, queues, op, api):
    running = start()
    webhook(op, running.events_url)
    wp_id = open_work_package(queues, op, "hook-1")
    started = time.monotonic()
    set_status(op, api, wp_id, 5, percentageDone=100)
    (response,) = queues.responses(1, timeout_s=10)
    assert time.monotonic() - started < 5, "took as long as a check interval"
    assert (response.task_id, response.status) == ("hook-1", ResponseStatus.COMPLETE)
    assert from_typed_map(response.variables) == {
        "op_work_package_id": wp_id, "op_status": "Closed", "op_url": f"{op.url}/work_packages/{wp_id}",
        "op_percentage_done": 100}
    assert [d["response_code"] for d in deliveries(op)] == [200]


def test_a_lost_webhook_only_delays_the_tracking_record_completes(start, queues, op, api):
    running = start(check_s=2.0)
    webhook(op, running.events_url)
    wp_id = open_work_package(queues, op, "hook-lost")
    webhook_faults(op, drop=1)
    set_status(op, api, wp_id, 5)
    wait_for(lambda: deliveries(op), 5, "the dropped webhook in the delivery log")
    assert deliveries(op)[0]["note"] == "dropped (fault)"
    (response,) = queues.responses(1, timeout_s=15)
    assert (response.task_id, response.status) == ("hook-lost", ResponseStatus.COMPLETE)
    assert running.tracker.get_stats().get("done") == 1  # answered by its tracking record's check


def test_a_duplicated_webhook_gives_exactly_one_completion(start, queues, op, api):
    running = start(check_s=2.0)
    webhook(op, running.events_url)
    wp_id = open_work_package(queues, op, "hook-twice")
    webhook_faults(op, duplicate=1)
    set_status(op, api, wp_id, 5)
    (response,) = queues.responses(1, timeout_s=10)
    assert response.task_id == "hook-twice"
    wait_for(lambda: len(deliveries(op)) == 2, 5, "both copies delivered")
    assert [d["response_code"] for d in deliveries(op)] == [200, 200]
    no_more_responses(queues, 5.0)  # the copy, and the tracking record back after 2 s, answer nothing


def test_a_bad_signature_is_refused_and_changes_nothing(start, queues, op, api):
    running = start()
    webhook(op, running.events_url, secret="not-the-configured-secret")
    wp_id = open_work_package(queues, op, "hook-forged")
    set_status(op, api, wp_id, 5)
    wait_for(lambda: deliveries(op), 5, "the webhook call")
    assert [d["response_code"] for d in deliveries(op)] == [403]
    calls = op.app.api_calls
    unsigned = requests.post(running.events_url, json={"action": "work_package:updated",
                                                       "work_package": {"id": wp_id}}, timeout=5)
    assert unsigned.status_code == 403
    no_more_responses(queues, 2.0)
    assert op.app.api_calls == calls, "a refused call made the tracker read"


def test_webhooks_are_off_without_a_secret(start, queues, op):
    running = start(secret="")
    answer = requests.post(running.events_url, data=b'{"action":"work_package:updated"}',
                           headers={"X-OP-Signature": "sha1=00"}, timeout=5)
    assert answer.status_code == 404


def test_a_sweep_finds_every_one_of_more_work_packages_closed_at_once_than_a_page_holds(op, client, op_settings):
    """1,050 of Exchanger's work packages closed in one bulk edit (plus open and foreign ones changed with them):
    the sweep reads two pages of 1,000 and names each closed one of Exchanger's once."""
    ours: set[str] = set()
    with op.state.lock:
        for n in range(1500):
            wp_id = op.state.next_id
            op.state.next_id += 1
            kind = n % 5  # 0-3: ours and closed, 4: a person's own, closed; and every 10th of ours left open
            status = 1 if kind < 4 and n % 10 == 0 else 5
            values = {EXTERNAL_ID_FIELD: f"bulk-{n}"} if kind < 4 else {}
            op.state.work_packages[wp_id] = WorkPackage(wp_id, 1, 1, status, 8, 4, f"bulk {n}", custom_values=values,
                                                        created_at=now_iso(), updated_at=now_iso())
            if kind < 4 and status == 5:
                ours.add(str(wp_id))
    tracker = OpenProjectTracker(CONTEXT, settings=op_settings, client=client)
    found = tracker.changed_since(datetime.now(UTC) - timedelta(minutes=1)).item_ids
    assert len(found) == len(set(found)) and set(found) == ours, (len(found), len(ours))
