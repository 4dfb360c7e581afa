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
- CPU seconds and peak RSS of each daemon (from /proc).

The last line is one JSON object with exactly these keys.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from exchanger.amqp.connection import connect
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ResponseMessage, TaskMessage
from exchanger.demo.stack import Stack
from exchanger.settings import RabbitMQSettings

ECHO_BPMN = (Path(__file__).resolve().parents[1] / "exchanger" / "demo" / "echo.bpmn").read_text()
CLK_TCK = 100  # os.sysconf("SC_CLK_TCK") on Linux


def deploy_echo(ops: EngineOps, key: str, topic: str) -> None:
    """The echo process under another key and topic, so that each mode has tasks of its own."""
    ops.deploy(ECHO_BPMN.replace('id="exchanger_bench_echo"', f'id="{key}"')
               .replace('camunda:topic="echo"', f'camunda:topic="{topic}"'), name=f"{key}.bpmn")


def start_many(ops: EngineOps, key: str, count: int) -> None:
    for n in range(count):
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
        self.responded: dict[str, float] = {}

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
        schema = (properties.headers or {}).get("x-exchanger-schema", "")
        if schema.startswith("exchanger.task"):
            task = TaskMessage.from_bytes(body)
            self.queued[task.process_instance_id] = arrived
        elif schema.startswith("exchanger.response"):
            response = ResponseMessage.from_bytes(body)
            self.handled[response.process_instance_id] = response.handled_at.timestamp()
            self.responded[response.process_instance_id] = arrived


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


def pipeline(stack: Stack, ops: EngineOps, count: int) -> tuple[float, dict[str, Any], dict[str, Any]]:
    stack.write_env_file({"CAMUNDA_TENANT_ID": "", "CAMUNDA_MAX_TASKS": "100", "CAMUNDA_WORKER_ID": "bench",
                          "WORKER_HEALTH_PORT": "0", "CREATOR_HEALTH_PORT": "0", "CREATOR_QUEUES": "python.queue",
                          "RABBITMQ_PREFETCH": "50", "WORKER_RESPONSE_PREFETCH": "50", "LOG_LEVEL": "WARNING"})
    worker, creator = stack.start_daemon("camunda-worker"), stack.start_daemon("task-creator")
    start_many(ops, "exchanger_bench_echo", 5)  # warm-up: both daemons connected and serving
    wait_finished(ops, "exchanger_bench_echo", 5, timeout_s=120)
    worker.signal(signal.SIGSTOP)  # hold the worker while the backlog is started
    start_many(ops, "exchanger_bench_echo", count)
    worker.signal(signal.SIGCONT)
    began = time.perf_counter()
    ended = wait_finished(ops, "exchanger_bench_echo", count + 5)
    rate = count / (ended - began)
    tap = Tap(RabbitMQSettings(virtual_host=stack.vhost))
    tap.start()
    live = min(count, 300)
    start_many(ops, "exchanger_bench_echo", live)
    wait_finished(ops, "exchanger_bench_echo", count + live + 5)
    tap.stop()
    history = [a for a in ops.activity_history(processDefinitionKey="exchanger_bench_echo", activityId="Activity_Echo")
               if a.get("endTime")]
    hops: dict[str, list[float]] = {"created_to_queued": [], "queued_to_handled": [],
                                    "handled_to_response_queued": [], "response_to_completed": [], "end_to_end": []}
    for activity in history:
        task_id = activity["processInstanceId"]  # one echo task per instance
        if task_id not in tap.queued:
            continue  # the backlog phase: its waiting time is not latency
        created, completed = _ts(activity["startTime"]), _ts(activity["endTime"])
        hops["end_to_end"].append((completed - created) * 1000)
        if task_id in tap.queued and task_id in tap.handled:
            hops["created_to_queued"].append((tap.queued[task_id] - created) * 1000)
            hops["queued_to_handled"].append((tap.handled[task_id] - tap.queued[task_id]) * 1000)
            hops["handled_to_response_queued"].append((tap.responded[task_id] - tap.handled[task_id]) * 1000)
            hops["response_to_completed"].append((completed - tap.responded[task_id]) * 1000)
    latency = {hop: percentiles(values) for hop, values in hops.items() if values}
    resources = {"camunda-worker": proc_usage(worker.popen.pid), "task-creator": proc_usage(creator.popen.pid)}
    return rate, latency, resources


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder))
        try:
            stack.create_vhost()
            url = stack.start_sandbox("camunda")["CAMUNDA_BASE_URL"]
            ops = EngineOps(CamundaClient(CamundaSettings(base_url=url, tenant_id="")), None)
            for key, topic in (("bench_raw", "bench_raw"), ("bench_ref", "bench_ref"),
                               ("exchanger_bench_echo", "echo")):
                deploy_echo(ops, key, topic)
            raw_rate = raw(ops, args.tasks)
            print(f"raw engine (fetchAndLock + complete):  {raw_rate:8.0f} tasks/s", flush=True)
            reference_rate = reference(ops, url, args.tasks)
            print(f"reference client worker:               {reference_rate:8.0f} tasks/s", flush=True)
            pipeline_rate, latency, resources = pipeline(stack, ops, args.tasks)
            print(f"Exchanger pipeline:                    {pipeline_rate:8.0f} tasks/s", flush=True)
            for hop, figures in latency.items():
                print(f"  latency {hop:<28} p50 {figures['p50']:8.1f} ms  p95 {figures['p95']:8.1f} ms  "
                      f"p99 {figures['p99']:8.1f} ms")
            for daemon, usage in resources.items():
                print(f"  {daemon:<16} cpu {usage['cpu_s']:6.2f} s  peak rss {usage['peak_rss_mb']:6.1f} MB")
            result = {
                "raw_tasks_per_s": round(raw_rate, 1),
                "reference_client_tasks_per_s": round(reference_rate, 1),
                "pipeline_tasks_per_s": round(pipeline_rate, 1),
                "ratio_vs_raw": round(pipeline_rate / raw_rate, 3),
                "ratio_vs_reference": round(pipeline_rate / reference_rate, 3),
                "latency_ms": latency,
                "resources": resources,
            }
            print(json.dumps(result))
        finally:
            stack.stop_all()
            stack.delete_vhost()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
