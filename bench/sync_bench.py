"""How long camunda-sync passes over 100 diagrams take against StormBPMN's real rate limit (5 a minute).

Nobody waits half an hour for a figure: the fake StormBPMN's quota and camunda-sync's limiter share one
virtual clock whose ``sleep`` only moves time forward, so every wait the limiter decides is counted
exactly, while the HTTP calls, conversions and deploys (to the sandbox engine) really run. Printed per
scenario: StormBPMN calls, the wall time a person would see (virtual), the real CPU/IO time, and the
429s the fake answered (must be 0). Figures only; never pass/fail.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from loguru import logger

from exchanger.camunda.settings import CamundaSettings
from exchanger.sync.daemon import Sync
from exchanger.sync.ratelimit import StormRateLimiter
from exchanger.sync.settings import StormSettings, SyncSettings
from exchanger_sandbox.camunda.server import start as start_engine
from exchanger_sandbox.stormbpmn.seed import CONTRACT
from exchanger_sandbox.stormbpmn.server import API_KEY, BEARER_TOKEN, StormApp, StormServer
from exchanger_sandbox.stormbpmn.state import Quota, Team

DIAGRAMS = 100
INTERVAL_S = 900.0  # the daemon's default pause between passes


class VirtualClock:
    """Real time plus every second anyone 'slept'."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.offset += max(0.0, seconds)


def diagram(n: int, variant: str = "") -> str:
    return CONTRACT.replace("Process_contract", f"Process_bench_{n}").replace(
        "Подписать договор", f"Подписать договор {n}{variant}")


def scenario(rate: float, internal: bool) -> list[tuple[str, int, float, float, int]]:
    clock = VirtualClock()
    team = Team(clock)
    for n in range(DIAGRAMS):
        team.upload({"id": f"bench-{n}", "name": f"Договор {n}", "xml": diagram(n)})
    app = StormApp(team, Quota(5, 60.0, clock=clock))
    storm = StormServer(app).start()
    engine = start_engine()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state.sqlite"
        sync = Sync(state, storm_settings=StormSettings(base_url=storm.url, api_key=API_KEY, bearer_token=BEARER_TOKEN,
                                                        internal_assignees=internal, rate_per_min=rate),
                    sync_settings=SyncSettings(state_file=str(state)),
                    camunda_settings=CamundaSettings(base_url=engine.url, tenant_id="bench"),
                    limiter=StormRateLimiter(rate, clock=clock, sleep=clock.sleep))

        def measure(name: str) -> None:
            calls, virtual, real = team.requests, clock(), time.monotonic()
            report = sync.run_pass()
            assert not report.aborted, report.aborted
            rows.append((name, team.requests - calls, clock() - virtual, time.monotonic() - real,
                         len(app.quota.overruns)))
            clock.sleep(INTERVAL_S)

        measure("first pass: 100 new diagrams")
        measure("next pass: nothing changed")
        team.upload({"id": "bench-7", "name": "Договор 7", "xml": diagram(7, " в срок")})
        measure("next pass: 1 diagram changed")
        sync.close()
    storm.stop()
    engine.stop()
    return rows


def main() -> None:
    logger.remove()
    logger.add(lambda message: None, level="WARNING")
    print(f"camunda-sync over {DIAGRAMS} diagrams against the fake StormBPMN's quota (5 requests / 60 s)")
    print(f"{'scenario':<44}{'calls':>7}{'wall (min)':>12}{'real (s)':>10}{'429s':>6}")
    for rate, internal in ((4, False), (5, False), (4, True)):
        print(f"-- STORMBPMN_RATE_PER_MIN={rate}, internal assignees {'on' if internal else 'off'}")
        for name, calls, virtual, real, overruns in scenario(rate, internal):
            print(f"{name:<44}{calls:>7}{virtual / 60:>12.1f}{real:>10.2f}{overruns:>6}")


if __name__ == "__main__":
    main()
