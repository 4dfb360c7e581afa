"""``exchanger migrate from-exchanger-py``: take over Exchanger.py's in-flight work; a dry run by default.

Dry run (the default) reads everything and prints what it found and what it would do; ``--yes`` acts:

1. refuses while the old task-creator holds its lock file (stop and disable the old units first);
2. declares Exchanger's topology (identical to the old one where they overlap);
3. records the *before* inventory once (``before.json``), so that reruns reconcile against it;
4. migrates the old queues in the order responses, dead letters, tracking records, tasks, errors
   (:mod:`exchanger.migration.transfer`);
5. releases the tasks the old worker holds without any message, in paced batches
   (:mod:`exchanger.migration.adoption`);
6. removes what of the old topology would interfere (:mod:`exchanger.migration.cleanup`);
7. prints the reconciliation table and exits 1 if any task or message is unaccounted for.

Exit codes (those of the ``exchanger`` command): 0 done, or nothing to do; 1 a gap in the reconciliation;
2 bad configuration, or the old task-creator still runs; 3 a dry run that found work (nothing was done).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from env_loader import Environment
from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.camunda.client import CamundaClient, CamundaNotFound
from exchanger.camunda.settings import CamundaSettings
from exchanger.migration import adoption, cleanup, old_tool
from exchanger.migration.inventory import (
    HeldTask,
    bitrix_tasks,
    held_summary,
    held_tasks,
    in_tenant,
    scan_queue,
)
from exchanger.migration.journal import PARKED, PUBLISHED, StateDir
from exchanger.migration.legacy import LegacyConversionError, convert, task_id_of
from exchanger.migration.options import DEFAULT_WORKER_ID
from exchanger.migration.reconcile import format_table, reconcile, summary, tsv
from exchanger.migration.transfer import LEFT, Handover, Transfer
from exchanger.routing import RoutingSettings, RoutingTable, load_routing
from exchanger.settings import RabbitMQSettings, TopologySettings, load
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings

EXIT_GAP = 1
EXIT_OLD_RUNNING = 2
EXIT_NOT_CONFIRMED = 3
TABLE_ROWS = 50  # rows printed; the whole table goes to reconciliation.tsv


def main(argv: list[str] | None = None) -> int:
    """``python -m exchanger.migration …`` is ``exchanger migrate from-exchanger-py …``."""
    from exchanger.cli.main import main as cli_main

    return cli_main(["migrate", "from-exchanger-py", *(sys.argv[1:] if argv is None else argv)])


@dataclass
class Sides:
    """Settings and clients of everything the migration talks to."""

    rabbit: RabbitMQSettings
    topology: Topology
    routing: RoutingTable
    camunda_settings: CamundaSettings
    camunda: CamundaClient
    bitrix_settings: Bitrix24Settings | None
    bitrix: Bitrix24Client | None

    @classmethod
    def load(cls) -> Sides:
        rabbit = load(RabbitMQSettings)
        routing = load_routing(load(RoutingSettings))
        topology = Topology(load(TopologySettings), routing.systems, queue_type=rabbit.queue_type,
                            virtual_host=rabbit.virtual_host)
        camunda_settings = load(CamundaSettings)
        bitrix_settings = load(Bitrix24Settings) if _bitrix_configured() else None
        return cls(rabbit, topology, routing, camunda_settings, CamundaClient(camunda_settings), bitrix_settings,
                   Bitrix24Client(bitrix_settings) if bitrix_settings else None)

    def answer_text(self) -> Callable[[str], str | None]:
        """Enum ID → VALUE text of the answer field, read once from the portal (None: unknown or no portal)."""
        values: dict[str, str] = {}
        if self.bitrix is not None and self.bitrix_settings is not None:
            wanted = self.bitrix_settings.answer_field.upper()
            for definition in self.bitrix.user_fields():
                if str(definition.get("FIELD_NAME")).upper() == wanted:
                    values = {str(v.get("ID")): str(v.get("VALUE")) for v in definition.get("LIST") or []}
        return values.get

    def item_url(self) -> Callable[[str], str]:
        bitrix = self.bitrix
        return (lambda task_id: bitrix.task_url(task_id)) if bitrix is not None else (lambda task_id: "")

    def close(self) -> None:
        self.camunda.close()
        if self.bitrix is not None:
            self.bitrix.close()


def _bitrix_configured() -> bool:
    return bool(os.environ.get("BITRIX_WEBHOOK_URL"))


def migrate(environment: Environment, args: argparse.Namespace) -> int:
    old_ids = frozenset(args.old_worker_id or [DEFAULT_WORKER_ID])
    state = StateDir(args.state_dir or environment.root / "state" / "migration" / environment.name)
    lock_file = args.old_lock_file or old_tool.creator_lock_file(environment.name)
    sides = Sides.load()
    try:
        out = Report()
        out.line(f"Exchanger.py → Exchanger ({'ACTING' if args.yes else 'dry run: nothing is changed; --yes acts'})")
        out.line(f"environment {environment.name}, vhost {sides.rabbit.virtual_host!r}, "
                 f"Camunda {sides.camunda_settings.base_url}, tenant {sides.camunda_settings.tenant_id or '(none)'}, "
                 f"new worker id {sides.camunda_settings.worker_id!r}, old worker id(s) {', '.join(sorted(old_ids))}")
        holder = old_tool.lock_holder(lock_file)
        out.line(f"old task-creator lock {lock_file}: {'HELD by ' + holder if holder else 'free'}")
        if holder and args.yes:
            out.line("stop and disable the old units first (exchanger-task-creator-*, exchanger-camunda-worker-*)")
            out.flush()
            return EXIT_OLD_RUNNING
        if not args.yes:
            work = dry_run(sides, old_ids, args, out)
            out.flush()
            return EXIT_NOT_CONFIRMED if work else 0
        return act(sides, old_ids, state, args, out)
    finally:
        sides.close()


class Report:
    """What the command prints (stdout), also logged."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)

    def flush(self) -> None:
        logger.info("migration report:\n{}", "\n".join(self.lines))


