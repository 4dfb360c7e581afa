"""The pipeline benchmark (``make bench``): Exchanger's own overhead, end to end, on this machine.

A benchmark, not a test: it prints figures and never fails on a number. Against one sandbox engine
(a subprocess) and the local broker, with the python system's ``echo`` task (no external latency):

Throughput is measured the same way for all three: a backlog of started instances is worked off,
timed from the moment the worker starts on it to the last completion (the pipeline's camunda-worker
is held with SIGSTOP while its backlog is started, then resumed). Latency is measured in a second,
live phase, with instances started while the pipeline runs.

- ``raw_tasks_per_s``: the engine's capacity, fetchAndLock + complete in a tight loop, pooled client;
- ``reference_client_tasks_per_s``: camunda-external-task-client-python3's own worker on the same work;
- ``pipeline_tasks_per_s``: worker → RabbitMQ → task-creator → responses → worker → complete,
  from the first start to the last completion;
- latency per hop, from taps bound to the task and response exchanges (copies of every message)
  and the engine's history: created → queued, queued → handled, handled → response queued,
  response queued → completed, and end to end;
- CPU seconds and peak RSS of each daemon (from /proc), and ``worker_cpu_ms_per_task`` (camunda-worker
  CPU over the backlog run, per task);
- real work (``--real-tasks``): every work item costs 100 ms of external latency (the python system's
  ``http_request`` task calling a local server that answers after 100 ms; the reference client makes the
  same call in its handler). The pipeline runs them in parallel, at most ``CREATOR_PREFETCH`` of
  python.queue at once (``--real-concurrency``); the reference client runs its handler serially:
  ``ratio_vs_reference_real``;
- the scale table: throughput, p95 pick-up (worker resumed → task message queued) and peak RSS of both
  daemons for backlogs of 1k tasks, plus 10k and 50k with ``--scale 1000,10000,50000`` (or
  ``BENCH_SCALE``; several minutes more, so not in ``make bench``).

The live phase starts instances at a steady rate (``--live-rate`` per second).

The last line is one JSON object with exactly these keys.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from exchanger.amqp.connection import connect
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ResponseMessage, TaskMessage
from exchanger.settings import RabbitMQSettings
from exchanger.worker.fetcher import PROCESS_INSTANCE_HEADER
from exchanger_sandbox.demo.stack import Stack

ECHO_BPMN = (Path(__file__).resolve().parents[1] / "sandbox" / "exchanger_sandbox" / "demo" / "echo.bpmn").read_text()
CLK_TCK = 100  # os.sysconf("SC_CLK_TCK") on Linux
WORK_LATENCY_S = 0.1  # the external latency of one real work item
ECHO_TASK = '<bpmn:serviceTask id="Activity_Echo" name="Echo" camunda:type="external" camunda:topic="echo" />'


def deploy_echo(ops: EngineOps, key: str, topic: str) -> None:
    """The echo process under another key and topic, so that each mode has tasks of its own."""
    ops.deploy(ECHO_BPMN.replace('id="exchanger_bench_echo"', f'id="{key}"')
               .replace('camunda:topic="echo"', f'camunda:topic="{topic}"'), name=f"{key}.bpmn")


def deploy_real_work(ops: EngineOps, key: str, url: str) -> None:
    """The python system's ``http_request`` task against the slow server: 100 ms of external latency."""
    task = ('<bpmn:serviceTask id="Activity_Echo" name="Call" camunda:type="external" camunda:topic="http_request">'
            f'<bpmn:extensionElements><camunda:properties><camunda:property name="url" value="{url}" />'
            '</camunda:properties></bpmn:extensionElements></bpmn:serviceTask>')
    assert ECHO_TASK in ECHO_BPMN
    ops.deploy(ECHO_BPMN.replace('id="exchanger_bench_echo"', f'id="{key}"').replace(ECHO_TASK, task),
               name=f"{key}.bpmn")


