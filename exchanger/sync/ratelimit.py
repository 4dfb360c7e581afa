"""The one limiter every StormBPMN call passes: StormBPMN blocks an account that overruns its quota
(5 requests a minute) more than three times a day, so a burst is a defect, not a nuisance.

* A sliding window: at most ``per_minute`` calls in any ``window_s`` seconds (default 4 in 60 s), so a
  restart, a retry or a second pass right after the first can never burst.
* The server's word wins: ``X-Rate-Limit-Remaining: 0`` blocks calls for
  ``X-Rate-Limit-Retry-After-Seconds`` (60 s when absent).
* A 429 blocks calls for the advertised wait and the caller ends its pass; after a second 429 within
  24 hours no call is made until that 429 is 24 hours old (a fourth would block the account).

Call and 429 times are wall-clock seconds and persist (:meth:`snapshot` / :meth:`restore`) across
restarts. The clock and the sleep are injectable, so tests run in milliseconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from loguru import logger

from exchanger.errors import RateLimited

WINDOW_S = 60.0  # the vendor's quota window
DEFAULT_RETRY_AFTER_S = 60.0  # a 429 or an empty budget without a Retry-After header
DAY_S = 86_400.0
MAX_429_PER_DAY = 2  # the vendor blocks the account after the fourth; we stop after the second


class StormRateLimiter:
    def __init__(self, per_minute: float, *, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = max(1, math.floor(per_minute))
        self.window_s = window_s
        self.clock = clock
        self.sleep = sleep
        self.calls: deque[float] = deque()
        self.blocked_until = 0.0
        self.rejections: list[float] = []  # times of 429 answers, the last 24 hours
        self._lock = threading.Lock()

    def wait_s(self) -> float:
        """Seconds until the next call may go (0 = now); raises ``RateLimited`` during a 24-hour stop."""
        now = self.clock()
        self.rejections = [t for t in self.rejections if now - t < DAY_S]
        if len(self.rejections) >= MAX_429_PER_DAY:
            until = self.rejections[-MAX_429_PER_DAY] + DAY_S
            raise RateLimited(f"StormBPMN answered 429 {len(self.rejections)} times in 24 hours; no calls until "
                              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(until))} (a fourth overrun "
                              f"blocks the account)", system="stormbpmn", retry_after_s=until - now)
        while self.calls and now - self.calls[0] >= self.window_s:
            self.calls.popleft()
        wait = max(0.0, self.blocked_until - now)
        if len(self.calls) >= self.limit:
            wait = max(wait, self.calls[0] + self.window_s - now)
        return wait

    def acquire(self) -> None:
        """Block until a call is allowed, then count it."""
        with self._lock:
            while (wait := self.wait_s()) > 0:
                logger.debug("StormBPMN rate limit: waiting {:.1f}s", wait)
                self.sleep(wait)
            self.calls.append(self.clock())

    def observe(self, headers: Any) -> None:
        """Honour the server's budget headers of any answer."""
        remaining = header_number(headers.get("X-Rate-Limit-Remaining"))
        if remaining is not None and remaining <= 0:
            retry = header_number(headers.get("X-Rate-Limit-Retry-After-Seconds")) or DEFAULT_RETRY_AFTER_S
            with self._lock:
                self.blocked_until = max(self.blocked_until, self.clock() + retry)

    def rejected(self, retry_after_s: float | None) -> None:
        """A 429: wait the advertised time and remember it for the daily count."""
        with self._lock:
            now = self.clock()
            self.rejections.append(now)
            self.blocked_until = max(self.blocked_until, now + (retry_after_s or DEFAULT_RETRY_AFTER_S))

    def budget(self) -> dict[str, Any]:
        """For ``status``: calls left in the window now, and 429s in the last 24 hours."""
        with self._lock:
            now = self.clock()
            recent = [t for t in self.calls if now - t < self.window_s]
            return {"calls_left": max(0, self.limit - len(recent)) if now >= self.blocked_until else 0,
                    "limit_per_window": self.limit, "window_s": self.window_s,
                    "rejections_24h": len([t for t in self.rejections if now - t < DAY_S])}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": list(self.calls), "blocked_until": self.blocked_until, "rejections": self.rejections}

    def restore(self, data: dict[str, Any]) -> None:
        with self._lock:
            self.calls = deque(sorted(float(t) for t in data.get("calls", [])))
            self.blocked_until = float(data.get("blocked_until", 0.0))
            self.rejections = [float(t) for t in data.get("rejections", [])]


def header_number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
