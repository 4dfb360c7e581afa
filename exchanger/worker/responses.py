"""The response half of camunda-worker: apply each message of ``camunda.responses.queue`` to Camunda.

A response is validated against the contract (a malformed one is parked by the consumer base) and
becomes ``complete``, ``failure`` or ``bpmnError``. What Camunda answers decides the message's fate
(architecture, delivery guarantee 4), all in :meth:`ResponseHandler.__call__`:

* 204 → ack;
* 404, the task is gone (completed before, or cancelled by a boundary event) → ack and log;
* 400 "locked by another worker" → parked with Camunda's reason (another worker owns the task);
* Camunda *unavailable* (no answer, timeout, 502/503/504/408/429, a 5xx that is not the engine's own
  ``ExceptionDto``) → delayed retry with backoff, **for as long as it takes**: Camunda away for
  maintenance is normal, and the response is applied once it is back. The wait shows in ``/metrics``
  and ``/readyz`` (:mod:`exchanger.worker.availability`);
* Camunda *refused* (a 500 with the engine's exception, e.g. "Unknown property used in expression";
  any other 400) → retried ``WORKER_RESPONSE_MAX_ATTEMPTS`` times in all (an optimistic-locking
  clash goes away), then reported as a failure with ``retries=0`` and Camunda's message (an incident
  in Cockpit, retryable once the cause is fixed) and parked, so that it can be replayed.
"""

from __future__ import annotations

import time
from typing import NoReturn

from loguru import logger

from exchanger.amqp.consumer import Delivery
from exchanger.amqp.publisher import Publisher
from exchanger.backoff import Backoff
from exchanger.camunda.client import CamundaClient, CamundaConflict, CamundaEngineError, CamundaNotFound
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ResponseMessage, ResponseStatus
from exchanger.errors import AuthError, IntegrationError, ParkMessage, PermanentError, RetryLater, TransientError
from exchanger.worker.availability import CamundaAvailability
from exchanger.worker.locks import LockKeeper
from exchanger.worker.metrics import WorkerMetrics
from exchanger.worker.settings import WorkerSettings

OUTCOME = {
    ResponseStatus.COMPLETE: "completed",
    ResponseStatus.FAILURE: "failed",
    ResponseStatus.BPMN_ERROR: "bpmn_errored",
}


def retry_backoff(settings: WorkerSettings) -> Backoff:
    """No jitter: every distinct delay is a TTL queue of its own (see ``Publisher.publish_delayed``)."""
    return Backoff(initial_s=settings.response_retry_initial_s, factor=2.0, max_s=settings.response_retry_max_s,
                   jitter=0.0)


UNAVAILABLE_STATUSES = (408, 429, 502, 503, 504)  # Camunda (or its proxy) is not there right now


def unavailable(exc: TransientError) -> bool:
    """True when Camunda did not get to judge the command (no answer, or not the engine answering)."""
    if not isinstance(exc, CamundaEngineError):
        return True  # Unreachable, UnexpectedAnswer
    return exc.status in UNAVAILABLE_STATUSES or not (isinstance(exc.details, dict) and exc.details.get("type"))


def locked_by_another(exc: IntegrationError) -> bool:
    return isinstance(exc, CamundaConflict) and "locked by worker" in exc.message