class SlowServer:
    """A local HTTP server that answers every GET after ``WORK_LATENCY_S``: the external system of real work."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                time.sleep(WORK_LATENCY_S)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/work"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def start_many(ops: EngineOps, key: str, count: int, rate: float = 0.0) -> None:
    """Start ``count`` instances, as fast as the engine takes them or at a steady ``rate`` per second."""
    began = time.perf_counter()
    for n in range(count):
        if rate:
            time.sleep(max(0.0, began + n / rate - time.perf_counter()))
        ops.start(key, {"n": n})


def wait_finished(ops: EngineOps, key: str, count: int, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while ops.count("/history/process-instance", processDefinitionKey=key, finished="true") < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key}: not all {count} instances finished")
        time.sleep(0.05)
    return time.perf_counter()


def raw(ops: EngineOps, count: int) -> float:
    start_many(ops, "bench_raw", count)
    http, done, began = ops.http, 0, time.perf_counter()
    fetch = {"workerId": "raw", "maxTasks": 50, "topics": [{"topicName": "bench_raw", "lockDuration": 60000}],
             "asyncResponseTimeout": 1000}
    while done < count:
        for task in http.request("POST", "/external-task/fetchAndLock", json=fetch).json():
            http.request("POST", f"/external-task/{task['id']}/complete", json={"workerId": "raw"})
            done += 1
    return count / (time.perf_counter() - began)


def reference(ops: EngineOps, url: str, count: int) -> float:
    from camunda.external_task.external_task_worker import ExternalTaskWorker

    config = {"maxTasks": 50, "lockDuration": 60000, "asyncResponseTimeout": 1000, "sleepSeconds": 0,
              "retries": 1, "retryTimeout": 1000, "isDebug": False}
    worker = ExternalTaskWorker(worker_id="reference", base_url=url, config=config)
    start_many(ops, "bench_ref", count)
    began = time.perf_counter()
    threading.Thread(target=worker.subscribe, args=("bench_ref", lambda task: task.complete({})),
                     daemon=True).start()
    return count / (wait_finished(ops, "bench_ref", count) - began)


def reference_real(ops: EngineOps, url: str, count: int, work_url: str) -> float:
    """The reference client with the same 100 ms call in its handler (it runs one handler at a time)."""
    from camunda.external_task.external_task_worker import ExternalTaskWorker

    config = {"maxTasks": 50, "lockDuration": 60000, "asyncResponseTimeout": 1000, "sleepSeconds": 0,
              "retries": 1, "retryTimeout": 1000, "isDebug": False}
    worker = ExternalTaskWorker(worker_id="reference-real", base_url=url, config=config)
    start_many(ops, "bench_ref_real", count)
    began = time.perf_counter()

    def handle(task: Any) -> Any:
        status = requests.get(work_url, timeout=10).status_code
        return task.complete({"http_status": status})

    threading.Thread(target=worker.subscribe, args=("bench_ref_real", handle), daemon=True).start()
    return count / (wait_finished(ops, "bench_ref_real", count) - began)


class Tap:
    """Copies of every python task message and every response, by process instance, with their times."""

    def __init__(self, settings: RabbitMQSettings) -> None:
        self.connection = connect(settings, name="bench-tap", attempts=3)
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, "camunda.external.tasks", "python.#")
        self.channel.queue_bind(self.queue, "camunda.task.responses", "camunda.responses.queue")
        self.queued: dict[str, float] = {}
        self.handled: dict[str, float] = {}
        self.responded: dict[str, float] = {}  # the first response's arrival
        self.by_task: dict[str, float] = {}  # the first response's arrival, by Camunda task id
        self.task_responses: Counter[str] = Counter()  # responses per task id (an event's answer has no instance)
        self.parse_responses = True

    def start(self) -> None:
        """Consume in a thread of its own, so that arrival times are real."""
        self.channel.basic_consume(self.queue, self._on_message, auto_ack=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.connection.process_data_events(time_limit=0.1)
        self.connection.close()

    def stop(self) -> None:
        time.sleep(0.5)
        self._stop.set()
        self._thread.join(10)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        arrived = time.time()
        headers = properties.headers or {}
        schema = headers.get("x-exchanger-schema", "")
        if schema.startswith("exchanger.task"):
            instance = headers.get(PROCESS_INSTANCE_HEADER) or TaskMessage.from_bytes(body).process_instance_id
            self.queued[instance] = arrived
        elif schema.startswith("exchanger.response") and self.parse_responses:
            response = ResponseMessage.from_bytes(body)
            self.handled[response.process_instance_id] = response.handled_at.timestamp()
            self.responded.setdefault(response.process_instance_id, arrived)
            self.by_task.setdefault(response.task_id, arrived)
            self.task_responses[response.task_id] += 1


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": values[0] if values else 0.0, "p95": 0.0, "p99": 0.0}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "p99": round(q[98], 2)}


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def proc_usage(pid: int) -> dict[str, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
    peak_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmHWM"))
    return {"cpu_s": round(cpu_s, 2), "peak_rss_mb": round(peak_kb / 1024, 1)}


class Pipeline:
    """camunda-worker and task-creator as processes of the stack, and the runs made against them."""

    KEY = "exchanger_bench_echo"

    def __init__(self, stack: Stack, ops: EngineOps, real_concurrency: int) -> None:
        stack.write_env_file({"CAMUNDA_TENANT_ID": "", "CAMUNDA_MAX_TASKS": "100", "CAMUNDA_WORKER_ID": "bench",
                              "WORKER_HEALTH_PORT": "0", "CREATOR_HEALTH_PORT": "0", "CREATOR_QUEUES": "python.queue",
                              "RABBITMQ_PREFETCH": "50", "WORKER_RESPONSE_PREFETCH": "50", "LOG_LEVEL": "WARNING",
                              "CREATOR_PREFETCH": json.dumps({"python.queue": real_concurrency})})
        self.ops = ops
        self.worker, self.creator = stack.start_daemon("camunda-worker"), stack.start_daemon("task-creator")
        self.started = 0  # echo instances started so far
        self._echo(5, timeout_s=120)  # warm-up: both daemons connected and serving (the topology declared)
        self.tap = Tap(RabbitMQSettings(virtual_host=stack.vhost))
        self.tap.start()

    def _echo(self, count: int, rate: float = 0.0, timeout_s: float = 600) -> float:
        start_many(self.ops, self.KEY, count, rate)
        self.started += count
        return wait_finished(self.ops, self.KEY, self.started, timeout_s=timeout_s)

    def backlog(self, count: int) -> dict[str, float]:
        """Work off ``count`` instances started while the worker was held: throughput, pick-up, CPU, RSS."""
        self.tap.queued.clear()
        self.tap.parse_responses = False
        self.worker.signal(signal.SIGSTOP)  # hold the worker while the backlog is started
        start_many(self.ops, self.KEY, count)
        self.started += count
        cpu_before = proc_usage(self.worker.popen.pid)["cpu_s"]
        resumed = time.time()
        self.worker.signal(signal.SIGCONT)
        began = time.perf_counter()
        ended = wait_finished(self.ops, self.KEY, self.started, timeout_s=max(600, count / 20))
        worker, creator = proc_usage(self.worker.popen.pid), proc_usage(self.creator.popen.pid)
        pick_up = percentiles([(t - resumed) * 1000 for t in list(self.tap.queued.values())])
        return {"tasks": count, "tasks_per_s": round(count / (ended - began), 1), "pick_up_p95_ms": pick_up["p95"],
                "worker_cpu_ms_per_task": round((worker["cpu_s"] - cpu_before) * 1000 / count, 2),
                "worker_peak_rss_mb": worker["peak_rss_mb"], "creator_peak_rss_mb": creator["peak_rss_mb"]}

    def live(self, count: int, rate: float) -> dict[str, Any]:
        """Instances started at a steady rate while the pipeline runs: latency per hop."""
        tap = self.tap
        for times in (tap.queued, tap.handled, tap.responded):
            times.clear()
        tap.parse_responses = True
        self._echo(count, rate)
        time.sleep(0.5)  # the tap's last copies
        history = [a for a in self.ops.activity_history(processDefinitionKey=self.KEY, activityId="Activity_Echo")
                   if a.get("endTime")]
        hops: dict[str, list[float]] = {"created_to_queued": [], "queued_to_handled": [],
                                        "handled_to_response_queued": [], "response_to_completed": [],
                                        "end_to_end": []}
        for activity in history:
            instance = activity["processInstanceId"]  # one echo task per instance
            if instance not in tap.queued or instance not in tap.handled or instance not in tap.responded:
                continue  # not of this phase
            created, completed = _ts(activity["startTime"]), _ts(activity["endTime"])
            hops["end_to_end"].append((completed - created) * 1000)
            hops["created_to_queued"].append((tap.queued[instance] - created) * 1000)
            hops["queued_to_handled"].append((tap.handled[instance] - tap.queued[instance]) * 1000)
            hops["handled_to_response_queued"].append((tap.responded[instance] - tap.handled[instance]) * 1000)
            hops["response_to_completed"].append((completed - tap.responded[instance]) * 1000)
        return {hop: percentiles(values) for hop, values in hops.items() if values}

    def real(self, key: str, count: int) -> float:
        """``count`` real work items (100 ms each) through the pipeline, started as a backlog."""
        self.worker.signal(signal.SIGSTOP)
        start_many(self.ops, key, count)
        self.worker.signal(signal.SIGCONT)
        began = time.perf_counter()
        return count / (wait_finished(self.ops, key, count) - began)

    def resources(self) -> dict[str, Any]:
        return {"camunda-worker": proc_usage(self.worker.popen.pid), "task-creator": proc_usage(self.creator.popen.pid)}

    def stop(self) -> None:
        self.tap.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--live-tasks", type=int, default=300)
    parser.add_argument("--live-rate", type=float, default=50.0, help="instances started per second, live phase")
    parser.add_argument("--real-tasks", type=int, default=300, help="real work items through the pipeline")
    parser.add_argument("--real-reference-tasks", type=int, default=30, help="the same through the reference")
    parser.add_argument("--real-concurrency", type=int, default=50, help="CREATOR_PREFETCH of python.queue")
    parser.add_argument("--scale", default=os.environ.get("BENCH_SCALE", ""),
                        help="more backlog sizes for the scale table, e.g. 10000,50000 (the 1k row is --tasks)")
    args = parser.parse_args()
    scale = [int(size) for size in args.scale.split(",") if size.strip() and int(size) != args.tasks]
    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder))
        slow = SlowServer()
        try:
            stack.create_vhost()
            url = stack.start_sandbox("camunda")["CAMUNDA_BASE_URL"]
            ops = EngineOps(CamundaClient(CamundaSettings(base_url=url, tenant_id="")), None)
            for key, topic in (("bench_raw", "bench_raw"), ("bench_ref", "bench_ref"),
                               ("exchanger_bench_echo", "echo")):
                deploy_echo(ops, key, topic)
            deploy_real_work(ops, "exchanger_bench_real", slow.url)
            deploy_echo(ops, "bench_ref_real", "bench_ref_real")
            raw_rate = raw(ops, args.tasks)
            print(f"raw engine (fetchAndLock + complete):  {raw_rate:8.0f} tasks/s", flush=True)
            reference_rate = reference(ops, url, args.tasks)
            print(f"reference client worker:               {reference_rate:8.0f} tasks/s", flush=True)
            reference_real_rate = reference_real(ops, url, args.real_reference_tasks, slow.url)
            print(f"reference client, 100 ms real work:    {reference_real_rate:8.1f} tasks/s", flush=True)
            pipeline = Pipeline(stack, ops, args.real_concurrency)
            try:
                first = pipeline.backlog(args.tasks)
                pipeline_rate = first["tasks_per_s"]
                print(f"Exchanger pipeline:                    {pipeline_rate:8.0f} tasks/s", flush=True)
                print(f"  camunda-worker cpu per task          {first['worker_cpu_ms_per_task']:8.2f} ms", flush=True)
                latency = pipeline.live(args.live_tasks, args.live_rate)
                for hop, figures in latency.items():
                    print(f"  latency {hop:<28} p50 {figures['p50']:8.1f} ms  p95 {figures['p95']:8.1f} ms  "
                          f"p99 {figures['p99']:8.1f} ms")
                real_rate = pipeline.real("exchanger_bench_real", args.real_tasks)
                print(f"Exchanger pipeline, 100 ms real work:  {real_rate:8.1f} tasks/s "
                      f"({args.real_concurrency} at once)", flush=True)
                table = [first]
                for size in scale:
                    print(f"  backlog of {size} ...", flush=True)
                    table.append(pipeline.backlog(size))
                print("  scale: backlog  tasks/s  pick-up p95 ms  worker cpu ms/task  worker rss MB  creator rss MB")
                for row in table:
                    print(f"         {row['tasks']:7d}  {row['tasks_per_s']:7.0f}  {row['pick_up_p95_ms']:14.0f}  "
                          f"{row['worker_cpu_ms_per_task']:18.2f}  {row['worker_peak_rss_mb']:13.1f}  "
                          f"{row['creator_peak_rss_mb']:14.1f}")
                resources = pipeline.resources()
                for daemon, usage in resources.items():
                    print(f"  {daemon:<16} cpu {usage['cpu_s']:6.2f} s  peak rss {usage['peak_rss_mb']:6.1f} MB")
            finally:
                pipeline.stop()
            result = {
                "raw_tasks_per_s": round(raw_rate, 1),
                "reference_client_tasks_per_s": round(reference_rate, 1),
                "pipeline_tasks_per_s": round(pipeline_rate, 1),
                "ratio_vs_raw": round(pipeline_rate / raw_rate, 3),
                "ratio_vs_reference": round(pipeline_rate / reference_rate, 3),
                "latency_ms": latency,
                "resources": resources,
                "reference_client_real_tasks_per_s": round(reference_real_rate, 2),
                "pipeline_real_tasks_per_s": round(real_rate, 1),
                "ratio_vs_reference_real": round(real_rate / reference_real_rate, 2),
                "worker_cpu_ms_per_task": first["worker_cpu_ms_per_task"],
                "scale": table,
            }
            print(json.dumps(result))
        finally:
            slow.stop()
            stack.stop_all()
            stack.delete_vhost()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
