"""How long Camunda has been away and which responses wait for it: for ``/metrics`` and ``/readyz``.

Camunda being unreachable (maintenance, a restart, a network cut) is normal: responses wait for it
in RabbitMQ's delay queues as long as it takes. This makes the wait visible. Fed by the fetch loop
and the response handler; read at scrape time. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CamundaAvailability:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._reason = ""
        self._waiting: set[str] = set()

    def down(self, reason: str) -> None:
        """Camunda did not answer (or answered "unavailable"); the first such moment is kept."""
        with self._lock:
            if self._down_since is None:
                self._down_since = self._clock()
            self._reason = reason

    def up(self) -> None:
        """Camunda answered (any answer of the engine itself)."""
        with self._lock:
            self._down_since = None
            self._reason = ""

    def waiting(self, task_id: str) -> None:
        """A response for ``task_id`` waits for Camunda to come back."""
        with self._lock:
            self._waiting.add(task_id)

    def settled(self, task_id: str) -> None:
        """The response for ``task_id`` was applied, parked or found gone."""
        with self._lock:
            self._waiting.discard(task_id)

    @property
    def unreachable_s(self) -> float:
        """Seconds since Camunda last answered, 0 while it answers."""
        with self._lock:
            return 0.0 if self._down_since is None else self._clock() - self._down_since

    @property
    def pending(self) -> int:
        """Responses waiting for Camunda (seen by this process since it started)."""
        with self._lock:
            return len(self._waiting)

    def describe(self) -> str:
        with self._lock:
            if self._down_since is None:
                return ""
            away = self._clock() - self._down_since
            return f"unreachable for {away:.0f}s ({self._reason}); {len(self._waiting)} response(s) waiting"
