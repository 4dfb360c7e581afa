"""Instances of a daemon on one host: each takes its own lock file and its own health port.

``EXCHANGER_INSTANCE`` (1 by default, :mod:`env_loader`) numbers the copies of camunda-worker or
task-creator that one host runs for one environment. Instance *n* holds an exclusive ``flock`` on
``<lock dir>/<component>[-n].<env>.lock``, so that an accidental second start of the same instance
fails, naming the PID that holds it, while a second instance started on purpose (``EXCHANGER_INSTANCE=2``)
runs next to the first. Their health endpoints are :data:`PORT_STEP` apart (:func:`health_port`).

The lock file holds the PID of the holder. The kernel drops the lock when its holder dies, so a lock
file left by a killed process is simply taken over (and logged); no stale-PID guessing is needed.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from loguru import logger

from env_loader import Environment
from exchanger.errors import ConfigError, ExchangerError

PORT_STEP = 100  # instance n listens on the configured health port + (n - 1) * PORT_STEP


class InstanceLocked(ExchangerError):
    """Another live process holds the lock; the message names its PID and the lock file."""


def lock_path(component: str, environment: Environment, lock_dir: str = "") -> Path:
    """``<lock_dir or run/>/<component>[-n].<env>.lock``: one lock per daemon, environment and instance."""
    folder = Path(lock_dir) if lock_dir else environment.root / "run"
    return folder / f"{environment.process_name(component)}.{environment.name}.lock"


def instance_lock(component: str, environment: Environment, lock_dir: str = "") -> InstanceLock:
    label = f"{environment.process_name(component)} ({environment.name})"
    return InstanceLock(lock_path(component, environment, lock_dir), label)


def instance_port(port: int, instance: int) -> int:
    """Where instance ``instance`` of a daemon configured with health port ``port`` listens (0 stays off);
    ``exchanger status`` looks there for the further instances. May exceed 65535: callers check."""
    return port + (instance - 1) * PORT_STEP if port else 0


def health_port(port: int, environment: Environment, setting: str) -> int:
    """The health port of this instance: ``port`` for the first, :data:`PORT_STEP` higher for each next
    one (0 stays off), so that instances on one host never collide and ``exchangerctl`` finds them."""
    mine = instance_port(port, environment.instance)
    if mine > 65535:
        raise ConfigError(f"{setting}={port} leaves no port for instance {environment.instance} "
                          f"({port} + {(environment.instance - 1) * PORT_STEP} > 65535); choose a lower port")
    return mine


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InstanceLock:
    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label  # e.g. "task-creator (dev)", for the message
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`InstanceLocked`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="ascii")  # held open while the process runs
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise InstanceLocked(
                f"{self.label} is already running as PID {holder} (lock file {self.path}); stop it first "
                f"(systemctl stop, or kill {holder}); to run one more on this host on purpose, start it with "
                f"EXCHANGER_INSTANCE=2 (README, \"Two of each\")"
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        if previous.isdigit() and int(previous) != os.getpid():
            state = "still alive but not holding it" if _pid_alive(int(previous)) else "gone"
            logger.info("took over the lock {} left by PID {} ({})", self.path, previous, state)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ForeignLock:
    """A *shared* ``flock`` on another program's lock file: Exchanger.py's task-creator takes its file
    exclusively, so it cannot start while any Exchanger creator holds this, and no Exchanger creator can
    take it while the old one runs. Shared, so that Exchanger creators of one environment do not exclude
    each other through it (their own :class:`InstanceLock` does that)."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label  # e.g. "Exchanger.py's task-creator (dev)"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8", errors="replace")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = " ".join(handle.read().split()) or "unknown"
            handle.close()
            raise InstanceLocked(
                f"{self.label} is running ({holder}; lock file {self.path}); stop and disable its units "
                f"(exchanger-task-creator-*) and migrate (exchanger migrate from-exchanger-py) first"
            ) from None
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
