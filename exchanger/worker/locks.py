"""The lock keeper: the long lock only for tasks still in flight after ``WORKER_LOCK_EXTEND_AFTER_S``.

A task is fetched under the short lock (``CAMUNDA_FETCH_LOCK_MINUTES``). Once the broker confirmed its
message the fetcher hands it here; if its response has not been applied by then (the response
handler calls :meth:`LockKeeper.forget`), the keeper extends its lock to ``CAMUNDA_LOCK_DURATION``.
Most tasks of a fast system come back well inside the short lock and cost no extendLock call at all.

Failure story (why no task is lost and none is locked for a year by mistake):

* the long lock is only ever taken *after* the broker's confirm, so a crash can never leave an
  unpublished task under it;
* a crash (or a keeper that cannot reach Camunda) before the extension leaves the task under its
  short lock: it expires, the task is fetched and published again, and the consumer sees a duplicate
  (idempotent handlers, and a second complete answers 404, which is "done"). Without the keeper this
  window was the few milliseconds between confirm and extendLock; now it is up to the extension
  delay, so a crash may duplicate the messages of the tasks confirmed in its last seconds;
* a clean stop extends every task still tracked (within the shutdown deadline), so a restart
  duplicates nothing;
* the delay is capped at half the short lock, and an extension that fails is tried again every second
  while the short lock runs; when it has run out the task is left to be fetched again.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from loguru import logger

from exchanger.camunda.client import CamundaClient, CamundaNotFound
from exchanger.errors import IntegrationError, TransientError
from exchanger.worker.metrics import WorkerMetrics

EXTEND_THREADS = 4  # extendLock calls at once (a backlog of long-running tasks comes due together)
RETRY_S = 1.0  # a failed extension is tried again this soon while the short lock runs
TICK_S = 0.5  # the longest the keeper sleeps between passes


class LockKeeper:
    """Thread-safe; :meth:`run` in a thread of its own until ``stop`` is set, then a final pass."""

    def __init__(self, client: CamundaClient, metrics: WorkerMetrics, *, lock_duration_ms: int,
                 fetch_lock_ms: int, extend_after_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.metrics = metrics
        self.lock_duration_ms = lock_duration_ms
        self.fetch_lock_s = fetch_lock_ms / 1000
        self.extend_after_s = min(extend_after_s, self.fetch_lock_s / 2)
        self.clock = clock
        self._lock = threading.Lock()
        self._tracked: dict[str, tuple[str, float, float]] = {}  # task id → (topic, confirmed at, short lock end)
        self._due: list[tuple[float, str]] = []  # (due, task id); entries of forgotten tasks are skipped when due
        self._wake = threading.Event()

    def track(self, task_id: str, topic: str, fetched_at: float) -> None:
        """The broker confirmed ``task_id``'s message; its short lock was taken at ``fetched_at``."""
        now = self.clock()
        with self._lock:
            self._tracked[task_id] = (topic, now, fetched_at + self.fetch_lock_s)
            heapq.heappush(self._due, (now + self.extend_after_s, task_id))
        if self.extend_after_s <= 0:
            self._wake.set()

    def forget(self, task_id: str) -> None:
        """Camunda answered the task's response: no lock to keep."""
        with self._lock:
            self._tracked.pop(task_id, None)

    @property
    def tracked(self) -> int:
        with self._lock:
            return len(self._tracked)

    @property
    def behind_s(self) -> float:
        """How late the most overdue extension is (0 when the keeper keeps up); the fetcher waits while
        it is late, so that a backlog of extensions never outruns the short locks."""
        with self._lock:
            while self._due and self._due[0][1] not in self._tracked:
                heapq.heappop(self._due)
            return max(0.0, self.clock() - self._due[0][0]) if self._due else 0.0

    def run(self, stop: threading.Event, final_pass_s: float = 10.0) -> None:
        with ThreadPoolExecutor(EXTEND_THREADS, thread_name_prefix="camunda-worker:extend") as pool:
            while not stop.is_set():
                self._wake.clear()
                due = self._take_due(self.clock())
                if due:
                    list(pool.map(self._extend, due))
                    continue
                self._wake.wait(self._sleep_s())
            self._final_pass(pool, final_pass_s)

    def _sleep_s(self) -> float:
        with self._lock:
            if not self._due:
                return TICK_S
            return min(TICK_S, max(0.0, self._due[0][0] - self.clock()))

    def _take_due(self, now: float, limit: int = 200) -> list[tuple[str, str, float]]:
        """Due tasks still tracked, oldest first: (task id, topic, short lock end)."""
        taken: list[tuple[str, str, float]] = []
        with self._lock:
            while self._due and self._due[0][0] <= now and len(taken) < limit:
                _, task_id = heapq.heappop(self._due)
                entry = self._tracked.get(task_id)
                if entry is not None:
                    taken.append((task_id, entry[0], entry[2]))
        return taken

    def _extend(self, item: tuple[str, str, float]) -> None:
        task_id, topic, lock_end = item
        try:
            self.client.extend_lock(task_id, self.lock_duration_ms)
        except CamundaNotFound:
            self.forget(task_id)
            self.metrics.lock_extend_failed.labels("gone").inc()
            return
        except TransientError as exc:
            if self.clock() + RETRY_S < lock_end:
                with self._lock:
                    if task_id in self._tracked:
                        heapq.heappush(self._due, (self.clock() + RETRY_S, task_id))
                self.metrics.lock_extend_failed.labels("retried").inc()
                logger.debug("task {}: extendLock failed ({}); trying again", task_id, exc.message)
                return
            self._give_up(task_id, topic, exc)
            return
        except IntegrationError as exc:
            self._give_up(task_id, topic, exc)
            return
        with self._lock:
            entry = self._tracked.pop(task_id, None)
        self.metrics.lock_extended.inc()
        if entry is not None:
            self.metrics.publish_latency.observe(self.clock() - entry[1])

    def _give_up(self, task_id: str, topic: str, exc: IntegrationError) -> None:
        self.forget(task_id)
        self.metrics.lock_extend_failed.labels(type(exc).__name__).inc()
        logger.warning("task {} ({}) published but its lock could not be extended ({}); it will be published "
                       "again when the short lock expires and the consumer will see the duplicate",
                       task_id, topic, exc.message)

    def _final_pass(self, pool: ThreadPoolExecutor, budget_s: float) -> None:
        """On a clean stop, the long lock for every task still in flight (so that a restart duplicates
        nothing); what the budget does not cover falls back to its short lock."""
        deadline = self.clock() + budget_s
        with self._lock:
            self._due = [(0.0, task_id) for task_id in self._tracked]
        if self._due:
            logger.info("stopping: extending the locks of {} task(s) still in flight", len(self._due))
        while self.clock() < deadline:
            due = self._take_due(float("inf"), limit=EXTEND_THREADS * 8)
            if not due:
                return
            list(pool.map(self._extend, due))
        if self.tracked:
            logger.warning("stopping: {} task(s) keep their short lock and will be published again", self.tracked)