# --- dry run ------------------------------------------------------------------------------------------


def dry_run(sides: Sides, old_ids: frozenset[str], args: argparse.Namespace, out: Report) -> int:
    """Print the inventory and the plan; return how many messages and held tasks there are to migrate."""
    held = [task for worker in sorted(old_ids) for task in held_tasks(sides.camunda, worker)]
    seen: set[str] = set()
    parked: set[str] = set()  # tasks whose only message would be parked: they stay as they are
    answer_text, item_url = sides.answer_text(), sides.item_url()

    def plan(body: bytes, headers: dict[str, Any]) -> str:
        try:
            converted = convert(body, headers, worker_id=sides.camunda_settings.worker_id, routing=sides.routing,
                                answer_text=answer_text, item_url=item_url)
        except LegacyConversionError as exc:
            if str(exc).startswith("already"):
                return "left alone (already current)"
            parked.add(task_id_of(body) or "")
            return f"park: {exc}"
        if converted.target != "response" and converted.task_id in seen:
            return "drop: duplicate of a message already migrated"
        seen.add(converted.task_id)
        try:
            sides.camunda.get_task(converted.task_id)
        except CamundaNotFound:
            return "ack: the task is gone from Camunda"
        target = {"response": sides.topology.settings.responses_queue}.get(converted.target) or (
            f"{converted.system}.sent.queue" if converted.target == "sent" else f"{converted.system}.queue")
        return f"→ {target}"

    connection = connect(sides.rabbit, name="migration:dry-run", attempts=sides.rabbit.connection_attempts)
    try:
        out.line()
        out.line(f"{'old queue':32} {'ready':>6} {'consumers':>9}  kinds")
        plans: Counter[str] = Counter()
        for queue in old_tool.QUEUE_ORDER:
            scan = scan_queue(connection, queue, plan=plan, plans=plans)
            if scan.exists:
                kinds = ", ".join(f"{kind}×{count}" for kind, count in sorted(scan.kinds.items())) or "-"
                out.line(f"{queue:32} {scan.ready:>6} {scan.unacked_or_consumers:>9}  {kinds}")
    finally:
        connection.close()
    out.line()
    out.line("would do with the messages:")
    for what, count in sorted(plans.items()):
        out.line(f"  {count:>5}  {what}")
    _print_held(held, out)
    stranded = [t for t in held if in_tenant(t, sides.camunda_settings.tenant_id) and t.id not in seen | parked]
    out.line(f"stranded (held, no message): {len(stranded)} → would be unlocked {args.batch_size} at a time, "
             f"{_adopt_rate(sides, args):g} task(s)/s, for Exchanger's worker to refetch")
    if sides.bitrix is not None and sides.bitrix_settings is not None:
        counts = bitrix_tasks(sides.bitrix, sides.bitrix_settings.external_id_field)
        out.line(f"Bitrix24 tasks with a Camunda external task id: open {counts.get('open', 0)}, "
                 f"closed {counts.get('closed', 0)}")
    out.line(f"old topology: would delete {', '.join(old_tool.OLD_ONLY_QUEUES)} once empty; would unbind "
             + ", ".join(f"{queue} ({key})" for queue, key in old_tool.OLD_BINDINGS))
    return sum(plans.values()) + len(held)


