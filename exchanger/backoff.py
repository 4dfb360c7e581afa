"""Capped exponential backoff with jitter: the one formula every wait between attempts in Exchanger uses.

``delay(n) = min(max_s, initial_s * factor ** (n - 1))``, then jittered down by up to ``jitter`` of
itself, so that many workers that failed together do not retry together (the Java external task
client's ``ExponentialErrorBackoffStrategy`` is the model; no fixed long sleeps anywhere). HTTP calls
are retried by :class:`exchanger.http_client.CallRetryPolicy`, the broker's deliveries by the consumer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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
