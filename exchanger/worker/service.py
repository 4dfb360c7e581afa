"""The camunda-worker service: fetcher thread, response consumer, health endpoint; start and stop.

In-process (tests, benchmarks)::

    worker = Worker(camunda=CamundaSettings(...), rabbit=RabbitMQSettings(...)).start()
    ...
    worker.stop()          # or: with Worker(...) as worker: ...

Stopping (SIGTERM/SIGINT in the daemon) stops fetching, unlocks what was fetched but not yet
published, stops consuming and drains in-flight responses, gives the long lock to every published
task still in flight (:class:`~exchanger.worker.locks.LockKeeper`), then closes, within
``WORKER_SHUTDOWN_DEADLINE_S``. A long poll still open at the deadline is abandoned: whatever it locks
is held only by the short lock.
"""

from __future__ import annotations

import threading
import time

from loguru import logger

from exchanger.amqp.connection import connect, describe
from exchanger.amqp.consumer import Consumer
from exchanger.amqp.publisher import Publisher
from exchanger.amqp.topology import Topology
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.metadata import MetadataCache
from exchanger.camunda.settings import CamundaSettings
from exchanger.errors import IntegrationError
from exchanger.health import HealthServer, ReadinessCheck
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings
from exchanger.worker.availability import CamundaAvailability
from exchanger.worker.fetcher import Fetcher
from exchanger.worker.locks import EXTEND_THREADS, LockKeeper
from exchanger.worker.metrics import WorkerMetrics
from exchanger.worker.responses import ResponseHandler, retry_backoff
from exchanger.worker.settings import WorkerSettings

COMPONENT = "camunda-worker"


