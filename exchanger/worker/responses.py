"""The response half of camunda-worker: apply each message of ``camunda.responses.queue`` to Camunda.

A response is validated against the contract (a malformed one is parked by the consumer base) and
becomes ``complete``, ``failure`` or ``bpmnError``. What Camunda answers decides the message's fate
(architecture, delivery guarantee 4), all in :meth:`ResponseHandler.__call__`:

* 204 → ack;
* 404, the task is gone (completed before, or cancelled by a boundary event) → ack and log;
* 400 and other refusals (locked by another worker, a refused value) → parked with Camunda's reason;
* 5xx, timeout, unreachable → delayed retry with backoff; parked after ``WORKER_RESPONSE_MAX_ATTEMPTS``.

So while Camunda is down the responses wait in RabbitMQ (delay queues) and are applied once it is back.
"""

from __future__ import annotations

import time

from loguru import logger

from exchanger.amqp.consumer import Delivery, ParkMessage, RetryLater
from exchanger.amqp.publisher import Publisher
from exchanger.backoff import Backoff
from exchanger.camunda.client import CamundaClient, CamundaNotFound
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ResponseMessage, ResponseStatus
from exchanger.errors import PermanentError, TransientError
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


class ResponseHandler:
    """The ``Consumer`` handler for ``camunda.responses.queue``."""

    def __init__(self, client: CamundaClient, camunda: CamundaSettings, settings: WorkerSettings,
                 metrics: WorkerMetrics) -> None:
        self.client = client
        self.camunda = camunda
        self.max_attempts = settings.response_max_attempts
        self.backoff = retry_backoff(settings)
        self.metrics = metrics

    def __call__(self, delivery: Delivery, publisher: Publisher) -> None:
        response = ResponseMessage.from_bytes(delivery.body, delivery.headers)
        self.check_tenant(response)
        started = time.monotonic()
        try:
            self.apply(response)
        except CamundaNotFound as exc:
            self.metrics.responses.labels("gone").inc()
            logger.info("response {} for task {}: the task is gone (completed or cancelled): {}",
                        response.status.value, response.task_id, exc.message)
            return
        except TransientError as exc:
            if delivery.attempt >= self.max_attempts:
                self.metrics.responses.labels("parked").inc()
                raise ParkMessage(f"Camunda still failing after {delivery.attempt} attempts: {exc.message}",
                                  type(exc).__name__) from exc
            self.metrics.responses.labels("retried").inc()
            delay_ms = int(self.backoff.delay(delivery.attempt) * 1000)
            raise RetryLater(f"Camunda: {exc.message}", delay_ms) from exc
        except PermanentError as exc:
            self.metrics.responses.labels("parked").inc()
            raise ParkMessage(exc.message, type(exc).__name__) from exc
        finally:
            self.metrics.complete_latency.labels(response.status.value).observe(time.monotonic() - started)
        self.metrics.responses.labels(OUTCOME[response.status]).inc()
        logger.info("task {}: {} applied", response.task_id, response.status.value)

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
