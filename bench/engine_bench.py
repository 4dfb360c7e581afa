"""Raw capacity of the sandbox Camunda engine through HTTP (a benchmark: prints figures, asserts nothing).

Starts ``python -m exchanger_sandbox camunda`` as a subprocess (request logging off, so the figure is
the engine's), deploys a one-task process, then measures with pooled ``requests.Session`` clients,
each in its own process (``--clients``; a Python client spends about as much CPU per call as the
engine does, so one client process cannot saturate the engine):

- started instances per second (``POST /process-definition/key/{key}/start``);
- fetchAndLock + complete tasks per second (``maxTasks`` per fetch, one complete per task).

Usage: ``python bench/engine_bench.py [--instances 4000] [--clients 2] [--batch 50] [--db :memory:|file]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

PROCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="bench">
  <bpmn:process id="bench" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="bench"/>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def session() -> requests.Session:
    pooled = requests.Session()
    pooled.trust_env = False  # no proxy/netrc lookups from the environment on every call
    return pooled


def start_server(db: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "exchanger_sandbox", "camunda", "--port", "0", "--db", db, "--log-level", "INFO"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    settings = json.loads(process.stdout.readline())
    return process, settings["CAMUNDA_BASE_URL"]


def start_instances(url: str, count: int, offset: int) -> None:
    client = session()
    for index in range(offset, offset + count):
        response = client.post(f"{url}/process-definition/key/bench/start",
                               json={"businessKey": f"b{index}", "variables": {"n": {"value": index}}})
        response.raise_for_status()


def work_tasks(url: str, worker: str, batch: int) -> int:
    """Fetch and complete until nothing is left; returns how many tasks this client completed."""
    client = session()
    fetch = {"workerId": worker, "maxTasks": batch, "topics": [{"topicName": "bench", "lockDuration": 60_000}]}
    done = 0
    while True:
        tasks = client.post(f"{url}/external-task/fetchAndLock", json=fetch).json()
        if not tasks:
            return done
        for task in tasks:
            response = client.post(f"{url}/external-task/{task['id']}/complete",
                                   json={"workerId": worker, "variables": {"ok": {"value": True}}})
            if response.status_code != 204:
                raise RuntimeError(response.text)
        done += len(tasks)


def measure(url: str, instances: int, clients: int, batch: int) -> None:
    session().post(f"{url}/deployment/create", files={"bench.bpmn": ("bench.bpmn", PROCESS)}).raise_for_status()
    share = instances // clients
    with multiprocessing.Pool(clients) as pool:
        started = time.perf_counter()
        pool.starmap(start_instances, [(url, share, n * share) for n in range(clients)])
        elapsed = time.perf_counter() - started
        total = share * clients
        print(f"started instances:      {total / elapsed:7.0f} /s      ({total} in {elapsed:.2f} s)")
        started = time.perf_counter()
        done = sum(pool.starmap(work_tasks, [(url, f"bench-{n}", batch) for n in range(clients)]))
        elapsed = time.perf_counter() - started
        print(f"fetchAndLock+complete:  {done / elapsed:7.0f} tasks/s ({done} in {elapsed:.2f} s, maxTasks={batch})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=2, help="client processes, one pooled session each")
    parser.add_argument("--batch", type=int, default=50, help="maxTasks per fetchAndLock")
    parser.add_argument("--db", default=":memory:", help="':memory:' or 'file' (a SQLite file in a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "bench.db") if args.db == "file" else args.db
        process, url = start_server(db)
        try:
            print(f"sandbox engine at {url}, db {args.db}, {args.clients} client process(es)")
            measure(url, args.instances, args.clients, args.batch)
        finally:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
