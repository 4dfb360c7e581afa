"""Tracking at scale (``make bench-tracking``): many open work items watched within the portals' limits.

A benchmark, not a test: it prints figures and never fails on a number. Per system (one after the
other, each with a vhost of its own), against the fake served in this process with its real limits
on (Bitrix24: the 2 requests/s leaky bucket of 50, which refuses with 503 ``QUERY_LIMIT_EXCEEDED``):

- ``--items`` open work items are created in the fake and their tracking records put into
  ``<system>.sent.queue``, as a task-creator restarted with that many open items finds them;
- a real ``task-creator`` process (its handler and tracker for the system) runs for ``--minutes``
  (``--creators 2``: two of them, ``EXCHANGER_INSTANCE`` 1 and 2, sharing the queues and the portal);
- people finish about ``--complete-per-min`` percent of the open items per minute, at random;
  **detection latency** is from the moment a person finishes an item to the moment its response is
  in ``camunda.responses.queue`` (the worker's completion adds milliseconds, see ``make bench``);
- a new task is published every ``--create-every-s`` seconds; **create latency** is from its publish
  to its work item existing in the fake;
- API calls per minute (counted by the fake), limit refusals, and the daemon's CPU seconds and peak RSS.

The task-creator runs with the settings a user gets by default (Bitrix24: change sweeps every 10 s, the
full check every 300 s as the safety net; OpenProject: ``updatedAt`` sweeps every 10 s, the full check
every 300 s) plus, with ``--events`` (the default), pushed events: its event endpoint on a free port,
bound on the fake portal with ``event.bind`` by the task-creator itself, or (OpenProject) called by the
fake's signed webhook, configured as an administrator would, without journal aggregation.
``duplicate_responses`` counts tasks answered more than once.

People stop finishing items ``--settle-s`` before the end; a completion still not detected at the end
is reported as ``undetected`` (left out of the percentiles, its latency is at least ``--settle-s``).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from loguru import logger
from pipeline_bench import Tap, percentiles, proc_usage

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.contracts import SCHEMA_HEADER, BpmnMetadata, ExternalItem, SentRecord, TaskMessage
from exchanger.settings import RabbitMQSettings, TopologySettings
from exchanger_sandbox.bitrix24 import server as b24_server
from exchanger_sandbox.demo.stack import Stack
from exchanger_sandbox.onec import server as onec_server
from exchanger_sandbox.onec.state import EXTERNAL_ID_ATTRIBUTE, ORDER
from exchanger_sandbox.openproject import server as op_server
from exchanger_sandbox.openproject.state import EXTERNAL_ID_FIELD, WorkPackage, now_iso

PEOPLE_TICK_S = 1.0  # how often the simulated people look at their open items
OP_WEBHOOK_SECRET = "bench-webhook-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Side(ABC):
    """One system in the benchmark: its fake, how to seed and finish items, and how to count calls."""

    name: str
    system: str
    topic: str

    @abstractmethod
    def env(self) -> dict[str, str]:
        """The settings the task-creator needs to reach the fake."""

    @abstractmethod
    def seed(self, task_id: str) -> ExternalItem:
        """An open work item for ``task_id``, created in the fake directly (no API call counted)."""

    @abstractmethod
    def finish(self, item_id: str) -> None:
        """A person finishes the item (in the fake's state, as the web interface would)."""

    @abstractmethod
    def created(self, task_id: str) -> bool:
        """True once the handler's item for ``task_id`` exists."""

    @abstractmethod
    def calls(self) -> int:
        """API calls the fake has answered so far (refused ones included)."""

    def limit_errors(self) -> int:
        return 0

    def events_env(self, url: str) -> dict[str, str]:
        """Settings that make the system push its events to ``url``; empty: it cannot."""
        return {}

    def task(self, task_id: str) -> TaskMessage:
        return TaskMessage(task_id=task_id, topic_name=self.topic, system=self.system, worker_id="bench",
                           process_instance_id=f"pi-{task_id}", activity_id="Activity_Bench",
                           bpmn_metadata=BpmnMetadata(activity_name="Bench work item",
                                                      extension_properties=self.properties()))

    def properties(self) -> dict[str, str]:
        return {}

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]


class Bitrix24Side(Side):
    name = system = "bitrix24"
    topic = "bitrix_create_task"

    def __init__(self) -> None:
        self.server = b24_server.start(external_id_field="UF_CAMUNDA_ID_EXTERNAL_TASK")
        self.portal = self.server.portal

    def env(self) -> dict[str, str]:
        return {"BITRIX_WEBHOOK_URL": self.server.webhook_url}

    def events_env(self, url: str) -> dict[str, str]:
        return {"BITRIX_EVENTS_TOKEN": self.server.application_token, "BITRIX_EVENTS_URL": f"{url}/events/bitrix24"}

    def seed(self, task_id: str) -> ExternalItem:
        with self.portal.lock:  # the fields the handler writes: the Camunda task id and XML_ID <instance>:<activity>
            task = self.portal.add_task({"TITLE": f"Bench {task_id}", "RESPONSIBLE_ID": 2,
                                         "UF_CAMUNDA_ID_EXTERNAL_TASK": task_id,
                                         "XML_ID": f"pi-{task_id}:Activity_Bench"}, 1)
        return ExternalItem(system=self.system, id=str(task["ID"]), url=f"{self.server.url}/task/{task['ID']}")

    def finish(self, item_id: str) -> None:
        with self.portal.lock:
            self.portal.set_status(item_id, "complete", 2)

    def created(self, task_id: str) -> bool:
        with self.portal.lock:
            return task_id in self.portal.created_per_external_id

    def calls(self) -> int:
        with self.portal.lock:
            return self.portal.requests

    def limit_errors(self) -> int:
        with self.portal.lock:
            return self.portal.rejected


