"""``make demo`` / ``make chaos``: the whole pipeline on one machine, with a ledger at the end.

Starts the sandbox (Camunda-compatible engine, fake Bitrix24, OpenProject, 1C and StormBPMN), uploads
the onboarding diagram to the fake StormBPMN as an analyst would and lets camunda-sync (``--once``)
convert and deploy it under the demo's tenant, starts camunda-worker and task-creator as real
subprocesses, starts the process instances, lets the simulated people finish the work items, shows
live progress, and prints a summary.
Exit code 0 only when every instance finished exactly once, no work item was duplicated, nothing is
parked, locked or in an incident. ``--chaos`` adds SIGKILLs of both daemons, a broker restart, Camunda
away for longer than the worker's retry budget, and faults injected into the fakes. ``--replicas 2``
runs two camunda-workers and two task-creators (``EXCHANGER_INSTANCE`` 1 and 2) as competing consumers
of the same queues and engine; with ``--chaos`` every one of them is killed at least once.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from loguru import logger

from env_loader import process_name
from exchanger.amqp.connection import connect
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps, duration_s
from exchanger.camunda.settings import CamundaSettings
from exchanger.settings import RabbitMQSettings
from exchanger_sandbox.demo.people import PERSON_ID, People
from exchanger_sandbox.demo.stack import Stack, StackError, rabbitmqctl
from exchanger_sandbox.stormbpmn.server import upload as storm_upload

PROCESS_KEY = "exchanger_demo_onboarding"
BPMN = Path(__file__).with_name("onboarding.bpmn")
TENANT = "demo"
SYSTEM_OF_ACTIVITY = {"Activity_Workplace": "openproject", "Activity_Welcome": "python",
                      "Activity_Approve": "bitrix24", "Activity_Expense": "1c", "Activity_NotifyDeleted": "python"}
DEPARTMENTS = ["Sales", "Engineering", "Finance", "Support"]
NAMES = ["Анна Иванова", "Boris Petrov", "Chen Wei", "Dana Smith", "Эмиль Гарипов", "Fatima Khan"]


DAEMONS = ("camunda-worker", "task-creator")
CAMUNDA_AWAY_S = 20.0  # longer than the chaos run's response retry budget (1 + 2 + 4 s): they must wait, not park
SLOW_WRITE_S = 35.0  # chaos: a Bitrix24 add this slow while task-creator is restarted (< the 45 s settle)


def daemon_settings(chaos: bool, queue_type: str = "classic") -> dict[str, str]:
    """Demo-speed settings: short locks and intervals so that a run takes a minute, not a day."""
    return {
        "CAMUNDA_TENANT_ID": TENANT,
        "CAMUNDA_WORKER_ID": "exchanger-demo",
        "CAMUNDA_FETCH_LOCK_MINUTES": "0.25" if chaos else "1",
        "CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS": "10000",
        "CAMUNDA_MAX_TASKS": "50",
        "WORKER_HEALTH_PORT": "0",
        "WORKER_RESPONSE_RETRY_INITIAL_S": "1",
        # chaos keeps Camunda away longer than this budget of refusals (1+2+4 s): responses must wait, not park
        "WORKER_RESPONSE_MAX_ATTEMPTS": "3" if chaos else "8",
        "WORKER_RESPONSE_RETRY_MAX_S": "4" if chaos else "300",
        "CAMUNDA_BACKOFF_MAX_S": "5" if chaos else "60",
        "WORKER_SHUTDOWN_DEADLINE_S": "10",
        "CREATOR_HEALTH_PORT": "0",
        "CREATOR_CHECK_INTERVAL_S": "1",
        "CREATOR_RETRY_CONFIG": "PT1S,PT2S,PT4S,PT8S,PT15S,PT30S",
        "CREATOR_DRAIN_S": "10",
        # longer than the fakes' slow writes in chaos (SLOW_WRITE_S, a 35 s stall), shorter than the real
        # portal's 70 s, so that a redelivered create waits them out without stalling the run
        **({f"{system}_WRITE_SETTLE_S": "45" for system in ("BITRIX", "OPENPROJECT", "ONEC")} if chaos else {}),
        "BITRIX_CHECK_INTERVAL_S": "2",
        "BITRIX_RATE_PER_S": "20",
        "BITRIX_BURST": "100",
        "OPENPROJECT_CHECK_INTERVAL_S": "1",
        "ONEC_CHECK_INTERVAL_S": "1",
        "RABBITMQ_PREFETCH": "20",
        "RABBITMQ_QUEUE_TYPE": queue_type,
        "LOG_LEVEL": "INFO",
    }


class Progress:
    """One status line on stderr, rewritten in place."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self._last = ("", 0.0)  # without a terminal: a new line only on change or every 10 s

    def show(self, finished: int, started: int, per_system: dict[str, int], errors: int) -> None:
        width = 30
        filled = int(width * finished / max(1, self.total))
        systems = " ".join(f"{k}:{v}" for k, v in sorted(per_system.items()))
        line = f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{started} instances | {systems} | errors {errors}"
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif line != self._last[0] or time.monotonic() - self._last[1] > 10:
            print(line, file=sys.stderr, flush=True)
            self._last = (line, time.monotonic())

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


