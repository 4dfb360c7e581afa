"""The leaky bucket Bitrix24 meters REST calls with, for the client and the fake portal alike.

Bitrix24 counts each request +1 and drains the counter at ``rate_per_s``; a request that would take
the counter past ``burst`` is refused with 503 ``QUERY_LIMIT_EXCEEDED``. The client keeps the same
bucket on its side and *waits* instead of sending, so the portal never has to refuse it; the fake
portal refuses. One class, so both sides agree on the arithmetic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_RATE_PER_S = 2.0  # Bitrix24 cloud, every plan but Enterprise (Enterprise: 5)
DEFAULT_BURST = 50  # Bitrix24 cloud, every plan but Enterprise (Enterprise: 250)


class LeakyBucket:
    """A thread-safe leaky bucket: ``try_take`` asks, ``take`` blocks until admitted.

    ``rate_per_s``: requests drained per second; ``burst``: the counter's ceiling (requests).
    """

    def __init__(
        self,
        *,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._level = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._last) * self.rate_per_s)
        self._last = now

    def try_take(self, reserve: float = 0) -> float:
        """Count one request if it fits and return 0; otherwise return the seconds until it would.

        ``reserve``: slots this request must leave free (a read leaves them to writes, which come first).
        """
        ceiling = max(1.0, self.burst - reserve)
        with self._lock:
            self._drain()
            if self._level + 1 <= ceiling:
                self._level += 1
                return 0.0
            return (self._level + 1 - ceiling) / self.rate_per_s

    def take(self, sleep: Callable[[float], None] = time.sleep, *, reserve: float = 0) -> float:
        """Block until one request fits (leaving ``reserve`` slots free); return the seconds waited.
        Sleeps outside the lock."""
        waited = 0.0
        while (wait := self.try_take(reserve)) > 0:
            sleep(wait)
            waited += wait
        return waited

    def fill(self) -> None:
        """Mark the bucket full: the server refused us, so everyone waits for a drain first."""
        with self._lock:
            self._drain()
            self._level = float(self.burst)

    def level(self) -> float:
        """The current counter, drained to now (for stats and tests)."""
        with self._lock:
            self._drain()
            return self._level

    def reset(self) -> None:
        with self._lock:
            self._level = 0.0
            self._last = self._clock()