class OpenProjectSide(Side):
    name = system = "openproject"
    topic = "op_create_task"

    def __init__(self) -> None:
        self.server = op_server.start()
        self.state = self.server.state

    def env(self) -> dict[str, str]:
        return dict(self.server.settings_env)

    def seed(self, task_id: str) -> ExternalItem:
        with self.state.lock:
            wp_id = self.state.next_id
            self.state.next_id += 1
            stamp = now_iso()
            self.state.work_packages[wp_id] = WorkPackage(
                id=wp_id, project_id=1, type_id=1, status_id=1, priority_id=8, author_id=4,
                subject=f"Bench {task_id}", custom_values={EXTERNAL_ID_FIELD: task_id}, created_at=stamp,
                updated_at=stamp)
        return ExternalItem(system=self.system, id=str(wp_id), url=f"{self.server.url}/work_packages/{wp_id}")

    def events_env(self, url: str) -> dict[str, str]:
        """The webhook an administrator adds (work_package:updated, signed), aggregation off."""
        self.server.app.webhooks.configure((op_server.Webhook(
            url=f"{url}/events/openproject", secret=OP_WEBHOOK_SECRET, events=("work_package:updated",)),))
        return {"OPENPROJECT_WEBHOOK_SECRET": OP_WEBHOOK_SECRET}

    def finish(self, item_id: str) -> None:
        with self.state.lock:
            wp = self.state.work_packages[int(item_id)]
            wp.status_id, wp.updated_at, wp.lock_version = 5, now_iso(), wp.lock_version + 1
        self.server.app.webhooks.journal(wp.id, initial=False)  # as the PATCH of a person would

    def created(self, task_id: str) -> bool:
        with self.state.lock:
            return any(wp.custom_values.get(EXTERNAL_ID_FIELD) == task_id
                       for wp in reversed(self.state.work_packages.values()))

    def calls(self) -> int:
        return self.server.app.api_calls


class OneCSide(Side):
    name = system = "1c"
    topic = "1c_create_document"

    def __init__(self) -> None:
        self.server = onec_server.start()
        self.infobase = self.server.infobase

    def env(self) -> dict[str, str]:
        return dict(self.server.settings_env)

    def properties(self) -> dict[str, str]:
        return {"entity": ORDER, "post": "false"}

    def seed(self, task_id: str) -> ExternalItem:
        with self.infobase.lock:
            record = self.infobase.new(ORDER, {EXTERNAL_ID_ATTRIBUTE: task_id})
        return ExternalItem(system=self.system, id=record["Ref_Key"], url="", data={"entity": ORDER})

    def finish(self, item_id: str) -> None:
        with self.infobase.lock:
            record = self.infobase.records[ORDER][item_id]
            record["Posted"], record["DataVersion"] = True, self.infobase.next_data_version()

    def created(self, task_id: str) -> bool:
        with self.infobase.lock:
            return any(r.get(EXTERNAL_ID_ATTRIBUTE) == task_id for r in self.infobase.records[ORDER].values())

    def calls(self) -> int:
        return self.server.app.api_calls


SIDES = {"bitrix24": Bitrix24Side, "openproject": OpenProjectSide, "1c": OneCSide}


