"""camunda-worker's Prometheus metrics, in a registry per worker (so that tests can run several)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from exchanger.camunda.metadata import MetadataCache
from exchanger.worker.availability import CamundaAvailability

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _CacheCollector(Collector):
    """Reads the metadata cache's own counters at scrape time (the cache knows nothing of Prometheus)."""

    def __init__(self, cache: MetadataCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.cache.stats()
        yield CounterMetricFamily("exchanger_worker_metadata_cache_hits", "BPMN metadata cache hits", stats.hits)
        yield CounterMetricFamily("exchanger_worker_metadata_cache_misses", "BPMN metadata cache misses",
                                  stats.misses)
        yield CounterMetricFamily("exchanger_worker_metadata_cache_failures", "failed BPMN XML fetches or parses",
                                  stats.failures)
        yield GaugeMetricFamily("exchanger_worker_metadata_cache_size", "definitions cached", stats.size)


class _AvailabilityCollector(Collector):
    """How long Camunda has been away and how many responses wait for it, read at scrape time."""

    def __init__(self, availability: CamundaAvailability) -> None:
        self.availability = availability

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("exchanger_worker_camunda_unreachable_seconds",
                                "seconds since Camunda last answered (0 while it answers)",
                                self.availability.unreachable_s)
        yield GaugeMetricFamily("exchanger_worker_responses_waiting",
                                "responses waiting in RabbitMQ for Camunda to come back", self.availability.pending)


class WorkerMetrics:
    def __init__(self, cache: MetadataCache | None = None, availability: CamundaAvailability | None = None) -> None:
        self.registry = CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"exchanger_worker_{name}", doc, labels, registry=self.registry)

        self.polls = counter("polls", "fetchAndLock calls answered")
        self.poll_errors = counter("poll_errors", "fetchAndLock calls that failed")
        self.fetched = counter("tasks_fetched", "tasks locked by fetchAndLock", ("topic",))
        self.published = counter("tasks_published", "task messages handed to the broker", ("system",))
        self.confirmed = counter("tasks_confirmed", "task messages confirmed by the broker", ("system",))
        self.returned = counter("tasks_returned", "task messages nacked, returned or not taken (broker down)",
                                ("reason",))
        self.lock_extended = counter("locks_extended", "tasks given the in-flight lock (their response was not "
                                     "applied within WORKER_LOCK_EXTEND_AFTER_S)")
        self.lock_extend_failed = counter("lock_extend_failures", "extendLock refused or failed", ("reason",))
        self.unlocked = counter("tasks_unlocked", "tasks unlocked because they could not be published")
        self.refused = counter("tasks_refused", "tasks that can never be published, reported as incidents")
        self.responses = counter("responses", "responses applied or settled, by outcome",
                                 ("outcome",))  # completed failed bpmn_errored gone retried parked incident
        self.fetch_latency = Histogram("exchanger_worker_fetch_seconds", "fetchAndLock duration (incl. long poll)",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.publish_latency = Histogram("exchanger_worker_publish_seconds", "fetched → confirmed by the broker",
                                         buckets=LATENCY_BUCKETS, registry=self.registry)
        self.complete_latency = Histogram("exchanger_worker_complete_seconds",
                                          "complete/failure/bpmnError call duration", ("status",),
                                          buckets=LATENCY_BUCKETS, registry=self.registry)
        if cache is not None:
            self.registry.register(_CacheCollector(cache))
        if availability is not None:
            self.registry.register(_AvailabilityCollector(availability))
