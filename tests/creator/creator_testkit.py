"""Test doubles for the task-creator: a file-backed work-item store, its handler and tracker, task functions.

Importable as ``creator_testkit`` (pytest puts this folder on ``sys.path``; subprocess tests set
``PYTHONPATH``). The store is a folder with one JSON file per work item, so that a handler in a killed
process and one in the test see the same items, and creating is atomic and exclusive (``link``): the idempotent
store the "killed before ack" scenario needs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from exchanger.amqp.topology import sent_queue, system_queue
from exchanger.contracts import (
    ExternalItem,
    SentRecord,
    TaskMessage,
)
from exchanger.creator.base import (
    BaseMessageHandler,
    BaseTracker,
    Done,
    HandlerOutcome,
    StillOpen,
    SystemContext,
    TrackerOutcome,
)
from exchanger.creator.settings import CreatorSettings
from exchanger.errors import BpmnError, Incident, PermanentError, TransientError
from exchanger.systems.python.registry import Registry
from exchanger.variables import to_typed_map

# --- messages and queues -----------------------------------------------------------------------------


def make_task(task_id: str, topic: str, system: str, variables: dict[str, Any] | None = None, **fields: Any
              ) -> TaskMessage:
    return TaskMessage(task_id=task_id, topic_name=topic, system=system, worker_id="test-worker",
                       process_instance_id=f"pi-{task_id}", activity_id="Activity_1",
                       variables=to_typed_map(variables or {}), **fields)


def context(system: str, settings: CreatorSettings | None = None, tracked: bool = True) -> SystemContext:
    return SystemContext(system=system, queue=system_queue(system), sent_queue=sent_queue(system) if tracked else None,
                         settings=settings or CreatorSettings())


# --- a work-item store with its handler and tracker -----------------------------------------------------

STORE_ENV = "TESTKIT_STORE_DIR"
HANG_ENV = "TESTKIT_HANG_AFTER_CREATE"  # "1": the handler blocks forever after creating (to be killed)
INTERVAL_ENV = "TESTKIT_CHECK_INTERVAL_S"
ECHO_ENV = "TESTKIT_ECHO_VARIABLE"  # a variable name: the handler fails with an error body echoing its value


class ItemStore:
    """An external system's work items, one file each: ``<task id>.json`` with its status."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.creates = 0  # calls of create in this process

    def _path(self, task_id: str) -> Path:
        return self.folder / f"{task_id}.json"

    def find(self, task_id: str) -> dict | None:
        try:
            return json.loads(self._path(task_id).read_text())
        except FileNotFoundError:
            return None

    def create(self, task_id: str) -> dict:
        item = {"id": f"item-{task_id}", "status": "open"}
        tmp = self._path(task_id).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(item))
        try:
            os.link(tmp, self._path(task_id))  # atomic and exclusive: a second create fails, none is half-written
        finally:
            tmp.unlink()
        self.creates += 1
        return item

    def finish(self, task_id: str, **result: object) -> None:
        item = self.find(task_id) or {}
        item.update(status="done", result=result)
        tmp = self._path(task_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(item))
        tmp.replace(self._path(task_id))

    def count(self) -> int:
        return len(list(self.folder.glob("*.json")))


def _store_from_env() -> ItemStore:
    return ItemStore(Path(os.environ[STORE_ENV]))


class StoreHandler(BaseMessageHandler):
    """Creates one item per task in the store; finds it again on redelivery."""

    def __init__(self, context: SystemContext, *, store: ItemStore | None = None) -> None:
        super().__init__(context)
        self.store = store or _store_from_env()

    def find_existing(self, task: TaskMessage) -> ExternalItem | None:
        found = self.store.find(task.task_id)
        return ExternalItem(system=self.context.system, id=found["id"]) if found else None

    def create(self, task: TaskMessage) -> HandlerOutcome:
        if os.environ.get(ECHO_ENV):  # a careless server that echoes the request's credentials
            echoed = os.environ.get(os.environ[ECHO_ENV], "")
            raise PermanentError(f"testsys answered 400: {{\"error\": \"bad request\", \"echo\": \"{echoed}\"}}")
        item = self.store.create(task.task_id)
        if os.environ.get(HANG_ENV) == "1":
            time.sleep(3600)  # created, not acked: the test kills the process here
        return ExternalItem(system=self.context.system, id=item["id"], url=f"http://store/{item['id']}")


class StoreTracker(BaseTracker):
    """Open until the test calls ``store.finish``; then done with the result as variables."""

    def __init__(self, context: SystemContext, *, store: ItemStore | None = None,
                 interval_s: float | None = None) -> None:
        super().__init__(context)
        self.store = store or _store_from_env()
        self.check_interval_s = interval_s or float(os.environ.get(INTERVAL_ENV, "1"))
        self.checks: Counter[str] = Counter()
        self._lock = threading.Lock()

    def check(self, record: SentRecord) -> TrackerOutcome:
        with self._lock:
            self.checks[record.task.task_id] += 1
        found = self.store.find(record.task.task_id)
        if found and found["status"] == "done":
            return Done(variables={"item_result": found.get("result", {}), "checks": record.checks + 1})
        return StillOpen(note="open")


class ScriptedHandler(BaseMessageHandler):
    """Raises or returns what ``script[topic]`` says, counting calls per task (in this process)."""

    def __init__(self, context: SystemContext, *, script: dict | None = None) -> None:
        super().__init__(context)
        self.script = script or {}
        self.calls: Counter[str] = Counter()
        self.call_times: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def create(self, task: TaskMessage) -> HandlerOutcome:
        with self._lock:
            self.calls[task.task_id] += 1
            self.call_times.setdefault(task.task_id, []).append(time.monotonic())
            n = self.calls[task.task_id]
        action = self.script[task.topic_name]
        return action(task, n)


class SecondCheckTracker(BaseTracker):
    """Still open at the first check of every item, done at the second: 'every item re-checked'."""

    def __init__(self, context: SystemContext, *, interval_s: float = 1.0) -> None:
        super().__init__(context)
        self.check_interval_s = interval_s
        self.checks: Counter[str] = Counter()
        self._lock = threading.Lock()

    def check(self, record: SentRecord) -> TrackerOutcome:
        with self._lock:
            self.checks[record.task.task_id] += 1
        return Done(variables={"n": record.checks}) if record.checks >= 1 else StillOpen()


class NotAHandler:
    """Lacks the contract (not a BaseMessageHandler)."""


class HalfAHandler(BaseMessageHandler):  # type: ignore[abstract]
    """Subclasses the base but forgets create."""

    create = BaseMessageHandler.create


class NoCheckTracker(BaseTracker):
    """Subclasses the base but has no check (under either name)."""


# --- python task functions, in a registry of their own ----------------------------------------------

tasks = Registry()


@tasks.task("t_ok")
def ok(job: TaskMessage) -> dict:
    return {"greeting": f"hello {job.value('name')}", "n": job.value("n", 0) + 1, "nested": {"a": [1, 2]}}


@tasks.task("t_bpmn")
def bpmn(job: TaskMessage) -> dict:
    raise BpmnError("EMAIL_BOUNCED", "the address does not exist", variables={"bounced": True})


@tasks.task("t_incident")
def incident(job: TaskMessage) -> dict:
    raise Incident("the template is broken", details="line 3: unknown placeholder")


@tasks.task("t_flaky", retries=2, retry_timeout="PT30S")
def flaky(job: TaskMessage) -> dict:
    raise TransientError("SMTP server answered 451")


@tasks.task("t_permanent")
def permanent(job: TaskMessage) -> dict:
    raise PermanentError("the mail server refused the recipient", status=550)
