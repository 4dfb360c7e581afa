"""camunda-worker benchmark against the sandbox engine and the local broker: prints figures, asserts nothing.

1. throughput: N process instances are started first, then a worker drains them; fetch→publish tasks/s
   (confirmed; the long lock follows only for tasks still in flight after WORKER_LOCK_EXTEND_AFTER_S)
   is N over the time until the last message is in the queue;
2. latency: with the worker idle in its long poll, instances are started one at a time; the latency of
   each is from just before its start request to the moment a consumer receives its task message
   (p50, p99; target p50 ≤ 50 ms).

    .venv/bin/python bench/worker_bench.py [--tasks 1000] [--latency-samples 200] [--max-tasks 50]

Needs RabbitMQ on localhost:5672 with rabbitmqctl (a throw-away virtual host is created and deleted).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
import uuid

from loguru import logger

from exchanger.amqp.connection import connect
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.settings import RabbitMQSettings
from exchanger.worker.service import Worker
from exchanger.worker.settings import WorkerSettings
from exchanger_sandbox.camunda.server import start as start_engine

MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="bench">
  <bpmn:process id="bench" name="Bench" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:serviceTask id="work" name="Work" camunda:type="external" camunda:topic="bitrix_create_task">
      <bpmn:extensionElements>
        <camunda:properties><camunda:property name="responsible_id" value="1" /></camunda:properties>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


class Receiver:
    """Consumes bitrix24.queue on its own connection and notes when each process instance's task arrived."""

    def __init__(self, rabbit: RabbitMQSettings) -> None:
        self.rabbit = rabbit
        self.arrivals: dict[str, float] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def run(self) -> None:
        connection = connect(self.rabbit, name="bench-receiver", attempts=3)
        channel = connection.channel()

        def on_message(ch, method, properties, body) -> None:  # noqa: ANN001 - pika's callback signature
            self.arrivals[json.loads(body)["process_instance_id"]] = time.perf_counter()

        channel.basic_consume("bitrix24.queue", on_message, auto_ack=True)
        self.ready.set()
        while not self.stop.is_set():
            connection.process_data_events(time_limit=0.05)
        connection.close()

    def wait_for(self, count: int, timeout_s: float) -> float:
        deadline = time.perf_counter() + timeout_s
        while len(self.arrivals) < count and time.perf_counter() < deadline:
            time.sleep(0.001)
        return time.perf_counter()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--max-tasks", type=int, default=50, help="CAMUNDA_MAX_TASKS of the worker")
    args = parser.parse_args()
    logger.remove()
    logger.add(lambda m: print(m, end=""), level="WARNING")

    vhost = f"exchanger-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True,
                   capture_output=True)
    rabbit = RabbitMQSettings(virtual_host=vhost)
    server = start_engine()
    try:
        driver = CamundaClient(CamundaSettings(base_url=server.url, worker_id="bench-driver"))
        driver.http.request("POST", "/deployment/create", data={"deployment-name": "bench"},
                            files={"bench.bpmn": ("bench.bpmn", MODEL.encode(), "application/xml")})

        def start_instance() -> str:
            return str(driver.http.request("POST", "/process-definition/key/bench/start",
                                           json={"variables": {"n": {"value": 1, "type": "Integer"}}}).json()["id"])

        camunda = CamundaSettings(base_url=server.url, worker_id="bench", max_tasks=args.max_tasks,
                                  async_response_timeout_ms=10_000)
        worker = Worker(camunda=camunda, rabbit=rabbit, worker=WorkerSettings(health_port=0, shutdown_deadline_s=15))

        # 1. throughput: a backlog drained by one worker
        created = time.perf_counter()
        for _ in range(args.tasks):
            start_instance()
        creation_s = time.perf_counter() - created
        connection = connect(rabbit, name="bench-setup", attempts=3)
        worker.topology.declare(connection)
        connection.close()
        receiver = Receiver(rabbit)
        began = time.perf_counter()
        worker.start()
        finished = receiver.wait_for(args.tasks, timeout_s=300)
        drained = len(receiver.arrivals)
        elapsed = finished - began
        print(f"backlog of {args.tasks} tasks created in {creation_s:.2f}s ({args.tasks / creation_s:.0f}/s)")
        print(f"fetch→publish (confirmed): {drained} tasks in {elapsed:.2f}s = "
              f"{drained / elapsed:.0f} tasks/s (max_tasks {args.max_tasks})")

        # 2. latency: one instance at a time, the worker waiting in its long poll
        receiver.arrivals.clear()
        latencies = []
        for _ in range(args.latency_samples):
            time.sleep(0.02)
            sent = time.perf_counter()
            instance = start_instance()
            deadline = time.perf_counter() + 5
            while instance not in receiver.arrivals and time.perf_counter() < deadline:
                time.sleep(0.0005)
            if instance in receiver.arrivals:
                latencies.append((receiver.arrivals[instance] - sent) * 1000)
        print(f"creation→queued latency over {len(latencies)} tasks: p50 {statistics.median(latencies):.1f} ms, "
              f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms (target p50 ≤ 50 ms)")
        stats = worker.cache.stats()
        print(f"metadata cache: {stats.hits} hits, {stats.misses} misses")
        worker.stop()
        receiver.stop.set()
        receiver.thread.join(5)
    finally:
        server.stop()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
