"""camunda-sync as a process: the clients built from settings, the limiter's memory kept in the state,
one pass (``--once``) or a pass every ``CAMUNDA_SYNC_INTERVAL_S`` with liveness, readiness and metrics.

Readiness fails when no pass was good for three intervals (StormBPMN or Camunda away, a key revoked),
which is the alert an operator needs; a bad pass never ends the daemon (no crash loop).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger.health import HealthServer
from exchanger.settings import load
from exchanger.sync.deploy import Deployer
from exchanger.sync.ratelimit import StormRateLimiter
from exchanger.sync.settings import StormSettings, SyncSettings
from exchanger.sync.state import SyncState
from exchanger.sync.storm import StormClient
from exchanger.sync.sync_pass import EXIT_OK, PassReport, SyncPass

COMPONENT = "camunda-sync"
STALE_INTERVALS = 3  # no good pass for this many intervals: not ready


class Sync:
    """Everything one camunda-sync process holds; ``close`` releases it."""

    def __init__(self, state_path: Path, *, storm_settings: StormSettings | None = None,
                 sync_settings: SyncSettings | None = None, camunda_settings: CamundaSettings | None = None,
                 limiter: StormRateLimiter | None = None) -> None:
        self.storm_settings = storm_settings or load(StormSettings)
        self.settings = sync_settings or load(SyncSettings)
        camunda = camunda_settings or load(CamundaSettings)
        self.state = SyncState(state_path)
        self.limiter = limiter or StormRateLimiter(self.storm_settings.rate_per_min,
                                                   window_s=self.storm_settings.rate_window_s)
        self.limiter.restore(self.state.meta("limiter", {}))
        self.storm = StormClient(self.storm_settings, self.limiter)
        self.camunda = CamundaClient(camunda)
        self.deployer = Deployer(EngineOps(self.camunda), camunda.tenant_id, self.settings.deployment_source)

    def close(self) -> None:
        self.storm.close()
        self.camunda.close()
        self.state.close()

    def run_pass(self, *, dry_run: bool = False, force: bool = False, only: list[str] | None = None,
                 log_outcomes: bool = True) -> PassReport:
        self.state.lock()
        try:
            report = SyncPass(self.storm, self.deployer, self.state, self.settings, self.storm_settings,
                              dry_run=dry_run, force=force, only=only, log_outcomes=log_outcomes).run()
        finally:
            self.state.set_meta("limiter", self.limiter.snapshot())
            self.state.unlock()
        return report


class Stopping(Exception):
    """SIGTERM while the limiter waits: the pass ends at once (between calls, so nothing is half done)."""


def serve(sync: Sync, stop: threading.Event) -> int:
    """A pass every interval until ``stop``; health on ``CAMUNDA_SYNC_HEALTH_PORT``."""

    def wait_unless_stopped(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopping

    sync.limiter.sleep = wait_unless_stopped  # a limiter wait of up to a minute must not delay a stop
    registry = CollectorRegistry()
    passes = Counter("camunda_sync_passes", "passes by result", ["result"], registry=registry)
    actions = Counter("camunda_sync_diagrams", "diagram outcomes", ["action"], registry=registry)
    last_good = Gauge("camunda_sync_last_good_pass_timestamp", "unix time of the last good pass", registry=registry)
    state = {"good_at": time.time()}
    interval = sync.settings.interval_s

    def fresh() -> tuple[bool, str]:
        age = time.time() - state["good_at"]
        return age < STALE_INTERVALS * interval, f"last good pass {age:.0f}s ago"

    health = None
    if sync.settings.health_port:
        health = HealthServer(sync.settings.health_port, registry, {"recent_pass": fresh}).start()
    logger.info("{} serving: a pass every {:.0f}s", COMPONENT, interval)
    expiry = sync.storm.token_expiry()
    if sync.storm_settings.internal_assignees and expiry is not None and expiry - time.time() < 86_400:
        logger.warning("STORMBPMN_BEARER_TOKEN expires {} (or has expired): copy a fresh one from the browser",
                       time.strftime("%Y-%m-%d %H:%M", time.localtime(expiry)))
    try:
        while not stop.is_set():
            try:
                report = sync.run_pass()
            except Stopping:
                logger.info("{} stopping during a rate-limit wait; the next start goes on from the state",
                            COMPONENT)
                break
            except Exception:  # noqa: BLE001 - one bad pass must not end the daemon; the next one retries
                logger.exception("camunda-sync pass crashed; next pass in {:.0f}s", interval)
                passes.labels("crashed").inc()
            else:
                passes.labels("ok" if report.exit_code == EXIT_OK else "failed").inc()
                for outcome in report.outcomes:
                    actions.labels(outcome.action).inc()
                if not report.aborted:
                    state["good_at"] = time.time()
                    last_good.set(state["good_at"])
            stop.wait(interval)
    finally:
        if health is not None:
            health.stop()
    return 0