def _print_held(held: list[HeldTask], out: Report) -> None:
    out.line()
    out.line(f"Camunda tasks of the old worker id(s): {len(held)}")
    for (worker, tenant, topic, lock), count in sorted(held_summary(held).items()):
        out.line(f"  {worker:20} tenant {tenant:14} {topic:28} {lock:8} {count:>6}")


def _adopt_rate(sides: Sides, args: argparse.Namespace) -> float:
    if args.adopt_rate:
        return float(args.adopt_rate)
    rate = sides.bitrix_settings.rate_per_s if sides.bitrix_settings else Bitrix24Settings.model_fields[
        "rate_per_s"].default
    return max(0.1, rate * adoption.PORTAL_SHARE)


# --- acting -------------------------------------------------------------------------------------------


def act(sides: Sides, old_ids: frozenset[str], state: StateDir, args: argparse.Namespace, out: Report) -> int:
    camunda, tenant = sides.camunda, sides.camunda_settings.tenant_id
    connection = connect(sides.rabbit, name="migration", attempts=sides.rabbit.connection_attempts)
    try:
        sides.topology.declare(connection)
        before = state.load_before()
        if before is None:
            held = [task for worker in sorted(old_ids) for task in held_tasks(camunda, worker)]
            others = [t for t in held if not in_tenant(t, tenant)]
            if others:
                out.line(f"{len(others)} held task(s) of other tenants are left to their environment's migration")
            before = {"tasks": [t.as_dict() for t in held if in_tenant(t, tenant)],
                      "queues": {q: scan_queue(connection, q).ready for q in old_tool.QUEUE_ORDER}}
            state.save_before(before)
        out.line(f"before: {len(before['tasks'])} task(s) held by the old worker id(s); "
                 f"{sum(before['queues'].values())} message(s) in the old queues (state in {state.path})")
        handover = Handover(camunda, sides.camunda_settings.worker_id, old_ids, sides.camunda_settings.lock_duration)
        with Publisher(sides.rabbit, sides.topology, name="migration") as publisher:
            transfer = Transfer(publisher, sides.topology, sides.routing, handover, state,
                                answer_text=sides.answer_text(), item_url=sides.item_url())
            out.line()
            out.line(f"{'old queue':32} {'read':>6}  result")
            old_left: dict[str, int] = {}
            for queue in old_tool.QUEUE_ORDER:
                result = transfer.run(connection, queue)
                if result.counts[LEFT]:
                    old_left[queue] = result.counts[LEFT]
                if result.before:
                    counts = ", ".join(f"{a} {n}" for a, n in sorted(result.counts.items()))
                    out.line(f"{queue:32} {result.before:>6}  {counts}")
    finally:
        if connection.is_open:
            connection.close()  # the paced release below may take longer than the broker's heartbeat
    parked_or_done = {e.task_id for e in state.entries() if e.action in (PUBLISHED, PARKED) and e.task_id}
    stranded = [t for worker in sorted(old_ids) for t in held_tasks(camunda, worker)
                if in_tenant(t, tenant) and t.id not in parked_or_done]
    released = adoption.release(camunda, stranded, state, batch_size=args.batch_size,
                                rate_per_s=_adopt_rate(sides, args))
    out.line(f"stranded tasks released to the new worker: {released}")
    connection = connect(sides.rabbit, name="migration:cleanup", attempts=sides.rabbit.connection_attempts)
    try:
        for note in cleanup.remove_old_topology(connection, keep_queues=args.keep_old_queues):
            out.line(f"old topology: {note}")
    finally:
        connection.close()
    rows = reconcile(camunda, before["tasks"], state.entries(), new_worker_id=sides.camunda_settings.worker_id,
                     old_worker_ids=old_ids)
    (state.path / "reconciliation.tsv").write_text(tsv(rows), encoding="utf-8")
    gaps = [row for row in rows if not row.accounted]
    out.line()
    out.line("reconciliation: " + ", ".join(f"{where} {n}" for where, n in sorted(summary(rows).items())))
    out.line(format_table(gaps or rows, TABLE_ROWS))
    for queue, count in old_left.items():
        out.line(f"GAP: {count} old-format message(s) still in {queue}")
    ok = not gaps and not old_left
    out.line(f"{'OK' if ok else 'NOT DONE'}: {len(rows)} task(s) held before, {len(gaps)} unaccounted; "
             f"{sum(old_left.values())} old message(s) left" + ("" if ok else "; run it again after fixing the cause"))
    out.flush()
    return 0 if ok else EXIT_GAP


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
