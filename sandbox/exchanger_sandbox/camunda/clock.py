"""The engine's clock: wall time plus an offset that tests (and ``POST /_admin/clock``) can move.

Camunda has ``ClockUtil`` for the same purpose. Locks, retry timeouts and timers all read this clock,
so moving it forward expires them without sleeping. Listeners hear about every jump (the engine uses
that to fire due timers and wake long polls at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    """Milliseconds since the epoch. ``start_ms`` freezes the clock at that instant (it then moves only
    when advanced); without it the clock follows wall time."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._frozen_at = start_ms
        self._offset_ms = 0
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        base = self._frozen_at if self._frozen_at is not None else int(time.time() * 1000)
        return base + self._offset_ms

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def advance(self, ms: int) -> None:
        """Move time forward by ``ms`` milliseconds, then tell the listeners."""
        with self._lock:
            self._offset_ms += int(ms)
        for listener in list(self._listeners):
            listener()

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
