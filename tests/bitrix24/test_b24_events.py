"""Bitrix24 change sweeps and pushed events: the fake portal's event.bind and outbound calls as a real
portal documents them, and a real task-creator (broker, HTTP receiver) answering from them, once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from b24_helpers import client_for, new_task, rest
from broker_queues import Queues, free_port, serve_system, wait_for
from loguru import logger
from test_b24_handler import CONTEXT, handler_for, make_task
from test_b24_tracker import PERSON, person

from exchanger.amqp.topology import Topology, events_queue
from exchanger.contracts import ResponseMessage
from exchanger.creator.base import EventRefused
from exchanger.creator.event_receiver import EventReceiver
from exchanger.creator.item_events import Sweeper
from exchanger.creator.service import CreatorService
from exchanger.settings import RabbitMQSettings
from exchanger.systems.bitrix24.tracker import Bitrix24Tracker
from exchanger_sandbox.bitrix24 import state as portal_state
from exchanger_sandbox.bitrix24.server import PortalServer
from exchanger_sandbox.http import App, Request, Response, empty_response
from exchanger_sandbox.http import start as start_app

# --- the fake portal -------------------------------------------------------------------------------


class Capture:
    """A handler URL that records the portal's calls: (content type, parsed form); a sandbox app."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, list[str]]]] = []
        app = App("hook")

        @app.route("POST", "/hook/")
        def hook(request: Request) -> Response:
            self.calls.append((request.headers.get("content-type", ""), parse_qs(request.body.decode())))
            return empty_response(200)

        self.server = start_app(app)
        self.url = f"{self.server.url}/hook/"

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def capture() -> Iterator[Capture]:
    hook = Capture()
    yield hook
    hook.close()


def call(portal: PortalServer, method: str, params: dict[str, Any]) -> Any:
    answer = rest(portal.webhook_url, method, params)
    return answer.json()


def test_event_bind_get_unbind_and_the_call_a_task_update_makes(portal: PortalServer, capture: Capture) -> None:
    assert call(portal, "event.bind", {"event": "OnTaskUpdate", "handler": capture.url})["result"] is True
    again = call(portal, "event.bind", {"event": "OnTaskUpdate", "handler": capture.url})
    assert "already binded" in again["error_description"]
    assert call(portal, "event.get", {})["result"] == [
        {"event": "ONTASKUPDATE", "handler": capture.url, "auth_type": "0", "offline": 0}]
    task = new_task(portal.webhook_url, RESPONSIBLE_ID=PERSON)
    person(portal, "tasks.task.complete", {"taskId": int(task["id"])})
    wait_for(lambda: capture.calls, 5, "the portal's event call")
    content_type, form = capture.calls[0]
    assert content_type == "application/x-www-form-urlencoded"
    assert form["event"] == ["ONTASKUPDATE"]
    assert form["data[FIELDS_BEFORE][ID]"] == form["data[FIELDS_AFTER][ID]"] == [str(task["id"])]
    assert form["auth[application_token]"] == [portal.application_token]
    assert form["auth[domain]"] == [portal.url.split("://")[1]] and form["ts"][0].isdigit()
    assert len(capture.calls) == 1, "tasks.task.add is OnTaskAdd, not bound here"
    assert call(portal, "event.unbind", {"event": "OnTaskUpdate", "handler": capture.url})["result"] == {"count": 1}
    assert call(portal, "event.get", {})["result"] == []


def test_fault_knobs_drop_and_duplicate_the_next_calls(portal: PortalServer, capture: Capture) -> None:
    call(portal, "event.bind", {"event": "OnTaskUpdate", "handler": capture.url})
    task = new_task(portal.webhook_url, RESPONSIBLE_ID=PERSON)
    requests.post(portal.url + "/_admin/events", json={"drop": 1, "duplicate": 1}, timeout=5).raise_for_status()
    person(portal, "tasks.task.start", {"taskId": int(task["id"])})  # dropped
    person(portal, "tasks.task.complete", {"taskId": int(task["id"])})  # sent twice
    wait_for(lambda: len(capture.calls) >= 2, 5, "the duplicated call")
    time.sleep(0.3)
    assert len(capture.calls) == 2 and portal.portal.outbound.stats()["dropped"] == 1


