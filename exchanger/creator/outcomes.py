"""The one place that decides what a handler's or tracker's result means for the Camunda task.

Pure functions: a result (an outcome or the exception raised) goes in, an :data:`Action` comes out;
:mod:`exchanger.creator.service` carries it out with the confirmed publisher. The mapping is the table
in :mod:`exchanger.creator.base`; every failure that reaches retries 0 also parks a copy of the
message, so the parking lot lists everything an operator has to look at.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import datetime

from loguru import logger

from exchanger.contracts import ExternalItem, ResponseMessage, ResponseStatus, SentRecord, TaskMessage
from exchanger.creator.base import BpmnErrorOutcome, Done, Failed, HandlerOutcome, StillOpen, TrackerOutcome
from exchanger.creator.retry_policy import RetryPolicy
from exchanger.errors import BpmnError, ContractError, Incident, IntegrationError, PermanentError, TransientError
from exchanger.variables import to_typed_map

EXPECTED_ERRORS = (BpmnError, Incident, IntegrationError, ContractError)  # logged without a traceback
MAX_DETAILS = 4000  # characters of error details sent to Camunda (a traceback's tail is what matters)
DEFAULT_MAX_RETRY_AFTER_S = 3600.0  # a server's Retry-After above this is capped (CREATOR_MAX_RETRY_AFTER_S)
DEFAULT_MAX_CHECK_ERRORS = 5  # checks in a row failing unexpectedly before an incident (CREATOR_MAX_CHECK_ERRORS)


@dataclass(frozen=True)
class Respond:
    """Publish ``response``; with ``park_reason``, also park a copy of the message (retries 0)."""

    response: ResponseMessage
    park_reason: str | None = None
    error_type: str = ""


@dataclass(frozen=True)
class Track:
    """Publish ``record`` to the sent queue after the tracker's check interval."""

    record: SentRecord


@dataclass(frozen=True)
class Retry:
    """Deliver the same message again after ``delay_ms`` (the attempt header counts up)."""

    reason: str
    delay_ms: int


@dataclass(frozen=True)
class Park:
    """Nothing can be reported to Camunda (the message itself is broken): park it."""

    reason: str
    error_type: str


Action = Respond | Track | Retry | Park


# --- responses --------------------------------------------------------------------------------------


def response(
    task: TaskMessage, status: ResponseStatus, item: ExternalItem | None = None, **fields: object
) -> ResponseMessage:
    """A response for ``task`` with the fields every response carries (latency, ledger, tenant)."""
    return ResponseMessage(
        task_id=task.task_id,
        process_instance_id=task.process_instance_id,
        worker_id=task.worker_id,
        tenant_id=task.tenant_id,
        topic_name=task.topic_name,
        status=status,
        item=item,
        task_created_at=task.created_at,
        **fields,
    )


def respond(task: TaskMessage, outcome: Done | Failed | BpmnErrorOutcome, item: ExternalItem | None = None) -> Respond:
    """The response for a final outcome (a parked copy when it leaves the task with retries 0).

    Variables Camunda cannot store (a set, an object) make it an incident naming the problem.
    """
    try:
        if isinstance(outcome, Done):
            return Respond(response(task, ResponseStatus.COMPLETE, item, variables=to_typed_map(outcome.variables),
                                    local_variables=to_typed_map(outcome.local_variables)))
        if isinstance(outcome, BpmnErrorOutcome):
            return Respond(response(task, ResponseStatus.BPMN_ERROR, item, error_code=outcome.code,
                                    error_message=outcome.message or outcome.code,
                                    variables=to_typed_map(outcome.variables)))
    except TypeError as exc:
        reason = f"the {task.system} result has a variable Camunda cannot store: {exc}"
        return incident(task, reason, reason, "ContractError", item)
    failure = response(task, ResponseStatus.FAILURE, item, error_message=outcome.reason,
                       error_details=outcome.details[-MAX_DETAILS:] or None, retries=outcome.retries,
                       retry_timeout_ms=outcome.retry_timeout_ms if outcome.retries > 0 else None)
    return Respond(failure, park_reason=outcome.reason if outcome.retries <= 0 else None, error_type="Failed")


def _details(exc: BaseException) -> str:
    if isinstance(exc, Incident) and exc.details:
        return exc.details
    if isinstance(exc, IntegrationError) and exc.details:
        return f"{type(exc).__name__}: {exc.details}"
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def incident(task: TaskMessage, reason: str, details: str, error_type: str,
              item: ExternalItem | None = None) -> Respond:
    """Failure with retries 0 (an incident in Cockpit) and a parked copy."""
    action = respond(task, Failed(reason=reason, details=details), item)
    return Respond(action.response, park_reason=reason, error_type=error_type)


# --- a task from <system>.queue ---------------------------------------------------------------------


