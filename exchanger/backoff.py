"""Capped exponential backoff with jitter: the one formula every retry loop in Exchanger uses.

``delay(n) = min(max_s, initial_s * factor ** (n - 1))``, then jittered down by up to ``jitter`` of
itself, so that many workers that failed together do not retry together (the Java external task
client's ``ExponentialErrorBackoffStrategy`` is the model; no fixed long sleeps anywhere).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from loguru import logger

from exchanger.errors import TransientError

T = TypeVar("T")

DEFAULT_INITIAL_S = 0.5  # first retry after half a second
DEFAULT_FACTOR = 2.0  # doubling
DEFAULT_MAX_S = 60.0  # never wait more than a minute between attempts
DEFAULT_JITTER = 0.3  # up to 30 % shorter, at random


@dataclass(frozen=True)
class Backoff:
    initial_s: float = DEFAULT_INITIAL_S
    factor: float = DEFAULT_FACTOR
    max_s: float = DEFAULT_MAX_S
    jitter: float = DEFAULT_JITTER

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * random.random())


def retry_call(
    function: Callable[[], T],
    *,
    attempts: int,
    backoff: Backoff = Backoff(),
    retry_on: tuple[type[BaseException], ...] = (TransientError,),
    what: str = "call",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``function`` up to ``attempts`` times, sleeping between failures that are ``retry_on``.

    A ``TransientError`` carrying ``retry_after_s`` (a server's Retry-After) is honoured when longer
    than the backoff. The last error is re-raised unchanged.
    """
    for attempt in range(1, attempts + 1):
        try:
            return function()
        except retry_on as exc:
            if attempt >= attempts:
                raise
            wait = backoff.delay(attempt)
            retry_after = getattr(exc, "retry_after_s", None)
            if retry_after:
                wait = max(wait, min(retry_after, backoff.max_s))
            logger.warning("{} failed ({}); retry {}/{} in {:.2f}s", what, exc, attempt, attempts - 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