def test_changed_date_filter_and_order(portal: PortalServer) -> None:
    first = new_task(portal.webhook_url)
    second = new_task(portal.webhook_url)
    with portal.portal.lock:  # the first changed an hour ago (in UTC, the portal answers +03:00)
        portal.portal.tasks[int(first["id"])]["CHANGED_DATE"] = (
            datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    listed = call(portal, "tasks.task.list", {"filter": {">CHANGED_DATE": since}, "select": ["ID"]})
    assert [t["id"] for t in listed["result"]["tasks"]] == [str(second["id"])]
    ordered = call(portal, "tasks.task.list", {"order": {"CHANGED_DATE": "asc"}, "select": ["ID"]})
    assert [t["id"] for t in ordered["result"]["tasks"]] == [str(first["id"]), str(second["id"])]


# --- the tracker's part --------------------------------------------------------------------------------


def form(token: str, task_id: str, event: str = "ONTASKUPDATE") -> bytes:
    return (f"event={event}&data%5BFIELDS_AFTER%5D%5BID%5D={task_id}&data%5BFIELDS_BEFORE%5D%5BID%5D={task_id}"
            f"&ts=1&auth%5Bapplication_token%5D={token}&auth%5Bdomain%5D=x").encode()


def test_parse_event_checks_the_application_token(portal: PortalServer) -> None:
    client = client_for(portal, events_token="right-token")
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    assert tracker.parse_event({}, form("right-token", "42")) == ["42"]
    assert tracker.parse_event({}, form("right-token", "42", "ONTASKCOMMENTADD")) == []
    with pytest.raises(EventRefused) as refused:
        tracker.parse_event({}, form("wrong-token", "42"))
    assert refused.value.status == 403
    plain = client_for(portal)
    off = Bitrix24Tracker(CONTEXT, settings=plain.settings, client=plain)
    with pytest.raises(EventRefused) as disabled:
        off.parse_event({}, form("", "42"))
    assert disabled.value.status == 404


def test_finished_answers_an_event_in_one_request_and_leaves_out_open_and_foreign_tasks(portal: PortalServer) -> None:
    client = client_for(portal)
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    handler = handler_for(client)
    done, still_open = (handler.process_message(make_task(t, process_instance_id=f"pi-{t}")) for t in ("f-1", "f-2"))
    foreign = new_task(portal.webhook_url, RESPONSIBLE_ID=PERSON)
    for task_id in (int(done.id), int(foreign["id"])):  # type: ignore[union-attr]
        person(portal, "tasks.task.complete", {"taskId": task_id})
    before = portal.portal.requests
    found = tracker.finished([done.id, still_open.id, str(foreign["id"]), "999999"])  # type: ignore[union-attr]
    assert portal.portal.requests - before == 1  # the list and the results in one batch
    assert [(f.record.task.task_id, f.record.task.process_instance_id, f.record.task.activity_id) for f in found] == [
        ("f-1", "pi-f-1", "Activity_Approve")]
    assert found[0].outcome.variables["bitrix_task_id"] == int(done.id)  # type: ignore[union-attr]


def test_a_sweep_lists_finished_tasks_only_so_a_flood_of_open_changes_cannot_hide_them(portal: PortalServer) -> None:
    client = client_for(portal, sweep_max_pages=1)  # 50 tasks a sweep at most
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    since = datetime.now(UTC) - timedelta(seconds=5)
    opened = [new_task(portal.webhook_url, UF_CAMUNDA_ID_EXTERNAL_TASK=f"flood-{n}") for n in range(60)]
    person(portal, "tasks.task.complete", {"taskId": int(opened[-1]["id"])})
    assert tracker.changed_since(since).item_ids == [str(opened[-1]["id"])]


# --- through a real task-creator ---------------------------------------------------------------------


class Stack:
    """A task-creator for bitrix24 with its event receiver, the portal bound to it, and the queues."""

    def __init__(self, portal: PortalServer, queues: Queues, service: CreatorService, receiver: EventReceiver,
                 tracker: Bitrix24Tracker) -> None:
        self.portal, self.queues, self.service, self.receiver, self.tracker = portal, queues, service, receiver, tracker

    def create(self, task_id: str) -> int:
        """A task through the handler; its tracking record then waits for the (long) check interval."""
        self.queues.publish_task(make_task(task_id, process_instance_id=f"pi-{task_id}"))
        return int(wait_for(lambda: next((t["ID"] for t in list(self.portal.portal.tasks.values())
                                          if t.get("UF_CAMUNDA_ID_EXTERNAL_TASK") == task_id), None),
                            10, f"the portal task of {task_id}"))

    def responses(self, count: int = 1, timeout_s: float = 15) -> list[ResponseMessage]:
        return self.queues.responses(count, timeout_s=timeout_s)

    def no_more_responses(self, wait_s: float) -> None:
        extra = self.queues.poll(self.queues.topology.settings.responses_queue, wait_s)
        assert extra is None, f"a second response: {extra[2]!r}" if extra else ""


@contextmanager
def stack(portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues,
          **settings: Any) -> Iterator[Stack]:
    port = free_port()
    options = {"check_interval_s": 300, "sweep_interval_s": 0, "events_token": portal.application_token,
               "events_url": f"http://127.0.0.1:{port}/events/bitrix24", **settings}
    client = client_for(portal, **options)
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    with serve_system(rabbit_settings, topology, handler_for(client), tracker, check_batch_window_s=0.3) as service:
        receiver = EventReceiver({"bitrix24": tracker}, rabbit_settings, topology, port=port).start()
        try:
            if settings.get("events_url", "x"):
                wait_for(lambda: portal.portal.outbound.handlers, 10, "OnTaskUpdate bound by the task-creator")
            yield Stack(portal, queues, service, receiver, tracker)
        finally:
            receiver.stop()


def knobs(portal: PortalServer, **faults: Any) -> None:
    requests.post(portal.url + "/_admin/events", json=faults, timeout=5).raise_for_status()


def test_a_pushed_event_completes_the_task_long_before_its_check(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues) -> None:
    with stack(portal, rabbit_settings, topology, queues) as s:
        assert portal.portal.outbound.listed()[0]["event"] == "ONTASKUPDATE"
        task_id = s.create("ev-push-1")
        person(portal, "tasks.task.complete", {"taskId": task_id})
        [response] = s.responses(1, timeout_s=15)  # the check interval is 300 s
        assert (response.task_id, response.status.value) == ("ev-push-1", "complete")
        assert response.variables["bitrix_task_id"]["value"] == task_id
        assert response.variables["bitrix_closed_by"]["value"] == PERSON
        assert response.process_instance_id == "pi-ev-push-1"
        s.no_more_responses(2)


def test_a_duplicated_event_gives_exactly_one_completion(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues) -> None:
    with stack(portal, rabbit_settings, topology, queues) as s:
        task_id = s.create("ev-dup-1")
        knobs(portal, duplicate=1)
        person(portal, "tasks.task.complete", {"taskId": task_id})
        assert [r.task_id for r in s.responses(1)] == ["ev-dup-1"]
        wait_for(lambda: portal.portal.outbound.stats()["sent"] >= 2, 5, "both copies sent")
        s.no_more_responses(3)


def test_a_lost_event_only_delays_the_sweep_finds_the_task(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues) -> None:
    with stack(portal, rabbit_settings, topology, queues, sweep_interval_s=1) as s:
        task_id = s.create("ev-lost-1")
        knobs(portal, drop=1)
        person(portal, "tasks.task.complete", {"taskId": task_id})
        assert [r.task_id for r in s.responses(1, timeout_s=20)] == ["ev-lost-1"]
        assert portal.portal.outbound.stats()["dropped"] == 1
        s.no_more_responses(3)  # later sweeps list it again (overlap): answered once


def test_a_lost_event_without_sweeps_is_found_by_the_safety_net_check(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues) -> None:
    with stack(portal, rabbit_settings, topology, queues, check_interval_s=2) as s:
        task_id = s.create("ev-lost-2")
        knobs(portal, drop=1)
        person(portal, "tasks.task.complete", {"taskId": task_id})
        assert [r.task_id for r in s.responses(1, timeout_s=20)] == ["ev-lost-2"]
        assert portal.portal.outbound.stats()["dropped"] == 1
        s.no_more_responses(3)


def test_a_forged_event_is_refused_and_changes_nothing(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues) -> None:
    with stack(portal, rabbit_settings, topology, queues, events_url="") as s:
        task_id = s.create("ev-forged-1")
        with portal.portal.lock:  # done on the portal without telling anyone (no handler is bound)
            portal.portal.set_status(task_id, "complete", PERSON)
        url = f"http://127.0.0.1:{s.receiver.port}/events/bitrix24"
        answer = requests.post(url, data=form("guessed-token", str(task_id)).decode(), timeout=5,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 403
        s.no_more_responses(3)
        answered = s.service.registry.get_sample_value("exchanger_creator_item_events_total",
                                                       {"system": "bitrix24", "result": "answered"})
        assert not answered


def test_an_event_for_an_unknown_or_foreign_task_is_ignored(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues) -> None:
    with stack(portal, rabbit_settings, topology, queues) as s:
        foreign = new_task(portal.webhook_url, RESPONSIBLE_ID=PERSON)  # made by hand, no Camunda task id
        person(portal, "tasks.task.complete", {"taskId": int(foreign["id"])})
        url = f"http://127.0.0.1:{s.receiver.port}/events/bitrix24"
        answer = requests.post(url, data=form(portal.application_token, "987654").decode(), timeout=5,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200
        wait_for(lambda: portal.portal.outbound.stats()["sent"] >= 1, 5, "the foreign task's event")
        s.no_more_responses(3)
        task_id = s.create("ev-after-1")  # and the receiver still works
        person(portal, "tasks.task.complete", {"taskId": task_id})
        assert [r.task_id for r in s.responses(1)] == ["ev-after-1"]


# --- sweeps under a burst of changes -------------------------------------------------------------------


def closed_in_bulk(portal: PortalServer, count: int, first_change: datetime, per_s: float) -> set[str]:
    """``count`` tasks of Exchanger's closed by a bulk action, ``per_s`` a second from ``first_change``, plus as
    many open ones (not listed) and foreign closed ones (listed: they take room in the sweep's pages)."""
    ours: set[str] = set()
    with portal.portal.lock:
        for n in range(count * 3):
            kind = n % 3  # 0: ours and closed, 1: ours and open, 2: a person's own task, closed
            fields: dict[str, Any] = {"TITLE": f"bulk {n}", "RESPONSIBLE_ID": PERSON}
            if kind < 2:
                fields.update(UF_CAMUNDA_ID_EXTERNAL_TASK=f"bulk-{n}", XML_ID=f"pi-bulk:{n}")
            task = portal.portal.add_task(fields, PERSON)
            changed = first_change + timedelta(seconds=n / 3 / per_s)
            task.update(STATUS="2" if kind == 1 else "5", CHANGED_DATE=changed.isoformat(timespec="seconds"))
            if kind == 0:
                ours.add(task["ID"])
    return ours


def swept(sweeper: Sweeper, times: int) -> set[str]:
    found: set[str] = set()
    for _ in range(times):
        found.update(sweeper.sweep())
    return found


@pytest.fixture
def sweeper_for(portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology,
                queues: Queues) -> Iterator[Callable[..., Sweeper]]:
    made: list[Sweeper] = []

    def make(**settings: Any) -> Sweeper:
        client = client_for(portal, check_interval_s=300, **settings)
        made.append(Sweeper("bitrix24", Bitrix24Tracker(CONTEXT, settings=client.settings, client=client),
                            rabbit_settings, topology))
        return made[-1]

    yield make
    for sweeper in made:
        sweeper.publisher.close()
    queues.channel.queue_purge(events_queue("bitrix24"))


def test_five_hundred_tasks_closed_at_once_are_all_found_by_the_next_two_sweeps(
        portal: PortalServer, sweeper_for: Callable[..., Sweeper], queues: Queues) -> None:
    ours = closed_in_bulk(portal, 500, datetime.now(UTC) - timedelta(seconds=20), per_s=100)
    sweeper = sweeper_for()
    queues.channel.queue_purge(events_queue("bitrix24"))
    assert swept(sweeper, 2) == ours  # 1,000 finished listed: 20 pages (BITRIX_SWEEP_MAX_PAGES)
    assert queues.depth(events_queue("bitrix24")) >= 500  # the second sweep re-reads the second it resumes at


def test_a_burst_larger_than_a_sweeps_pages_is_found_by_the_next_sweeps_not_left_to_the_safety_net(
        portal: PortalServer, sweeper_for: Callable[..., Sweeper]) -> None:
    """A bulk close of 200 tasks a minute ago (400 finished with the foreign ones); a sweep reads 2 pages."""
    ours = closed_in_bulk(portal, 200, datetime.now(UTC) - timedelta(seconds=70), per_s=10)
    sweeper = sweeper_for(sweep_max_pages=2)
    found = swept(sweeper, 1)
    assert 0 < len(found) < len(ours), "the first sweep was not cut (the test lost its point)"
    assert swept(sweeper, 8) | found == ours, "tasks of the burst left to the 300 s safety net"
    assert sweeper._resume_from is None, "the sweeps did not get through to the end of the burst"


def test_a_portal_clock_behind_ours_by_more_than_the_overlap_loses_no_change_to_the_sweeps(
        portal: PortalServer, sweeper_for: Callable[..., Sweeper], monkeypatch: pytest.MonkeyPatch) -> None:
    """The portal's clock 2 minutes behind (the overlap is 30 s): each sweep's window is the portal's time."""
    monkeypatch.setitem(portal_state.CLOCK, "skew_s", -120.0)
    sweeper = sweeper_for()
    sweeper.sweep()
    closed = closed_in_bulk(portal, 1, datetime.now(UTC) - timedelta(seconds=120), per_s=1)  # stamped by the portal
    assert swept(sweeper, 1) == closed, "a change stamped by a slow portal clock fell before the sweep's window"


def test_the_application_token_is_never_in_an_answer_or_a_log_line(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology) -> None:
    """Wrong, right, truncated and absent tokens, a broken form: neither the sent value nor ours is echoed."""
    client = client_for(portal, events_token="the-real-token-9f3")
    tracker = Bitrix24Tracker(CONTEXT, settings=client.settings, client=client)
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    away = rabbit_settings.model_copy(update={"port": free_port()})  # the 503 path logs too
    receivers = [EventReceiver({"bitrix24": tracker}, settings, topology, port=0).start()
                 for settings in (rabbit_settings, away)]
    answers: list[str] = []
    try:
        for receiver in receivers:
            for body in (form("guessed-token-77", "5"), form("the-real-token-9f3", "5"), form("the-real-token", "5"),
                         b"auth%5Bapplication_token%5D=the-real-token-9f3&%%%", form("the-real-token-9f3", "x" * 99)):
                answer = requests.post(f"http://127.0.0.1:{receiver.port}/events/bitrix24", data=body, timeout=30,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
                answers.append(f"{answer.status_code} {answer.text}")
    finally:
        logger.remove(sink)
        for receiver in receivers:
            receiver.stop()
        client.close()
    assert [a.split()[0] for a in answers] == ["403", "200", "403", "200", "200", "403", "503", "403", "200", "200"]
    for secret in ("the-real-token", "guessed-token-77"):
        assert not [a for a in answers if secret in a], f"{secret} in an answer"
        assert not [line for line in lines if secret in line], f"{secret} in a log line"


def test_a_task_closed_while_the_task_creator_was_down_is_found_by_its_first_sweep(
        portal: PortalServer, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues) -> None:
    """No event reaches a stopped task-creator; the first sweep after the start looks one check interval back."""
    options = {"sweep_interval_s": 1, "events_url": ""}
    with stack(portal, rabbit_settings, topology, queues, **options) as s:
        task_id = s.create("ev-down-1")
    person(portal, "tasks.task.complete", {"taskId": task_id})  # while it is down (its record waits 300 s)
    time.sleep(2)
    with stack(portal, rabbit_settings, topology, queues, **options) as s:  # measured: 1.3 s, one sweep
        assert [r.task_id for r in s.responses(1, timeout_s=20)] == ["ev-down-1"]
        s.no_more_responses(2)
