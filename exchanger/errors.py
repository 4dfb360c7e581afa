"""The error hierarchy every part of Exchanger raises and catches.

Three families. *Outcomes* (``BpmnError``, ``Incident``) are what a handler or task function raises to
decide a Camunda task's fate; one place (``exchanger.creator.outcomes``) maps them to responses.
*Integration errors* are what a client of an external system raises; the retry policy only needs to
know ``TransientError`` (try again later) from ``PermanentError`` (the request itself is wrong).
*Message errors* decide a queued message's fate in the consumer (:mod:`exchanger.amqp.consumer`):
``RetryLater`` (deliver it again after a delay), ``ParkMessage`` and ``ContractError`` (it can never be
processed: the parking lot). ``ContractError`` is also a ``ValueError``, so that pydantic validators and
callers that catch ``ValueError`` keep treating it as bad input.
"""

from __future__ import annotations

from typing import Any


class ExchangerError(Exception):
    """Base of every error Exchanger raises on purpose."""


class ConfigError(ExchangerError):
    """A setting is missing or wrong; the message names the variable and what to do. Stops the start."""


# --- outcomes -------------------------------------------------------------------------------------


class BpmnError(ExchangerError):
    """A business error: Camunda routes it to a boundary error event with this ``code``."""

    def __init__(self, code: str, message: str = "", variables: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.variables = variables or {}


class Incident(ExchangerError):
    """A failure that no retry will fix: reported with retries 0 so that Cockpit shows an incident."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


# --- integration errors ---------------------------------------------------------------------------


class IntegrationError(ExchangerError):
    """An external system (or Camunda) refused or failed a call.

    ``status`` is the HTTP status when there was an answer; ``code`` the system's own error code.
    """

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        status: int | None = None,
        code: str = "",
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.system = system
        self.status = status
        self.code = code
        self.details = details


class TransientError(IntegrationError):
    """Worth trying again later: timeouts, 5xx, rate limits, an unreachable host."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class RateLimited(TransientError):
    """The system asked us to slow down (429, Bitrix24 ``QUERY_LIMIT_EXCEEDED``)."""


class Unreachable(TransientError):
    """No answer at all: connection refused, DNS, TLS handshake, timeout.

    When the request was sent (a read timeout, a dropped connection) the server may still carry it out:
    for a write that is *ambiguous*, and its ``retry_after_s`` is how long to wait before looking it up.
    """


class NotConnected(Unreachable):
    """The request never left: refused, DNS, connect timeout. Repeating it is safe even for a write."""


class UnexpectedAnswer(TransientError):
    """A success status with a body that is not what the API promises (a proxy's HTML page, garbage).

    Transient: such answers come from something between us and the server and usually go away.
    """


class PermanentError(IntegrationError):
    """The request itself is wrong (validation, business rule); retrying cannot help."""


class AuthError(PermanentError):
    """Credentials rejected or not allowed (401/403)."""


class NotFound(PermanentError):
    """The addressed object does not exist (404 or the system's equivalent)."""


class Conflict(PermanentError):
    """The object changed under us or is held by someone else (409, Camunda 400 on a foreign lock)."""


# --- message errors -------------------------------------------------------------------------------


class ContractError(ExchangerError, ValueError):
    """A message does not match its contract; the text says what is wrong (it goes to the parking lot)."""


class RetryLater(ExchangerError):
    """Deliver this message again after ``delay_ms`` (``None``: the consumer's backoff for the attempt).

    ``count_attempt`` False keeps the attempt count: a wait that is not a failed try (a settle wait).
    """

    def __init__(self, reason: str, delay_ms: int | None = None, *, count_attempt: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_ms = delay_ms
        self.count_attempt = count_attempt


class ParkMessage(ExchangerError):
    """This message can never be processed; keep it in the parking lot with ``reason``."""

    def __init__(self, reason: str, error_type: str = "ParkMessage") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type