class Demo:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.stack = Stack(workdir)
        self.random = random.Random(args.seed)
        self.ops: EngineOps | None = None
        self.people: People | None = None
        self.fakes: dict[str, str] = {}
        self.chaos_log: list[str] = []
        self.model_line = ""  # what camunda-sync said about the onboarding model
        # every daemon process by name: camunda-worker, camunda-worker-2, task-creator, task-creator-2, …
        self.daemons = {unit: [process_name(unit, n) for n in range(1, args.replicas + 1)] for unit in DAEMONS}

    # --- set-up -----------------------------------------------------------------------------

    def start(self) -> None:
        self.stack.create_vhost()
        self.stack.start_sandbox("camunda")
        self.fakes["bitrix24"] = self.stack.start_sandbox(
            "bitrix24", "--rate", "20", "--burst", "100", "--external-id-field", "UF_CAMUNDA_ID_EXTERNAL_TASK",
            "--ui-user", str(PERSON_ID)
        )["BITRIX_WEBHOOK_URL"]
        self.fakes["openproject"] = self.stack.start_sandbox("openproject")["OPENPROJECT_BASE_URL"]
        self.fakes["1c"] = self.stack.start_sandbox("onec")["ONEC_BASE_URL"]
        storm = self.stack.start_sandbox("stormbpmn")
        self.stack.write_env_file({**daemon_settings(self.args.chaos, self.args.queue_type),
                                   "CAMUNDA_SYNC_HEALTH_PORT": "0"})
        camunda = CamundaClient(CamundaSettings(base_url=self.stack.settings["CAMUNDA_BASE_URL"], tenant_id=TENANT))
        self.ops = EngineOps(camunda, TENANT)
        self.deploy_through_camunda_sync(storm)
        for unit in DAEMONS:
            for instance in range(1, self.args.replicas + 1):
                self.stack.start_daemon(unit, {"EXCHANGER_INSTANCE": str(instance)})
        self.people = People(self.stack.settings, seed=self.args.seed,
                             delete_ratio=0.0 if self.args.chaos else 0.1)
        self.people.start()

    def deploy_through_camunda_sync(self, storm: dict[str, str]) -> None:
        """The onboarding diagram goes the way a company's models go: StormBPMN → camunda-sync → Camunda."""
        storm_upload(storm["STORMBPMN_BASE_URL"], storm["STORMBPMN_API_KEY"],
                     [{"id": "exchanger-demo-onboarding", "name": "Employee onboarding", "xml": BPMN.read_text()}])
        result = self.stack.run_once("camunda-sync", "--once")
        deployed = [line for line in result.stdout.splitlines() if "→ deployed" in line]
        if result.returncode != 0 or not deployed:
            raise StackError(f"camunda-sync did not deploy the onboarding model (exit {result.returncode}): "
                             f"{(result.stdout + result.stderr)[-1500:]}")
        self.model_line = deployed[0]

    def start_instances(self) -> list[str]:
        assert self.ops is not None
        ids = []
        for n in range(self.args.instances):
            variables = {"employeeName": self.random.choice(NAMES), "department": self.random.choice(DEPARTMENTS),
                         "equipmentBudget": float(self.random.randrange(500, 3000, 50)), "startedBy": 1}
            ids.append(self.ops.start(PROCESS_KEY, variables, business_key=f"onboarding-{n + 1}"))
        return ids

    # --- observation ------------------------------------------------------------------------

    def fake_stats(self) -> dict[str, dict[str, Any]]:
        return {system: requests.get(f"{_origin(url)}/_admin/stats", timeout=5).json()
                for system, url in self.fakes.items()}

    def parked(self) -> int:
        settings = RabbitMQSettings(virtual_host=self.stack.vhost)
        connection = connect(settings, name="demo-ledger", attempts=3)
        try:
            declared = connection.channel().queue_declare("errors.camunda_tasks.queue", passive=True)
            count: int = declared.method.message_count
            return count
        finally:
            connection.close()

    def wait(self, ids: list[str]) -> tuple[int, str]:
        """Until every instance finished, or nothing moved for ``--stall-timeout`` seconds."""
        assert self.ops is not None
        progress = Progress(len(ids))
        last_change, last_progress = time.monotonic(), -1
        deadline = time.monotonic() + self.args.timeout
        while True:
            finished = self.ops.count("/history/process-instance", processDefinitionKey=PROCESS_KEY,
                                      finished="true")
            done_activities = Counter(SYSTEM_OF_ACTIVITY.get(a["activityId"], "?") for a in
                                      self.ops.activity_history(processDefinitionKey=PROCESS_KEY, finished="true")
                                      if a["activityId"] in SYSTEM_OF_ACTIVITY)
            errors = sum(self.people.errors.values()) if self.people else 0
            progress.show(finished, len(ids), dict(done_activities), errors)
            if finished >= len(ids):
                progress.done()
                return finished, ""
            progress_made = finished + sum(done_activities.values())
            if progress_made != last_progress:
                last_change, last_progress = time.monotonic(), progress_made
            now = time.monotonic()
            if now - last_change > self.args.stall_timeout or now > deadline:
                progress.done()
                return finished, (f"stuck: {len(ids) - finished} instance(s) unfinished after "
                                  f"{now - last_change:.0f}s without progress")
            time.sleep(0.5)

    # --- chaos -----------------------------------------------------------------------------

    def chaos(self, stop: threading.Event) -> None:
        """Kill and restart each daemon (twice), restart the broker once, take Camunda away for longer than
        the worker's retry budget (CAMUNDA_AWAY_S), inject faults into the fakes, and restart task-creator
        (once SIGTERM, once SIGKILL) while the portal is still working on a slow ``tasks.task.add``.

        The events come in random order, a few seconds apart, while the instances are in flight.
        """
        plan = [*self.kills(), "broker", "camunda-away", "fault", "fault", "fault", "slow-write-term",
                "slow-write-kill"]
        self.random.shuffle(plan)
        for event in plan:
            if stop.wait(self.random.uniform(1.5, 4.0)):
                break
            if event == "broker":
                rabbitmqctl("stop_app")
                stop.wait(self.random.uniform(1.0, 3.0))
                rabbitmqctl("start_app")
                self.chaos_log.append("broker stop_app/start_app")
            elif event == "camunda-away":
                self.stack.restart_sandbox("camunda", CAMUNDA_AWAY_S, stop)
                self.chaos_log.append(f"Camunda away {CAMUNDA_AWAY_S:g}s")
            elif event.startswith("slow-write"):
                self.restart_during_slow_write(graceful=event.endswith("term"), stop=stop)
            elif event == "fault":
                system = self.random.choice(list(self.fakes))
                fault = self.random.choice([{"status": 503, "count": 5},
                                            {"status": 429, "count": 3, "headers": {"Retry-After": "1"}},
                                            {"delay_s": 35, "count": 1}])
                requests.post(f"{_origin(self.fakes[system])}/_admin/faults", json=fault, timeout=5)
                self.chaos_log.append(f"{system} {fault}")
            else:
                self.stack.kill(event)
                self.chaos_log.append(f"SIGKILL {event}")
                stop.wait(self.random.uniform(0.5, 2.0))
                self.stack.restart(event)
        for names in self.daemons.values():
            for name in names:
                if not self.stack.processes[name].running:
                    self.stack.restart(name)

    def kills(self) -> list[str]:
        """The SIGKILLs of the plan: each daemon twice with one of each; with replicas, every instance once
        and one more of each daemon at random."""
        if self.args.replicas == 1:
            return [*DAEMONS, *DAEMONS]
        return [*(name for names in self.daemons.values() for name in names),
                *(self.random.choice(names) for names in self.daemons.values())]

    def restart_during_slow_write(self, *, graceful: bool, stop: threading.Event) -> None:
        """The portal takes SLOW_WRITE_S over the next add; a task-creator goes away while it runs (a SIGTERM
        whose drain ends first, or a SIGKILL) and comes back at once: the redelivered task (to it, or to the
        other instance with replicas) must wait the write out instead of adding a second task."""
        fault = {"delay_s": SLOW_WRITE_S, "count": 1, "path_contains": "tasks.task.add"}
        requests.post(f"{_origin(self.fakes['bitrix24'])}/_admin/faults", json=fault, timeout=5)
        stop.wait(self.random.uniform(2.0, 4.0))  # tasks keep coming: an add is under way by now
        creator = self.random.choice(self.daemons["task-creator"])  # with replicas: the one doing the add, or not
        if graceful:
            self.stack.restart(creator)  # SIGTERM; CREATOR_DRAIN_S (10 s) ends before the add does
        else:
            self.stack.kill(creator)
            self.stack.restart(creator)
        self.chaos_log.append(f"{'SIGTERM' if graceful else 'SIGKILL'} {creator} during a {SLOW_WRITE_S:g}s "
                              f"Bitrix24 add")

    def work_split(self) -> dict[str, int]:
        """Per daemon process, from its own log: batches fetched and responses applied (camunda-worker),
        results published (task-creator); every instance doing a share shows they compete for the work."""
        marks = {"camunda-worker": ("fetched ", " applied"), "task-creator": (" → ",)}
        split = {}
        for unit, names in self.daemons.items():
            for name in names:
                log = self.stack.workdir / "logs" / "dev" / f"{name}.log"
                text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
                split[name] = sum(1 for line in text.splitlines() if any(mark in line for mark in marks[unit]))
        return split

    # --- ledger -----------------------------------------------------------------------------

    def summary(self, ids: list[str], finished: int, stuck: str) -> int:
        assert self.ops is not None
        history = self.ops.finished_instances(PROCESS_KEY)
        per_instance = Counter(h["id"] for h in history)
        ends = Counter(a["activityId"] for a in self.ops.activity_history(processDefinitionKey=PROCESS_KEY,
                                                                           activityType="noneEndEvent"))
        stats = self.fake_stats()
        duplicates = {"bitrix24": len(stats["bitrix24"].get("duplicates", {})),
                      "openproject": len(stats["openproject"].get("duplicates", {})),
                      "1c": sum(len(d) for d in stats["1c"].get("duplicates", {}).values())}
        items = {"bitrix24": stats["bitrix24"].get("created", 0),
                 "openproject": stats["openproject"].get("work_packages", 0), "1c": stats["1c"].get("documents", 0)}
        latencies = [d for a in self.ops.activity_history(processDefinitionKey=PROCESS_KEY, finished="true")
                     if a["activityId"] in SYSTEM_OF_ACTIVITY and (d := duration_s(a)) is not None]
        parked, locked, incidents = self.parked(), len(self.ops.locked_tasks()), self.ops.incidents()
        problems = []
        if stuck:
            problems.append(stuck)
        if any(n != 1 for n in per_instance.values()) or set(per_instance) != set(ids):
            problems.append(f"{len(set(ids) - set(per_instance))} instance(s) not finished exactly once")
        if sum(duplicates.values()):
            problems.append(f"duplicated work items: {duplicates}")
        if parked:
            problems.append(f"{parked} message(s) parked in errors.camunda_tasks.queue")
        if locked:
            problems.append(f"{locked} external task(s) still locked")
        if incidents:
            problems.append(f"{len(incidents)} incident(s): {incidents[0].get('incidentMessage')}")
        rows = [
            ("instances started", len(ids)), ("instances completed", finished),
            ("  onboarded", ends.get("End_Onboarded", 0)), ("  not approved", ends.get("End_Rejected", 0)),
            ("  expense withdrawn (error path)", ends.get("End_Withdrawn", 0)),
            *((f"work items in {k}", v) for k, v in items.items()),
            ("duplicates in the fakes", sum(duplicates.values())), ("parked messages", parked),
            ("tasks still locked", locked), ("incidents", len(incidents)),
            ("task latency p50 (s)", f"{_percentile(latencies, 50):.2f}"),
            ("task latency p95 (s)", f"{_percentile(latencies, 95):.2f}"),
        ]
        if self.args.replicas > 1:
            split = self.work_split()
            rows += [(f"  work done by {name}", count) for name, count in split.items()]
            idle = [name for name, count in split.items() if not count]
            if idle:
                problems.append(f"{', '.join(idle)} did no work: the instances do not share the queues")
        if self.args.chaos:
            rows.append(("chaos events", len(self.chaos_log)))
        kind = [*(["chaos"] if self.args.chaos else []),
                *([f"{self.args.replicas} of each daemon"] if self.args.replicas > 1 else [])]
        print("\nExchanger demo summary" + (f" ({', '.join(kind)})" if kind else ""))
        print(f"  model from StormBPMN via camunda-sync: {self.model_line}")
        for label, value in rows:
            print(f"  {label:<36} {value:>10}")
        if self.args.chaos:
            print("  chaos log: " + "; ".join(self.chaos_log))
        if problems:
            print("FAILED: " + "; ".join(problems))
            print(f"logs: {self.stack.workdir / 'logs'}")
            return 1
        print("OK: every instance finished exactly once; nothing duplicated, parked, locked or in an incident.")
        return 0

    def stop(self) -> None:
        if self.people:
            self.people.stop()
        self.stack.stop_all()
        self.stack.delete_vhost()