class ResponseHandler:
    """The ``Consumer`` handler for ``camunda.responses.queue``."""

    def __init__(self, client: CamundaClient, camunda: CamundaSettings, settings: WorkerSettings,
                 metrics: WorkerMetrics, availability: CamundaAvailability | None = None,
                 keeper: LockKeeper | None = None) -> None:
        self.client = client
        self.camunda = camunda
        self.max_attempts = settings.response_max_attempts
        self.backoff = retry_backoff(settings)
        self.metrics = metrics
        self.availability = availability or CamundaAvailability()
        self.keeper = keeper

    def __call__(self, delivery: Delivery, publisher: Publisher) -> None:
        response = ResponseMessage.from_bytes(delivery.body, delivery.headers)
        self.check_tenant(response)
        started = time.monotonic()
        try:
            self.apply(response)
        except CamundaNotFound as exc:
            self.settled(response)
            self.metrics.responses.labels("gone").inc()
            logger.info("response {} for task {}: the task is gone (completed or cancelled): {}",
                        response.status.value, response.task_id, exc.message)
            return
        except TransientError as exc:
            if unavailable(exc):
                self.wait_for_camunda(response, delivery, exc)
            self.settled(response)
            self.refused(response, delivery, exc)
        except PermanentError as exc:
            self.settled(response)
            if locked_by_another(exc) or isinstance(exc, AuthError):
                self.metrics.responses.labels("parked").inc()
                raise ParkMessage(exc.message, type(exc).__name__) from exc
            self.refused(response, delivery, exc)
        finally:
            self.metrics.complete_latency.labels(response.status.value).observe(time.monotonic() - started)
        self.settled(response)
        self.metrics.responses.labels(OUTCOME[response.status]).inc()
        logger.info("task {}: {} applied", response.task_id, response.status.value)

    def settled(self, response: ResponseMessage) -> None:
        """Camunda answered this response (whatever it said): its lock needs no keeping."""
        self.availability.up()
        self.availability.settled(response.task_id)
        if self.keeper is not None:
            self.keeper.forget(response.task_id)

    def wait_for_camunda(self, response: ResponseMessage, delivery: Delivery, exc: TransientError) -> NoReturn:
        """Retry later, without a limit: the response is applied when Camunda is back."""
        self.availability.down(exc.message)
        self.availability.waiting(response.task_id)
        self.metrics.responses.labels("retried").inc()
        delay_ms = int(self.backoff.delay(delivery.attempt) * 1000)
        raise RetryLater(f"Camunda unavailable, waiting for it: {exc.message}", delay_ms) from exc

    def refused(self, response: ResponseMessage, delivery: Delivery, exc: IntegrationError) -> NoReturn:
        """Camunda judged the command and said no: a few tries (a clash passes), then an incident."""
        if delivery.attempt < self.max_attempts:
            self.metrics.responses.labels("retried").inc()
            delay_ms = int(self.backoff.delay(delivery.attempt) * 1000)
            raise RetryLater(f"Camunda refused it: {exc.message}", delay_ms) from exc
        reason = f"Camunda refused the {response.status.value} {delivery.attempt} times: {exc.message}"
        self.metrics.responses.labels("parked").inc()
        raise ParkMessage(reason + self.report_incident(response, exc), type(exc).__name__) from exc

    def report_incident(self, response: ResponseMessage, exc: IntegrationError) -> str:
        """A failure with no retries left and Camunda's own message; returns what to add to the parked reason."""
        message = f"Camunda refused the {response.status.value} of this task: {exc.message}"
        try:
            self.client.failure(response.task_id, error_message=message[:500], error_details=message, retries=0,
                                retry_timeout_ms=0)
        except IntegrationError as failed:
            logger.error("task {}: Camunda refused the {} ({}) and the incident could not be reported either ({})",
                         response.task_id, response.status.value, exc.message, failed.message)
            return f"; reporting the incident failed too: {failed.message}"
        self.metrics.responses.labels("incident").inc()
        logger.error("task {}: Camunda refused the {} ({}); incident reported, the response is parked for replay",
                     response.task_id, response.status.value, exc.message)
        return "; incident reported in Camunda, replay this once the cause is fixed"

    def check_tenant(self, response: ResponseMessage) -> None:
        """A response of another tenant in this environment's queue is a routing mistake: park it."""
        mine = self.camunda.tenant_id or None
        if response.tenant_id and mine and response.tenant_id != mine:
            self.metrics.responses.labels("parked").inc()
            raise ParkMessage(f"response for tenant {response.tenant_id!r} reached the worker of tenant {mine!r}",
                              "WrongTenant")

    def apply(self, r: ResponseMessage) -> None:
        """One Camunda call. The lock belongs to this environment's worker id, whatever the sender wrote."""
        if r.status is ResponseStatus.COMPLETE:
            self.client.complete(r.task_id, variables=r.variables, local_variables=r.local_variables)
        elif r.status is ResponseStatus.FAILURE:
            retries = r.retries if r.retries is not None else self.default_retries(r.task_id)
            if r.retry_timeout_ms is not None:
                timeout = r.retry_timeout_ms
            else:
                timeout = self.camunda.failure_retry_timeout_ms if retries > 0 else 0
            self.client.failure(r.task_id, error_message=r.error_message or "failed", error_details=r.error_details,
                                retries=max(0, retries), retry_timeout_ms=max(0, timeout), variables=r.variables,
                                local_variables=r.local_variables)
        else:
            if not r.error_code:
                self.metrics.responses.labels("parked").inc()
                raise ParkMessage("a bpmn_error response needs an error_code", "ContractError")
            self.client.bpmn_error(r.task_id, error_code=r.error_code, error_message=r.error_message,
                                   variables=r.variables)

    def default_retries(self, task_id: str) -> int:
        """The task's retries minus one; on the first failure (retries still null) the configured maximum."""
        current = self.client.get_task(task_id).get("retries")
        return self.camunda.failure_max_retries if current is None else max(0, int(current) - 1)
