"""The count that proves nothing was lost: every task the old worker held before, and where it is now.

One row per task of ``before.json``, from Camunda's answer now and the journal:

=========================  ============================================================================
completed or gone          Camunda no longer has it (done, or cancelled by a boundary event)
in <queue>                 held by the new worker id, its converted message published there
parked: <reason>           its message is in the parking lot with the reason (the task stays as it was)
released                   unlocked without a message: Exchanger's worker fetches it
held by the new worker     refetched by Exchanger's worker after its release
=========================  ============================================================================

Anything else (still locked by the old id, held by a stranger, or an old message left in a queue) is a
gap, and the migration exits non-zero.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from exchanger.camunda.client import CamundaClient, CamundaNotFound
from exchanger.migration import journal
from exchanger.migration.journal import Entry


@dataclass
class Row:
    task_id: str
    topic: str
    tenant: str
    where: str
    accounted: bool


def reconcile(camunda: CamundaClient, before: list[dict[str, str]], entries: list[Entry], *,
              new_worker_id: str, old_worker_ids: frozenset[str]) -> list[Row]:
    last: dict[str, Entry] = {}
    for entry in entries:
        if entry.task_id and entry.action != journal.DUPLICATE:
            last[entry.task_id] = entry
    return [_row(camunda, task, last.get(task["id"]), new_worker_id, old_worker_ids) for task in before]


def _row(camunda: CamundaClient, task: dict[str, str], entry: Entry | None, new_worker_id: str,
         old_worker_ids: frozenset[str]) -> Row:
    def row(where: str, accounted: bool = True) -> Row:
        return Row(task["id"], task.get("topic") or "", task.get("tenant_id") or "", where, accounted)

    try:
        now = camunda.get_task(task["id"])
    except CamundaNotFound:
        return row("completed or gone")
    owner = now.get("workerId")
    if entry is not None and entry.action == journal.PARKED:
        return row(f"parked: {entry.detail}")
    if owner == new_worker_id:
        if entry is not None and entry.action == journal.PUBLISHED:
            return row(f"in {entry.detail}")
        return row("held by the new worker")
    if owner is None:
        return row("released" if entry is not None and entry.action == journal.RELEASED else "unlocked")
    if owner in old_worker_ids:
        return row(f"still held by the old worker id {owner}", accounted=False)
    return row(f"held by worker {owner}", accounted=False)


def summary(rows: list[Row]) -> Counter[str]:
    """Rows per place, the place without its detail (``in bitrix24.sent.queue`` stays whole)."""
    return Counter(row.where.split(":")[0] for row in rows)


def format_table(rows: list[Row], limit: int | None = None) -> str:
    shown = rows if limit is None else rows[:limit]
    lines = [f"{'camunda task':38} {'topic':24} {'tenant':12} where now"]
    lines += [f"{r.task_id:38} {r.topic:24} {r.tenant or '-':12} {r.where}{'' if r.accounted else '   <-- GAP'}"
              for r in shown]
    if len(shown) < len(rows):
        lines.append(f"… {len(rows) - len(shown)} more rows in reconciliation.tsv")
    return "\n".join(lines)


def tsv(rows: list[Row]) -> str:
    lines = ["task_id\ttopic\ttenant\twhere\taccounted"]
    lines += [f"{r.task_id}\t{r.topic}\t{r.tenant}\t{r.where}\t{'yes' if r.accounted else 'NO'}" for r in rows]
    return "\n".join(lines) + "\n"
