"""What Exchanger.py left behind, by name: its queues, its bindings, its worker id, its lock file.

Facts read from Exchanger.py's source and its deployment (README.md, "Switching from Exchanger.py"), in one
place so that the inventory, the migration and the clean-up agree on them.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

TASKS_EXCHANGE = "camunda.external.tasks"
ERRORS_QUEUE = "errors.camunda_tasks.queue"  # the old error queue is Exchanger's parking lot
RESPONSES_QUEUE = "camunda.responses.queue"
DEAD_LETTER_QUEUE = "bitrix24.dead_letter.queue"
OLD_SYSTEMS = ("bitrix24", "openproject", "1c", "python-services", "default")

# queues in the order they are migrated: responses first (R > S > T > E when a task id is seen twice)
QUEUE_ORDER: tuple[str, ...] = (
    RESPONSES_QUEUE,
    DEAD_LETTER_QUEUE,
    *(f"{system}.sent.queue" for system in OLD_SYSTEMS),
    *(f"{system}.queue" for system in OLD_SYSTEMS),
    ERRORS_QUEUE,
)
# queues only the old tool used: deleted once empty (python-services.queue keeps a python.* binding and
# would receive a copy of every new python.<topic> task)
OLD_ONLY_QUEUES = ("python-services.queue", "python-services.sent.queue", DEAD_LETTER_QUEUE)
# bindings of the old tasks exchange Exchanger does not use (its system queues are bound with <system>.#)
OLD_BINDINGS: tuple[tuple[str, str], ...] = (
    ("bitrix24.queue", "bitrix24.*"),
    ("openproject.queue", "openproject.*"),
    ("1c.queue", "1c.*"),
    (ERRORS_QUEUE, "errors.camunda_tasks"),
)


def creator_lock_file(environment: str) -> Path:
    """The old task-creator's ``flock`` file (held while it runs, removed on a clean exit)."""
    return Path(f"/tmp/exchanger-task-creator-{environment}.lock")


def lock_holder(path: Path) -> str | None:
    """What the lock file says about its holder when some process holds the lock, else None."""
    if not path.exists():
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return " ".join(handle.read().split()) or "unknown"
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        return None
    return None