def run_system(side: Side, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One system's run; returns its figures."""
    stack = Stack(workdir / side.name)
    rabbit_env = {"RABBITMQ_PREFETCH": "50"}
    try:
        stack.create_vhost()
        queue, sent_queue = f"{side.system}.queue", f"{side.system}.sent.queue"
        rabbit = RabbitMQSettings(virtual_host=stack.vhost)
        topology = Topology(TopologySettings(), [side.system], queue_type=rabbit.queue_type,
                            virtual_host=stack.vhost)
        with connect(rabbit, name="bench-declare", attempts=3) as connection:
            topology.declare(connection)
        publisher = Publisher(rabbit, topology, name="bench")
        rng = random.Random(args.seed)
        open_items: dict[str, str] = {}  # item id → task id
        started = time.perf_counter()
        for n in range(args.items):
            task_id = f"open-{n}-{uuid.uuid4().hex[:6]}"
            item = side.seed(task_id)
            record = SentRecord(task=side.task(task_id), item=item)
            publisher.publish("", sent_queue, record.to_bytes(),
                              headers={SCHEMA_HEADER: SentRecord.SCHEMA}, correlation_id=task_id)
            open_items[item.id] = task_id
        print(f"{side.name}: {args.items} open items seeded in {time.perf_counter() - started:.1f} s", flush=True)
        events_port = free_port()
        events = side.events_env(f"http://127.0.0.1:{events_port}") if args.events else {}
        if events:
            events["CREATOR_EVENTS_PORT"] = str(events_port)
        stack.write_env_file({**side.env(), **rabbit_env, "CREATOR_QUEUES": f"{queue},{sent_queue}",
                              "CREATOR_HEALTH_PORT": "0", "LOG_LEVEL": "WARNING", "CREATOR_DRAIN_S": "5",
                              **events, **dict(args.env)})
        responses = Tap(rabbit)  # a copy of every response, by process instance (pi-<task id>)
        responses.start()
        calls_before = side.calls()
        creators = [stack.start_daemon("task-creator", {"EXCHANGER_INSTANCE": str(n)})
                    for n in range(1, args.creators + 1)]
        finished: dict[str, float] = {}  # task id → when the person finished it
        published: dict[str, float] = {}  # new task id → when it was published
        created: dict[str, float] = {}
        began = time.time()
        next_create = next_people = began
        per_tick = args.complete_per_min / 100 / 60 * PEOPLE_TICK_S  # chance of an open item to be finished
        while time.time() - began < args.minutes * 60:
            now = time.time()
            if now >= next_people and now - began < args.minutes * 60 - args.settle_s:
                next_people += PEOPLE_TICK_S
                for item_id in [i for i in open_items if rng.random() < per_tick]:
                    side.finish(item_id)
                    finished[open_items.pop(item_id)] = time.time()
            if now >= next_create:
                task_id = f"new-{uuid.uuid4().hex[:10]}"
                publisher.publish_contract(side.task(task_id), topology.settings.tasks_exchange,
                                           f"{side.system}.{side.topic}", correlation_id=task_id)
                published[task_id] = time.time()
                next_create += args.create_every_s
            for task_id in [t for t in published if t not in created]:
                if side.created(task_id):
                    created[task_id] = time.time()
            time.sleep(0.1)  # the create latency's resolution
        elapsed_min = (time.time() - began) / 60
        usages = [proc_usage(creator.popen.pid) for creator in creators if creator.popen is not None]
        usage = {"cpu_s": round(sum(u["cpu_s"] for u in usages), 1),
                 "peak_rss_mb": max(u["peak_rss_mb"] for u in usages)}
        calls = side.calls() - calls_before
        stack.stop_all()
        responses.stop()
        publisher.close()
        arrived = responses.by_task  # an answer from an event carries no process instance (OpenProject)
        detected = [arrived[t] - at for t, at in finished.items() if t in arrived]
        waits = [created[t] - at for t, at in published.items() if t in created]
        latency = percentiles(detected)
        create = percentiles(waits)
        return {
            "open_items": args.items,
            "creators": args.creators,
            "minutes": round(elapsed_min, 1),
            "completed_by_people": len(finished),
            "detected": len(detected),
            "undetected": len(finished) - len(detected),
            "detection_p50_s": latency["p50"],
            "detection_p95_s": latency["p95"],
            "limit_errors": side.limit_errors(),
            "created": len(waits),
            "not_created": len(published) - len(waits),
            "create_p95_s": create["p95"],
            "calls_per_min": round(calls / elapsed_min, 1),
            "daemon_cpu_s": usage["cpu_s"],
            "daemon_peak_rss_mb": usage["peak_rss_mb"],
            "events": bool(events),
            "duplicate_responses": sum(1 for count in responses.task_responses.values() if count > 1),
        }
    finally:
        stack.stop_all()
        stack.delete_vhost()
        side.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="open work items per system")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long each system runs")
    parser.add_argument("--systems", default="bitrix24,openproject,1c", help="comma-separated: " + ",".join(SIDES))
    parser.add_argument("--complete-per-min", type=float, default=1.0, help="percent of open items finished per minute")
    parser.add_argument("--create-every-s", type=float, default=5.0, help="a new task every this many seconds")
    parser.add_argument("--settle-s", type=float, default=90.0,
                        help="people stop finishing this long before the end, so that every completion can be seen")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--creators", type=int, default=1, choices=range(1, 10), metavar="N",
                        help="task-creator processes sharing the queues and the portal (CPU summed, peak RSS of one)")
    parser.add_argument("--events", action=argparse.BooleanOptionalAction, default=True,
                        help="systems that can push events do (Bitrix24 OnTaskUpdate to the task-creator)")
    parser.add_argument("--env", action="append", default=[], type=lambda s: tuple(s.split("=", 1)),
                        help="extra daemon setting NAME=value (repeatable), e.g. BITRIX_CHECK_INTERVAL_S=30")
    args = parser.parse_args()
    logger.remove()  # the fakes run in this process: their request log is not the benchmark's output
    logger.add(sys.stderr, level="WARNING")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in [s.strip() for s in args.systems.split(",") if s.strip()]:
            figures = run_system(SIDES[name](), args, Path(folder))
            results[name] = figures
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
    print(json.dumps({"systems": results, "items": args.items, "minutes": args.minutes,
                      "complete_per_min_pct": args.complete_per_min}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
