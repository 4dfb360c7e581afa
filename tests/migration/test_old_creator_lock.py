"""An old (Exchanger.py) and a new task-creator never run at once: the new one holds the old one's lock
file shared, so the old one's exclusive ``flock`` fails, and the new one refuses while the old one runs."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exchanger.instances import ForeignLock, InstanceLocked
from exchanger.migration.old_tool import lock_holder

ROOT = Path(__file__).resolve().parents[2]


def old_creator_takes(path: Path) -> object | None:
    """What the old task-creator does at start: an exclusive, non-blocking flock; None if refused."""
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.write("PID: 4242\nTime: 2026-11-29 10:00:00\n")
    handle.flush()
    return handle


def test_new_creators_share_the_old_lock_and_keep_the_old_creator_out(tmp_path: Path) -> None:
    path = tmp_path / "exchanger-task-creator-dev.lock"
    first, second = ForeignLock(path, "old"), ForeignLock(path, "old")
    first.acquire()
    second.acquire()  # two Exchanger creators (prod and dev tests, a restart) do not exclude each other here
    assert old_creator_takes(path) is None
    first.release()
    second.release()
    handle = old_creator_takes(path)
    assert handle is not None
    with pytest.raises(InstanceLocked, match="PID: 4242"):
        ForeignLock(path, "Exchanger.py's task-creator (dev)").acquire()
    assert lock_holder(path) == "PID: 4242 Time: 2026-11-29 10:00:00"
    handle.close()  # type: ignore[attr-defined]
    assert lock_holder(path) is None


def test_task_creator_refuses_to_start_while_the_old_one_runs(tmp_path: Path) -> None:
    path = tmp_path / "old-{env}.lock"
    handle = old_creator_takes(tmp_path / "old-dev.lock")
    (tmp_path / ".env.dev").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(tmp_path), "CREATOR_LEGACY_LOCK_FILE": str(path),
                "CREATOR_LOCK_DIR": str(tmp_path / "run"), "CREATOR_HEALTH_PORT": "0"})
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT / "task-creator", env=env, capture_output=True,
                            text=True, timeout=60)
    handle.close()  # type: ignore[union-attr]
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Exchanger.py's task-creator (dev) is running (PID: 4242" in result.stderr