def for_task(
    task: TaskMessage,
    result: HandlerOutcome | Exception,
    *,
    attempt: int,
    policy: RetryPolicy,
    retry_through_camunda: bool = False,
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
) -> Action:
    """What to do after a handler returned ``result`` (or raised it) on delivery ``attempt``.

    A transient error's ``retry_after_s`` (a server's Retry-After, or the settle wait of a timed-out
    write) lengthens the policy's delay, up to ``max_retry_after_s``: a portal answering
    ``Retry-After: 1000000000`` must not park the task for decades (nor ask the broker for a TTL it refuses).
    """
    if isinstance(result, ExternalItem):
        return Track(SentRecord(task=task, item=result))
    if isinstance(result, Done | Failed | BpmnErrorOutcome):
        return respond(task, result)
    if not isinstance(result, Exception):
        reason = f"the {task.system} handler returned {type(result).__name__}, not an outcome (a bug in the handler)"
        return incident(task, reason, reason, "ContractError")
    exc = result
    if isinstance(exc, ContractError):
        return Park(str(exc), "ContractError")
    if isinstance(exc, BpmnError):
        return respond(task, BpmnErrorOutcome(exc.code, exc.message, exc.variables))
    if isinstance(exc, Incident | PermanentError):
        return incident(task, str(exc), _details(exc), type(exc).__name__)
    described = f"{type(exc).__name__}: {exc}"
    if retry_through_camunda:
        left = policy.retries_left(task.retries)
        if left <= 0:
            return incident(task, f"{described} (no retries left)", _details(exc), type(exc).__name__)
        return respond(task, Failed(reason=described, details=_details(exc), retries=left,
                                    retry_timeout_ms=policy.timeout_for(left)))
    delay_ms = policy.delay_for_attempt(attempt)
    if delay_ms is None:
        reason = f"gave up after {attempt} attempt(s) ({policy.source or 'retry policy'}): {described}"
        return incident(task, reason, _details(exc), type(exc).__name__)
    retry_after = getattr(exc, "retry_after_s", None) if isinstance(exc, TransientError) else None
    if retry_after:
        if retry_after > max_retry_after_s:
            logger.warning("task {}: {} asked to wait {:.0f} s; capped to {:.0f} s (CREATOR_MAX_RETRY_AFTER_S)",
                           task.task_id, task.system, retry_after, max_retry_after_s)
            retry_after = max_retry_after_s
        delay_ms = max(delay_ms, int(retry_after * 1000))
    return Retry(described, delay_ms)


# --- a record from <system>.sent.queue --------------------------------------------------------------


def for_check(
    record: SentRecord,
    result: TrackerOutcome | Exception,
    *,
    now: datetime,
    max_age_s: float = 0.0,
    max_check_errors: int = DEFAULT_MAX_CHECK_ERRORS,
) -> Action:
    """What to do after a tracker answered ``result`` (or raised it) for ``record``.

    A transient error (the system is down or slow) means "check again later", as long as it takes.
    Any other error (a date the tracker cannot parse, a malformed item id, an unverified deletion, a
    bug) is checked again only ``max_check_errors`` times in a row, then it is an incident.
    """
    task, item = record.task, record.item
    if isinstance(result, Done | Failed | BpmnErrorOutcome):
        return respond(task, result, item)
    if isinstance(result, Incident | PermanentError):
        return incident(task, f"{item.system} item {item.id}: {result}", _details(result), type(result).__name__, item)
    if isinstance(result, BpmnError):
        return respond(task, BpmnErrorOutcome(result.code, result.message, result.variables), item)
    age_s = (now - item.created_at).total_seconds()
    if max_age_s and age_s > max_age_s:
        reason = (f"{item.system} item {item.id} {item.url} is still open after {age_s / 3600:.1f} h and "
                  f"{record.checks + 1} checks; stopped tracking it (CREATOR_MAX_TRACKING_AGE_S={max_age_s:g}). "
                  f"Finish the task by hand, or retry the incident to track it again")
        return incident(task, reason, reason, "TrackingTimeout", item)
    if not isinstance(result, StillOpen | Exception):
        reason = f"the {item.system} tracker returned {type(result).__name__}, not an outcome (a bug in the tracker)"
        return incident(task, reason, reason, "ContractError", item)
    failed_checks = 0 if isinstance(result, StillOpen) else record.failed_checks
    if isinstance(result, Exception) and not isinstance(result, TransientError):
        failed_checks += 1
        if failed_checks >= max_check_errors:
            reason = (f"{item.system} item {item.id}: the check failed {failed_checks} times in a row "
                      f"(CREATOR_MAX_CHECK_ERRORS={max_check_errors}), last: {type(result).__name__}: {result}")
            return incident(task, reason, _details(result), type(result).__name__, item)
    return Track(record.model_copy(update={"checks": record.checks + 1, "last_checked_at": now,
                                           "failed_checks": failed_checks}))
