"""How often and after which delays a failed task is tried again.

A policy is the list of waits before each retry. It is written like Camunda's
``failedJobRetryTimeCycle``: ``R3/PT5M`` (three retries, five minutes apart) or a comma-separated
list of ISO 8601 durations (``PT10S,PT1M,PT5M``: three retries with growing waits). It comes from the
BPMN activity's extension property ``retryConfig`` when present, else from ``CREATOR_RETRY_CONFIG``.

Two ways to use it, one policy:

* queue retries (transient errors in a handler): delivery ``attempt`` n waits ``delays[n-1]`` and is
  delivered again; when ``attempt > retries`` the retries are exhausted;
* Camunda retries (the python system): the failure reports ``retries_left`` and the timeout of that
  retry; Camunda schedules it (``task.retries`` is None on the first fetch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loguru import logger

from exchanger.contracts import TaskMessage
from exchanger.errors import ConfigError

RETRY_PROPERTY = "retryConfig"  # the BPMN extension property that overrides the default policy
DEFAULT_RETRY_CONFIG = "PT10S,PT1M,PT5M,PT15M"  # four retries, growing waits, ~21 minutes in all

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_REPEAT = re.compile(r"^R(?P<n>\d+)/(?P<duration>P.+)$")


def parse_duration_ms(text: str) -> int:
    """An ISO 8601 duration (``PT5M``, ``PT1H30M``, ``P1D``, ``PT0.5S``) in milliseconds."""
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT30S, PT5M or PT1H")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    seconds = parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    return int(round(seconds * 1000))


@dataclass(frozen=True)
class RetryPolicy:
    delays_ms: tuple[int, ...]  # wait before retry 1, 2, …
    source: str = ""  # where it came from, for log lines and failure messages

    @classmethod
    def parse(cls, text: str, source: str = "") -> RetryPolicy:
        """``R<n>/<duration>`` or ``<duration>,<duration>,…``; an empty text means no retries at all."""
        text = text.strip()
        if not text:
            return cls((), source)
        repeat = _REPEAT.match(text.upper())
        if repeat:
            return cls((parse_duration_ms(repeat["duration"]),) * int(repeat["n"]), source)
        return cls(tuple(parse_duration_ms(part) for part in text.split(",") if part.strip()), source)

    @classmethod
    def for_task(cls, task: TaskMessage, default: RetryPolicy) -> RetryPolicy:
        """The activity's ``retryConfig`` if it has a valid one, else ``default`` (a bad one is logged)."""
        text = task.prop(RETRY_PROPERTY)
        if not text:
            return default
        try:
            return cls.parse(text, source=f"{RETRY_PROPERTY} of {task.activity_id or task.topic_name}")
        except ValueError as exc:
            logger.warning("task {}: ignoring {}={!r} ({}); using {}", task.task_id, RETRY_PROPERTY, text, exc,
                           default.source or "the default policy")
            return default

    @property
    def retries(self) -> int:
        return len(self.delays_ms)

    # --- queue retries ----------------------------------------------------------------------------

    def delay_for_attempt(self, attempt: int) -> int | None:
        """The wait after failed delivery ``attempt`` (1-based), or None when the retries are used up."""
        if attempt < 1 or attempt > self.retries:
            return None
        return self.delays_ms[attempt - 1]

    # --- Camunda retries --------------------------------------------------------------------------

    def retries_left(self, task_retries: int | None) -> int:
        """What a failure reports as ``retries`` (None on the first fetch means the full policy)."""
        return self.retries if task_retries is None else max(0, task_retries - 1)

    def timeout_for(self, retries_left: int) -> int | None:
        """The retry timeout reported with ``retries_left`` (None when nothing is left)."""
        if retries_left <= 0 or not self.delays_ms:
            return None
        index = min(max(self.retries - retries_left, 0), self.retries - 1)
        return self.delays_ms[index]


def policy_setting(text: str, variable: str) -> RetryPolicy:
    """Parse a policy from a setting, or stop the start naming the variable."""
    try:
        return RetryPolicy.parse(text, source=variable)
    except ValueError as exc:
        raise ConfigError(f"{variable}={text!r}: {exc}; write R3/PT5M or PT10S,PT1M,PT5M") from None
