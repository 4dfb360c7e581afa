"""Adopting the tasks the old worker holds with no message anywhere (stranded): unlock them in batches.

Such a task is waiting for a tracker that will never look again (its tracking record is lost, or the
old tracker died with it unacked). Unlocked, it is fetched by Exchanger's worker like any new task; the
Bitrix24 handler first looks the task up by ``UF_CAMUNDA_ID_EXTERNAL_TASK`` (the field the old tool
wrote, with the same value) and so tracks the existing Bitrix24 task instead of creating a second one.

Each refetched task costs the portal at least one call (the lookup), so tasks are released in batches
paced to ``rate_per_s`` tasks a second, leaving the rest of the portal's budget to the trackers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

from exchanger.camunda.client import CamundaClient, CamundaNotFound
from exchanger.migration import journal
from exchanger.migration.inventory import HeldTask
from exchanger.migration.journal import Entry, StateDir
from exchanger.migration.options import DEFAULT_BATCH_SIZE

PORTAL_SHARE = 0.5  # share of the portal's request rate the refetched tasks may use


def release(
    camunda: CamundaClient,
    tasks: list[HeldTask],
    state: StateDir,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    rate_per_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Unlock ``tasks`` ``batch_size`` at a time, ``batch_size / rate_per_s`` seconds apart; return how many."""
    released = 0
    for start in range(0, len(tasks), batch_size):
        if start:
            sleep(batch_size / rate_per_s)
        for task in tasks[start:start + batch_size]:
            try:
                camunda.unlock(task.id)
                action, detail = journal.RELEASED, "unlocked for the new worker to fetch"
            except CamundaNotFound:
                action, detail = journal.GONE, "Camunda no longer has the task"
            state.record(Entry(action, "", "held", task.id, detail))
            released += action == journal.RELEASED
        logger.info("released {} of {} stranded task(s)", min(start + batch_size, len(tasks)), len(tasks))
    return released