class Worker:
    def __init__(
        self,
        *,
        camunda: CamundaSettings,
        rabbit: RabbitMQSettings,
        worker: WorkerSettings | None = None,
        topology: TopologySettings | None = None,
        routing: RoutingTable | None = None,
    ) -> None:
        self.camunda = camunda
        self.rabbit = rabbit
        self.settings = worker or WorkerSettings()
        self.topology_settings = topology or TopologySettings()
        self.routing = routing or RoutingTable()
        self.topology = Topology(self.topology_settings, self.routing.systems, queue_type=rabbit.queue_type,
                                 virtual_host=rabbit.virtual_host)
        # every response thread, every lock extension and the fetcher call Camunda at once
        self.client = CamundaClient(camunda, pool_size=self.settings.response_prefetch + EXTEND_THREADS + 4)
        self.cache = MetadataCache(self.client.process_definition_xml, size=self.settings.metadata_cache_size,
                                   ttl_s=self.settings.metadata_cache_ttl_s,
                                   failure_ttl_s=self.settings.metadata_failure_ttl_s)
        self.availability = CamundaAvailability()
        self.metrics = WorkerMetrics(self.cache, self.availability)
        self._stop_fetching = threading.Event()
        self._stop_keeping = threading.Event()
        self.keeper = LockKeeper(self.client, self.metrics, lock_duration_ms=camunda.lock_duration,
                                 fetch_lock_ms=camunda.fetch_lock_ms, extend_after_s=self.settings.lock_extend_after_s)
        self.publisher = Publisher(rabbit, self.topology, name=f"{COMPONENT}:tasks")
        self.fetcher = Fetcher(client=self.client, cache=self.cache, publisher=self.publisher, camunda=camunda,
                               rabbit=rabbit, topology=self.topology_settings, routing=self.routing,
                               metrics=self.metrics, stop=self._stop_fetching, keeper=self.keeper,
                               availability=self.availability, publish_window=self.settings.publish_window)
        self.responses = ResponseHandler(self.client, camunda, self.settings, self.metrics, self.availability,
                                         keeper=self.keeper)
        self.consumer = Consumer(rabbit, self.topology, self.topology_settings.responses_queue, self.responses,
                                 prefetch=self.settings.response_prefetch,
                                 max_attempts=self.settings.response_max_attempts,
                                 retry_backoff=retry_backoff(self.settings), name=f"{COMPONENT}:responses")
        self.health: HealthServer | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Worker:
        """Declare the topology (raises ``Unreachable`` when the broker is not there), then run."""
        connection = connect(self.rabbit, name=f"{COMPONENT}:setup", attempts=self.rabbit.connection_attempts)
        try:
            self.topology.declare(connection)
        finally:
            connection.close()
        drain_s = self.settings.shutdown_deadline_s / 2
        self._threads = [
            threading.Thread(target=self.consumer.run, args=(drain_s,), name=f"{COMPONENT}:responses", daemon=True),
            threading.Thread(target=self._fetch, name=f"{COMPONENT}:fetcher", daemon=True),
            threading.Thread(target=self.keeper.run, args=(self._stop_keeping, drain_s), name=f"{COMPONENT}:locks",
                             daemon=True),
        ]
        if self.settings.health_port:  # bound before anything is fetched: a taken port stops the start cleanly
            self.health = HealthServer(self.settings.health_port, self.metrics.registry, self.readiness_checks(),
                                       host=self.settings.health_host, liveness=self.liveness_checks(),
                                       setting="WORKER_HEALTH_PORT")
        for thread in self._threads:
            thread.start()
        if self.health is not None:
            self.health.start()
        return self

    def _fetch(self) -> None:
        try:
            self.fetcher.run()
        finally:
            self.publisher.close()

    def stop(self) -> bool:
        """Stop within the deadline; True when every thread finished in time."""
        deadline = time.monotonic() + self.settings.shutdown_deadline_s
        self._stop_fetching.set()
        self.consumer.stop()
        clean = True
        for thread in self._threads:
            if thread.name.endswith(":locks"):  # the keeper's last pass covers what the fetcher published last
                self._stop_keeping.set()
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                clean = False
                logger.warning("{} did not finish within the shutdown deadline; leaving it", thread.name)
        if self.health is not None:
            self.health.stop()
        self.client.close()
        logger.info("{} stopped{}", COMPONENT, "" if clean else " (deadline reached)")
        return clean

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- observability ------------------------------------------------------------------------

    def liveness_checks(self) -> dict[str, ReadinessCheck]:
        """The fetch loop and the response consumer must run while the process does (else: not alive)."""

        def alive(thread: threading.Thread) -> ReadinessCheck:
            return lambda: (thread.is_alive() or self._stop_fetching.is_set() or self._stop_keeping.is_set(),
                            "running" if thread.is_alive() else "thread ended")

        return {thread.name.removeprefix(f"{COMPONENT}:"): alive(thread) for thread in self._threads}

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        def broker() -> tuple[bool, str]:
            if self.fetcher.broker_error:
                return False, self.fetcher.broker_error
            return self.consumer.ready, "consuming" if self.consumer.ready else "not consuming"

        def camunda() -> tuple[bool, str]:
            if self.availability.unreachable_s:
                return False, self.availability.describe()
            if self.fetcher.camunda_error:
                return False, self.fetcher.camunda_error
            try:
                return True, f"engine {self.client.version()}"
            except IntegrationError as exc:
                return False, exc.message

        def last_poll() -> tuple[bool, str]:
            if self.fetcher.last_poll_ok is None:
                return False, "no successful poll yet"
            age = time.monotonic() - self.fetcher.last_poll_ok - self.camunda.async_response_timeout_ms / 1000
            return age <= self.settings.ready_max_poll_age_s, f"last poll answered {max(0.0, age):.1f}s ago"

        return {"broker": broker, "camunda": camunda, "last_poll": last_poll}

    def banner(self, environment: str, name: str = COMPONENT) -> str:
        """The start-up line; ``name`` is the instance's (``camunda-worker-2``)."""
        c = self.camunda
        topics = ", ".join(f"{t}→{self.routing.system_for(t)}" for t in self.routing.topics)
        lock_long = f"{c.lock_duration} ms ({c.lock_duration / 86_400_000:.0f} d)"
        return (
            f"{name} env={environment} worker_id={c.worker_id} "
            f"tenant={c.tenant_id or '(none: withoutTenantId)'} camunda={c.base_url} ({c.tls_mode}) "
            f"broker={describe(self.rabbit)} vhost={self.rabbit.virtual_host} "
            f"locks: fetch {c.fetch_lock_ms} ms, in-flight {lock_long} after {self.keeper.extend_after_s:g} s; "
            f"publish window {self.settings.publish_window}; long poll {c.async_response_timeout_ms} ms, "
            f"max_tasks {c.max_tasks}, topic discovery {'on' if c.topic_discovery else 'off'}; "
            f"health port {self.settings.health_port or 'off'}; topics: {topics}"
        )
