"""What is in the broker, for operators: queue depths and consumers, and a peek at messages.

Queues are listed by the management API (``RABBITMQ_MANAGEMENT_URL``), else a local ``rabbitmqctl``,
else passive declares of every queue the topology can have: the consumable queues, the parking lot and
the delay queues of each step of the delay ladder. Only the latter misses queues of other names (the
per-millisecond delay queues of installations before the ladder), and says so.

A peek takes messages with ``basic.get`` without acking, keeps all of them until it has what it wants,
and gives them back by closing its channel. Closing returns messages to where they were (a classic queue
requeues to the original position; a quorum queue redelivers returned messages first), and unlike a
``basic.reject``/``nack`` (what the management UI's "get messages" does, one message at a time) it does
not count as a failed delivery in a quorum queue's delivery limit. The cost: while the peek runs (a few
milliseconds) the peeked messages are invisible to consumers, and they come back with ``redelivered``
set. Messages a consumer holds unacked are never seen.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from pika.exceptions import ChannelClosedByBroker

from exchanger.amqp.connection import connect
from exchanger.amqp.topology import DELAY_LADDER_S, Topology
from exchanger.settings import RabbitMQSettings

RABBITMQCTL_TIMEOUT_S = 30.0  # rabbitmqctl starts an Erlang VM: slow, but bounded


@dataclass
class QueueInfo:
    name: str
    ready: int | None  # None: the queue does not exist
    consumers: int | None
    unacked: int | None = None  # known only from the management API or rabbitmqctl

    @property
    def exists(self) -> bool:
        return self.ready is not None


@dataclass
class Listing:
    """Queues of the vhost and where the figures came from (``management``, ``rabbitmqctl``, ``passive``)."""

    queues: list[QueueInfo]
    source: str
    complete: bool  # False: only the topology's queues (delay queues unknown)
    note: str = ""

    def by_name(self) -> dict[str, QueueInfo]:
        return {queue.name: queue for queue in self.queues}


@dataclass
class Peeked:
    """One message seen by a peek, left in its queue."""

    queue: str
    body: bytes
    correlation_id: str | None
    message_id: str | None
    timestamp: int | None  # seconds since the epoch, when the publisher set it
    redelivered: bool
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def age_s(self) -> float | None:
        return None if self.timestamp is None else max(0.0, time.time() - self.timestamp)

    def task_id(self) -> str | None:
        """The external task this message is about: its correlation id, else a ``task_id`` in the body."""
        if self.correlation_id:
            return self.correlation_id
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        task = body.get("task")
        if isinstance(task, dict) and task.get("task_id"):
            return str(task["task_id"])
        return str(body["task_id"]) if body.get("task_id") else None


def known_queues(topology: Topology) -> list[str]:
    """Every queue the topology may declare, the delay queues of the whole ladder included."""
    delays = [topology.delay_queue(step) for step in DELAY_LADDER_S]
    return list(dict.fromkeys([*topology.consumable_queues, "default.queue", topology.settings.parking_queue,
                               *delays]))


def list_queues(rabbit: RabbitMQSettings, topology: Topology, *, use_rabbitmqctl: bool = True) -> Listing:
    """Queues of the vhost: the management API if configured, else rabbitmqctl if it works here, else passive."""
    if rabbit.management_url:
        return Listing(_from_management(rabbit, rabbit.management_url), "management", complete=True)
    if use_rabbitmqctl and shutil.which("rabbitmqctl") and rabbit.host in ("localhost", "127.0.0.1", "::1"):
        queues = _from_rabbitmqctl(rabbit.virtual_host)
        if queues is not None:
            return Listing(queues, "rabbitmqctl", complete=True)
    found = passive(rabbit, known_queues(topology))
    delays = {topology.delay_queue(step) for step in DELAY_LADDER_S}
    return Listing([q for q in found if q.exists or q.name not in delays], "passive", complete=True,
                   note="queues outside the topology are not listed (RABBITMQ_MANAGEMENT_URL shows all)")


def passive(rabbit: RabbitMQSettings, names: list[str]) -> list[QueueInfo]:
    """Depth and consumers of each named queue by passive declare; a missing queue has ``ready`` None."""
    connection = connect(rabbit, name="exchanger-cli:queues", attempts=rabbit.connection_attempts)
    found = []
    pika_log = logging.getLogger("pika.channel")
    level = pika_log.level
    pika_log.setLevel(logging.ERROR)  # a missing queue is an answer here, not a warning worth printing
    try:
        channel = connection.channel()
        for name in names:
            try:
                method = channel.queue_declare(name, passive=True).method
                found.append(QueueInfo(name, method.message_count, method.consumer_count))
            except ChannelClosedByBroker:  # 404: the broker closed the channel
                found.append(QueueInfo(name, None, None))
                channel = connection.channel()
    finally:
        connection.close()
        pika_log.setLevel(level)
    return found


def _from_management(rabbit: RabbitMQSettings, url: str) -> list[QueueInfo]:
    from exchanger.http_client import HttpClient, segment

    client = HttpClient(url.rstrip("/"), system="rabbitmq-management",
                        auth=(rabbit.username, rabbit.password.get_secret_value()), attempts=2)
    try:
        rows = client.request("GET", f"/api/queues/{segment(rabbit.virtual_host)}",
                              params={"columns": "name,messages_ready,messages_unacknowledged,consumers"}).json()
    finally:
        client.close()
    return [QueueInfo(row["name"], int(row.get("messages_ready") or 0), int(row.get("consumers") or 0),
                      int(row.get("messages_unacknowledged") or 0)) for row in rows]


def _from_rabbitmqctl(vhost: str) -> list[QueueInfo] | None:
    try:
        result = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged",
             "consumers", "--formatter", "json"],
            capture_output=True, text=True, timeout=RABBITMQCTL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        rows = json.loads(result.stdout or "[]")
    except ValueError:
        return None
    return [QueueInfo(row["name"], int(row["messages_ready"]), int(row["consumers"]),
                      int(row["messages_unacknowledged"])) for row in rows]


def peek(rabbit: RabbitMQSettings, queues: list[str], limit: int | None = None) -> list[Peeked]:
    """Up to ``limit`` messages of each queue (None: all), every one left where it was (see the module doc)."""
    connection = connect(rabbit, name="exchanger-cli:peek", attempts=rabbit.connection_attempts)
    seen: list[Peeked] = []
    try:
        channel = connection.channel()
        for queue in queues:
            taken = 0
            while limit is None or taken < limit:
                try:
                    method, properties, body = channel.basic_get(queue, auto_ack=False)
                except ChannelClosedByBroker:  # the queue does not exist (any more)
                    channel = connection.channel()
                    break
                if method is None:
                    break
                taken += 1
                seen.append(Peeked(queue, body, properties.correlation_id, properties.message_id,
                                   properties.timestamp, bool(method.redelivered), dict(properties.headers or {})))
    finally:
        connection.close()  # every unacked message goes back to its queue
    return seen
