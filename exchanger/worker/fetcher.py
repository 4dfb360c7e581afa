"""The fetch half of camunda-worker: long-poll Camunda, publish each task, and only then lock it long.

Lock short, publish, confirm, then lock long (architecture, delivery guarantee 1):

1. one ``fetchAndLock`` for every routed topic, locked for ``CAMUNDA_FETCH_LOCK_MINUTES``;
2. the batch's messages are published with confirms and ``mandatory`` to ``<system>.<topic>``, a window
   of them unconfirmed at once (:meth:`~exchanger.amqp.publisher.Publisher.publish_many`);
3. each confirmed task goes to the :class:`~exchanger.worker.locks.LockKeeper`, which extends its lock to
   ``CAMUNDA_LOCK_DURATION`` only if its response has not been applied within
   ``WORKER_LOCK_EXTEND_AFTER_S`` (see there for the failure story).

The next poll starts as soon as the batch is confirmed. A crash before 3 lets the short lock expire
and the task is fetched again. A nacked or returned publish, or a broker that is gone, unlocks the
task at once; while the broker is down nothing is fetched (a cheap connection probe gates the next
poll), so no task sits locked for nothing.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from pydantic import ValidationError

from exchanger.amqp.connection import connect
from exchanger.amqp.publisher import Outgoing, Publisher, PublishError
from exchanger.backoff import Backoff
from exchanger.camunda.client import CamundaClient, CamundaNotFound
from exchanger.camunda.metadata import MetadataCache, MetadataError
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import BpmnMetadata, TaskMessage
from exchanger.errors import ContractError, IntegrationError, TransientError, UnexpectedAnswer, Unreachable
from exchanger.routing import RoutingTable
from exchanger.secrets import mask
from exchanger.settings import RabbitMQSettings, TopologySettings
from exchanger.worker.availability import CamundaAvailability
from exchanger.worker.locks import LockKeeper
from exchanger.worker.metrics import WorkerMetrics

# headers of every task message (besides the schema header), so that a consumer can route or refuse
# a message without parsing it
TOPIC_HEADER = "x-exchanger-topic"
SYSTEM_HEADER = "x-exchanger-system"
TASK_ID_HEADER = "x-exchanger-task-id"
PROCESS_INSTANCE_HEADER = "x-exchanger-process-instance-id"

KEEPER_MAX_BEHIND_S = 5.0  # the next poll waits while lock extensions are this late (short locks must not run out)
EMPTY_POLL_GUARD_S = 0.05  # an empty answer faster than this means no long polling: back off instead of spinning


class Unpublishable(Exception):
    """A task that no retry can publish; ``reason`` becomes the incident message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Fetcher:
    """Runs in one thread (it owns its :class:`Publisher`) until ``stop`` is set."""

    def __init__(
        self,
        *,
        client: CamundaClient,
        cache: MetadataCache,
        publisher: Publisher,
        camunda: CamundaSettings,
        rabbit: RabbitMQSettings,
        topology: TopologySettings,
        routing: RoutingTable,
        metrics: WorkerMetrics,
        stop: threading.Event,
        keeper: LockKeeper,
        availability: CamundaAvailability | None = None,
        publish_window: int = 100,
    ) -> None:
        self.client = client
        self.cache = cache
        self.publisher = publisher
        self.camunda = camunda
        self.rabbit = rabbit
        self.exchange = topology.tasks_exchange
        self.routing = routing
        self.metrics = metrics
        self.stop = stop
        self.keeper = keeper
        self.publish_window = publish_window
        self.availability = availability or CamundaAvailability()
        self.backoff = Backoff(initial_s=camunda.backoff_initial_s, max_s=camunda.backoff_max_s)
        self.discovered: set[str] = set()
        self._next_discovery = 0.0
        # state for readiness
        self.last_poll_ok: float | None = None  # time.monotonic() of the last answered poll
        self.camunda_error: str | None = None
        self.broker_error: str | None = None
        self.refusals = 0  # publishes refused or returned in a row: they slow the next polls down

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                failures = self._cycle(failures)
            except Exception:  # noqa: BLE001 - the loop is the worker's heart: log to errors.log, back off, go on
                failures += 1
                wait = self.backoff.delay(failures)
                self.camunda_error = "unexpected error in the fetch loop (see errors log)"
                logger.exception("fetch loop: unexpected error; next poll in {:.1f}s", wait)
                self.stop.wait(wait)

    def _cycle(self, failures: int) -> int:
        """One poll and its dispatch; returns the count of failed polls in a row."""
        if self.broker_error is not None and not self._probe_broker():
            self.stop.wait(self.backoff.delay(failures + 1))
            return failures + 1
        while self.keeper.behind_s > KEEPER_MAX_BEHIND_S and not self.stop.is_set():
            self.stop.wait(0.1)  # Camunda slower than the extensions coming due: no more tasks for now
        started = time.monotonic()
        try:
            tasks = self.poll()
        except UnexpectedAnswer as exc:  # not an outage: something answers in Camunda's place
            wait = self.backoff.delay(failures + 1)
            logger.error("fetchAndLock: {}; next poll in {:.1f}s", exc.message, wait)
            self.stop.wait(wait)
            return failures + 1
        except IntegrationError as exc:
            wait = self.backoff.delay(failures + 1)
            logger.warning("fetchAndLock failed ({}); next poll in {:.1f}s", exc.message, wait)
            self.stop.wait(wait)
            return failures + 1
        self.dispatch(tasks)
        if tasks:  # one line per batch: with several instances the logs show how the fetching is shared
            logger.info("fetched {} task(s)", len(tasks))
        if self.refusals:  # an unlocked task comes straight back: do not spin on a broker that refuses it
            self.stop.wait(self.backoff.delay(self.refusals))
        if not tasks and time.monotonic() - started < EMPTY_POLL_GUARD_S:
            self.stop.wait(self.backoff.initial_s)  # no long polling (or none configured): no busy loop
        return 0

    def topics(self) -> list[str]:
        """The routed topics, plus discovered ones nobody routed (they go to the default system)."""
        if self.camunda.topic_discovery and time.monotonic() >= self._next_discovery:
            self._next_discovery = time.monotonic() + self.camunda.topic_discovery_interval_s
            try:
                new = set(self.client.topic_names()) - set(self.routing.topics) - self.discovered
            except IntegrationError as exc:
                logger.warning("topic discovery failed: {}", exc.message)
                new = set()
            if new:
                logger.info("discovered topics nobody routed, sent to the default system: {}", sorted(new))
                self.discovered |= new
        return self.routing.topics + sorted(self.discovered)

    def poll(self) -> list[dict[str, Any]]:
        """One fetchAndLock; records the outcome for readiness and metrics."""
        started = time.monotonic()
        try:
            tasks = self.client.fetch_and_lock(self.topics())
        except IntegrationError as exc:
            self.camunda_error = exc.message
            self.metrics.poll_errors.inc()
            if isinstance(exc, TransientError):
                self.availability.down(exc.message)
            raise
        finally:
            self.metrics.fetch_latency.observe(time.monotonic() - started)
        self.camunda_error = None
        self.availability.up()
        self.last_poll_ok = time.monotonic()
        self.metrics.polls.inc()
        for task in tasks:
            self.metrics.fetched.labels(task.get("topicName", "")).inc()
        return tasks

    def dispatch(self, tasks: list[dict[str, Any]]) -> None:
        """Publish the batch; once stopping or the broker is gone, unlock it at once.

        Returns when the broker answered for every message of the batch; confirmed tasks are tracked by
        the lock keeper, the others unlocked (or reported as incidents).
        """
        fetched_at = time.monotonic()
        if self.stop.is_set() or self.broker_error is not None:
            for task in tasks:
                self.unlock(task, "stopping" if self.stop.is_set() else "broker unreachable")
            return
        ready: list[tuple[dict[str, Any], TaskMessage, Outgoing]] = []
        for task in tasks:
            try:
                prepared = self.prepare(task)
            except Exception as exc:  # noqa: BLE001 - a bug must not strand a task, nor make it spin: an incident
                logger.exception("unexpected error handling task {}", task["id"])
                self.refuse(task, f"unexpected error: {type(exc).__name__}: {exc}")
                continue
            if prepared is not None:
                ready.append((task, *prepared))
        window = self.publish_window
        for first in range(0, len(ready), window):  # a window at a time: a stop or a lost broker ends the batch
            chunk = ready[first:first + window]
            if self.stop.is_set() or self.broker_error is not None:
                for task, _, _ in chunk:
                    self.unlock(task, "stopping" if self.stop.is_set() else "broker unreachable")
                continue
            outcomes = self.publisher.publish_many([outgoing for _, _, outgoing in chunk], window=window)
            for (task, message, _), outcome in zip(chunk, outcomes, strict=True):
                self.settle(task, message, outcome, fetched_at)

    # --- one task -----------------------------------------------------------------------------

    def prepare(self, task: dict[str, Any]) -> tuple[TaskMessage, Outgoing] | None:
        """The task's message, or None when it is not to be published now.

        A task that can never be published (its model unreadable, a variable nested too deep) becomes
        an incident; unlocking it would only fetch it again at once, a spin without end.
        """
        task_id, topic = task["id"], task["topicName"]
        try:
            message = self.message(task, self.metadata(task))
        except TransientError as exc:
            logger.error("task {}: BPMN metadata unavailable ({}); it stays under the short lock and is fetched "
                         "again when that expires", task_id, exc.message)
            return None
        except Unpublishable as exc:
            self.refuse(task, exc.reason)
            return None
        try:
            outgoing = self.publisher.outgoing(
                message, self.exchange, self.routing.routing_key(topic), correlation_id=task_id,
                headers={TOPIC_HEADER: topic, SYSTEM_HEADER: message.system, TASK_ID_HEADER: task_id,
                         PROCESS_INSTANCE_HEADER: message.process_instance_id},
                max_bytes=self.rabbit.max_message_bytes,
            )
        except ContractError as exc:
            self.refuse(task, str(exc))
            return None
        return message, outgoing

    def settle(self, task: dict[str, Any], message: TaskMessage, outcome: PublishError | Unreachable | None,
               fetched_at: float) -> None:
        """Act on what the broker said about one task's message."""
        task_id = task["id"]
        if outcome is None:
            self.refusals = 0
            self.metrics.published.labels(message.system).inc()
            self.metrics.confirmed.labels(message.system).inc()
            self.metrics.publish_latency.observe(time.monotonic() - fetched_at)
            self.keeper.track(task_id, task["topicName"], fetched_at)
        elif isinstance(outcome, Unreachable):
            self.broker_error = outcome.message
            self.metrics.returned.labels("unreachable").inc()
            logger.error("task {}: broker unreachable ({}); unlocking it and pausing fetches", task_id,
                         outcome.message)
            self.unlock(task, "broker unreachable")
        else:
            self.refusals += 1
            self.metrics.returned.labels(type(outcome).__name__).inc()
            logger.error("task {}: the broker did not take it ({}); unlocking it", task_id, outcome)
            self.unlock(task, type(outcome).__name__)

    def metadata(self, task: dict[str, Any]) -> BpmnMetadata:
        """The activity's BPMN metadata; ``TransientError`` when Camunda may answer later."""
        try:
            return self.cache.activity(task["processDefinitionId"], task["activityId"])
        except UnexpectedAnswer as exc:  # something else answers in Camunda's place: not worth waiting for
            raise Unpublishable(f"the BPMN model cannot be read: {exc.message}") from None
        except TransientError:
            raise
        except (IntegrationError, MetadataError) as exc:
            raise Unpublishable(f"the BPMN model {task['processDefinitionId']} cannot be read: {exc}") from None

    def message(self, task: dict[str, Any], metadata: BpmnMetadata) -> TaskMessage:
        now = datetime.now(UTC)
        try:
            return self._message(task, metadata, now)
        except ValidationError as exc:
            raise Unpublishable("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                          for e in exc.errors())) from None

    def _message(self, task: dict[str, Any], metadata: BpmnMetadata, now: datetime) -> TaskMessage:
        return TaskMessage(
            task_id=task["id"],
            topic_name=task["topicName"],
            system=self.routing.system_for(task["topicName"]),
            worker_id=self.client.worker_id,
            tenant_id=task.get("tenantId"),
            process_instance_id=task.get("processInstanceId") or "",
            process_definition_id=task.get("processDefinitionId") or "",
            process_definition_key=task.get("processDefinitionKey") or "",
            activity_id=task.get("activityId") or "",
            activity_instance_id=task.get("activityInstanceId") or "",
            business_key=task.get("businessKey"),
            priority=task.get("priority") or 0,
            retries=task.get("retries"),
            created_at=now,
            published_at=now,
            variables=task.get("variables") or {},
            bpmn_metadata=metadata,
        )

    def refuse(self, task: dict[str, Any], reason: str) -> None:
        """Report a task that cannot be published as a failure with no retries left: an incident in Cockpit
        with the reason, retryable once the cause is fixed. If even that fails, the short lock expires."""
        reason = mask(reason)
        self.metrics.refused.inc()
        logger.error("task {} ({}) cannot be published: {}; reporting an incident", task["id"],
                     task.get("topicName"), reason)
        try:
            self.client.failure(task["id"], error_message=f"camunda-worker cannot publish this task: {reason}"[:500],
                                error_details=reason, retries=0, retry_timeout_ms=0)
        except IntegrationError as exc:
            logger.error("task {}: could not report the incident ({}); it is fetched again when the short lock "
                         "expires", task["id"], exc.message)

    def unlock(self, task: dict[str, Any], reason: str) -> None:
        try:
            self.client.unlock(task["id"])
        except CamundaNotFound:
            return
        except IntegrationError as exc:
            logger.error("task {}: could not unlock it ({}); it is fetched again when the short lock expires",
                         task["id"], exc.message)
            return
        self.metrics.unlocked.inc()
        logger.info("task {} ({}) unlocked: {}", task["id"], task.get("topicName"), reason)

    def _probe_broker(self) -> bool:
        """True (and fetching resumes) once a connection to the broker can be opened again."""
        try:
            connect(self.rabbit, name="camunda-worker:probe", attempts=1).close()
        except Unreachable as exc:
            self.broker_error = exc.message
            return False
        logger.info("broker reachable again; fetching resumes")
        self.broker_error = None
        return True
