"""The read-only look at the old side: queue depths and message kinds, held Camunda tasks, Bitrix24 tasks.

Nothing here changes anything: messages are read unacked and go back when the channel closes (the
broker marks them redelivered, which no consumer treats differently), Camunda and Bitrix24 are only
queried. The dry run prints this and what the migration would do with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker

from exchanger.camunda.client import CamundaClient
from exchanger.migration.legacy import classify, task_id_of
from exchanger.systems.bitrix24.client import Bitrix24Client, camel_key

Plan = Callable[[bytes, dict[str, Any]], str]  # an old message → what the migration would do with it
PAGE = 500  # Camunda list page (the old tool's own inventory used the same)
BITRIX_OPEN_STATUSES = ("1", "2", "3", "4", "6")


@dataclass
class QueueScan:
    name: str
    exists: bool = False
    ready: int = 0
    unacked_or_consumers: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    task_ids: dict[str, list[str]] = field(default_factory=dict)  # kind → task ids seen


@dataclass
class HeldTask:
    id: str
    worker_id: str
    tenant_id: str | None
    topic: str
    locked: bool  # False: the lock expired (anyone may fetch it now)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def queue_depth(connection: BlockingConnection, queue: str) -> tuple[bool, int, int]:
    """(exists, ready messages, consumers) by a passive declare on a channel of its own."""
    channel = connection.channel()
    try:
        ok = channel.queue_declare(queue, passive=True)
    except ChannelClosedByBroker:
        return False, 0, 0
    channel.close()
    return True, ok.method.message_count, ok.method.consumer_count


def messages(connection: BlockingConnection, queue: str,
             count: int) -> Iterator[tuple[BlockingChannel, Any, Any, bytes]]:
    """Up to ``count`` messages of ``queue`` (channel, method, properties, body), read unacked on a channel of
    their own; what was not acked when the iteration ends goes back, in order."""
    channel = connection.channel()
    try:
        for _ in range(count):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return
            yield channel, method, properties, body
    finally:
        if channel.is_open:
            channel.close()


def scan_queue(connection: BlockingConnection, queue: str, *, plan: Plan | None = None,
               plans: Counter[str] | None = None) -> QueueScan:
    """Depth and the kind of every ready message, read unacked and given back; with ``plan``, what would
    happen to each message is counted into ``plans``."""
    scan = QueueScan(queue)
    scan.exists, scan.ready, scan.unacked_or_consumers = queue_depth(connection, queue)
    if not scan.exists:
        return scan
    for _channel, _method, properties, body in messages(connection, queue, scan.ready):
        kind = classify(body, properties.headers)
        scan.kinds[kind] += 1
        scan.task_ids.setdefault(kind, []).append(task_id_of(body) or "?")
        if plan is not None and plans is not None:
            plans[f"{kind:8} {plan(body, dict(properties.headers or {}))}"] += 1
    return scan  # everything read went back, in order


def held_tasks(camunda: CamundaClient, worker_id: str) -> list[HeldTask]:
    """Every external task whose lock names ``worker_id``, expired or not, all tenants, oldest first."""
    locked = {task["id"] for task in _all(camunda, workerId=worker_id, locked=True)}
    return [HeldTask(id=task["id"], worker_id=worker_id, tenant_id=task.get("tenantId"),
                     topic=str(task.get("topicName")), locked=task["id"] in locked)
            for task in _all(camunda, workerId=worker_id)]


def _all(camunda: CamundaClient, **filters: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = camunda.list_tasks(sortBy="createTime", sortOrder="asc", firstResult=len(found), maxResults=PAGE,
                                  **filters)
        found += page
        if len(page) < PAGE:
            return found


def held_summary(tasks: list[HeldTask]) -> Counter[tuple[str, str, str, str]]:
    """Counts per (worker id, tenant, topic, locked|expired)."""
    return Counter((t.worker_id, t.tenant_id or "(none)", t.topic, "locked" if t.locked else "expired")
                   for t in tasks)


def in_tenant(task: HeldTask, tenant_id: str) -> bool:
    """Whether this environment's settings own the task (empty tenant = tasks without a tenant)."""
    return (task.tenant_id or "") == tenant_id


def bitrix_tasks(client: Bitrix24Client, external_id_field: str) -> dict[str, int]:
    """How many portal tasks carry a Camunda external task id: open and closed."""
    key = camel_key(external_id_field)
    counts: Counter[str] = Counter()
    start = 0
    while True:
        answer = client.envelope("tasks.task.list", {
            "filter": {f"!{external_id_field}": ""}, "select": ["ID", "STATUS", external_id_field],
            "order": {"ID": "asc"}, "start": start}, read=True)
        tasks = (answer.get("result") or {}).get("tasks") or []
        for task in tasks:
            if task.get(key):
                counts["open" if str(task.get("status")) in BITRIX_OPEN_STATUSES else "closed"] += 1
        if not answer.get("next") or not tasks:
            return dict(counts)
        start = int(answer["next"])