def _origin(url: str) -> str:
    parts = url.split("/")
    return "/".join(parts[:3])


def _percentile(values: list[float], p: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchanger_sandbox.demo", description=__doc__)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--chaos", action="store_true", help="kill daemons, restart the broker, inject faults")
    parser.add_argument("--replicas", type=int, default=1, choices=range(1, 10), metavar="N",
                        help="camunda-workers and task-creators each (EXCHANGER_INSTANCE 1..N); default 1")
    parser.add_argument("--queue-type", choices=("classic", "quorum"), default="classic",
                        help="RABBITMQ_QUEUE_TYPE of the daemons' queues (a cluster's choice: quorum)")
    parser.add_argument("--timeout", type=float, default=900.0, help="overall limit in seconds")
    parser.add_argument("--stall-timeout", type=float, default=120.0, help="limit without any progress")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the logs")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    workdir = Path(tempfile.mkdtemp(prefix="exchanger-demo-"))
    demo = Demo(args, workdir)
    try:
        replicas = f", {args.replicas} camunda-workers and task-creators" if args.replicas > 1 else ""
        print(f"Exchanger demo: {args.instances} onboarding instances{' with chaos' if args.chaos else ''}{replicas}; "
              f"work folder {workdir}", flush=True)
        demo.start()
        ids = demo.start_instances()
        stop_chaos = threading.Event()  # the plan ends by itself; set on an early exit
        chaos = threading.Thread(target=demo.chaos, args=(stop_chaos,), daemon=True) if args.chaos else None
        if chaos:
            chaos.start()
            chaos.join()  # the chaos plan runs while the instances are in flight
        finished, stuck = demo.wait(ids)
        code = demo.summary(ids, finished, stuck)
        if code == 0 and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return code
    except StackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    finally:
        demo.stop()


if __name__ == "__main__":
    raise SystemExit(main())
