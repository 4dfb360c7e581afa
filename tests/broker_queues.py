"""The test side of the broker, written once: publish like camunda-worker, read like a consumer,
and run a task-creator for one system at the queue boundary.

Importable from every test folder (``tests/`` is on the path through the root ``conftest.py``);
the ``queues`` fixture there hands out a :class:`Queues` on the session vhost.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.contracts import SCHEMA_HEADER, ParkedRecord, ResponseMessage, TaskMessage
from exchanger.creator.base import BaseMessageHandler, BaseTracker
from exchanger.creator.loader import Components, LoadedHandler, LoadedTracker
from exchanger.creator.service import CreatorService
from exchanger.creator.settings import CreatorSettings
from exchanger.instances import PORT_STEP
from exchanger.settings import RabbitMQSettings

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


class Queues:
    """Publishes into and reads from the test vhost over real connections."""

    def __init__(self, settings: RabbitMQSettings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        self.publisher = Publisher(settings, topology, name="test-publisher")
        self.connection = connect(settings, name="test-reader", attempts=3)
        self.channel = self.connection.channel()

    def close(self) -> None:
        self.publisher.close()
        if self.connection.is_open:
            self.connection.close()

    # --- publishing ---------------------------------------------------------------------------

    def publish_task(self, task: TaskMessage) -> None:
        """As camunda-worker does: to the tasks exchange with routing key ``<system>.<topic>``."""
        self.publisher.publish(self.topology.settings.tasks_exchange, f"{task.system}.{task.topic_name}",
                               task.to_bytes(), headers={SCHEMA_HEADER: TaskMessage.SCHEMA},
                               correlation_id=task.task_id)

    def publish_raw(self, queue: str, body: bytes, correlation_id: str | None = None) -> None:
        self.publisher.publish("", queue, body, correlation_id=correlation_id)

    def respond(self, message: ResponseMessage) -> None:
        self.publisher.publish_response(message, correlation_id=message.task_id)

    # --- reading ------------------------------------------------------------------------------

    def poll(self, queue: str, timeout_s: float = 10.0) -> tuple[Any, Any, bytes] | None:
        """The next (method, properties, body) of ``queue`` within ``timeout_s``, or None."""
        deadline = time.monotonic() + timeout_s
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return method, properties, body
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def get(self, queue: str, timeout_s: float = 10.0) -> tuple[Any, Any, bytes]:
        """Like :meth:`poll`, but a missing message fails the test."""
        found = self.poll(queue, timeout_s)
        if found is None:
            pytest.fail(f"nothing arrived in {queue} within {timeout_s}s")
        return found

    def get_json(self, queue: str, timeout_s: float = 10.0) -> dict[str, Any]:
        return json.loads(self.get(queue, timeout_s)[2])

    def take(self, queue: str, count: int = 1, timeout_s: float = 10.0) -> list[bytes]:
        """``count`` bodies from ``queue``, all within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        bodies: list[bytes] = []
        while len(bodies) < count:
            found = self.poll(queue, max(0.0, deadline - time.monotonic()))
            if found is None:
                pytest.fail(f"only {len(bodies)} of {count} message(s) arrived in {queue} within {timeout_s}s")
            bodies.append(found[2])
        return bodies

    def responses(self, count: int = 1, timeout_s: float = 10.0) -> list[ResponseMessage]:
        queue = self.topology.settings.responses_queue
        return [ResponseMessage.from_bytes(body) for body in self.take(queue, count, timeout_s)]

    def parked(self, count: int = 1, timeout_s: float = 10.0) -> list[ParkedRecord]:
        queue = self.topology.settings.parking_queue
        return [ParkedRecord.from_bytes(body) for body in self.take(queue, count, timeout_s)]

    def drain(self, queue: str) -> list[bytes]:
        bodies = []
        while (found := self.poll(queue, 0)) is not None:
            bodies.append(found[2])
        return bodies

    def depth(self, queue: str) -> int:
        return self.channel.queue_declare(queue, passive=True).method.message_count


# the start_service fixture of tests/creator/conftest.py: start_creator with the broker given; the service is
# stopped after the test. Here, not in that conftest: another folder's conftest.py shadows "import conftest"
StartService = Callable[..., CreatorService]


def start_creator(rabbit_settings: RabbitMQSettings, topology: Topology,
                  handlers: dict[str, BaseMessageHandler] | None = None,
                  trackers: dict[str, BaseTracker] | None = None, **settings: Any) -> CreatorService:
    """A running task-creator with these handlers (by queue) and trackers (by sent queue); stop it yourself."""
    components = Components()
    for queue, handler in (handlers or {}).items():
        components.handlers[queue] = LoadedHandler(queue, handler.context.system, handler, handler.context.sent_queue)
    for queue, tracker in (trackers or {}).items():
        components.trackers[queue] = LoadedTracker(queue, tracker.context.system, tracker,
                                                   topology.settings.responses_queue)
    creator_settings = CreatorSettings(**{"drain_s": 5, "health_port": 0, **settings})
    service = CreatorService(components, rabbit=rabbit_settings, topology=topology, settings=creator_settings)
    service.start()
    assert service.wait_ready(10), service.readiness()
    return service


@contextmanager
def serve_system(rabbit_settings: RabbitMQSettings, topology: Topology, handler: BaseMessageHandler,
                 tracker: BaseTracker, **settings: Any) -> Iterator[CreatorService]:
    """A task-creator serving one system: its queue with ``handler``, its sent queue with ``tracker``."""
    context = handler.context
    assert context.sent_queue is not None
    service = start_creator(rabbit_settings, topology, {context.queue: handler}, {context.sent_queue: tracker},
                            **settings)
    try:
        yield service
    finally:
        service.stop()


# --- task-creator as a process ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """``task-creator/main.py`` as a real process with ``env``; its output goes to a file in ``home``.

    ``EXCHANGER_INSTANCE=n`` in ``env`` makes it the n-th instance, which listens PORT_STEP·(n−1) above
    ``CREATOR_HEALTH_PORT``: the setting is chosen so that :attr:`port` is where it answers."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.port = free_port()
        offset = (int(env.get("EXCHANGER_INSTANCE", "1")) - 1) * PORT_STEP
        env = {**env, "CREATOR_HEALTH_PORT": str(self.port - offset)}
        self.log = open(home / f"creator-{self.port}.out", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT / "task-creator", env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"task-creator exited with {self.process.returncode}: {self.output()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"task-creator not ready: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()
