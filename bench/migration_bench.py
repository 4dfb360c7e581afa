"""How long adopting the old worker's locked tasks takes against the fake portal's real rate limit.

A benchmark, not a test: it prints figures and never fails on a number. The state: ``--tasks`` (1,000)
process instances whose Bitrix24 task the old tool created and whose Camunda task ``universal-worker``
holds for a year, with no message anywhere (stranded: the worst case, every one must be refetched).
The fake portal meters the webhook as Bitrix24 cloud does (2 requests/s, burst 50); the old tasks are
made through a person's web-UI webhook, which is not metered, so that the set-up does not take 8 minutes.

Exchanger's daemons run; ``exchanger migrate from-exchanger-py --yes`` releases the tasks in batches
at ``--adopt-rate`` tasks/s; each is refetched, the Bitrix24 handler finds the existing task by
``UF_CAMUNDA_ID_EXTERNAL_TASK`` and tracks it. Measured: the migration's own run time, and the time
until every task is adopted (locked by the new worker id, ``bitrix24.queue`` empty with nothing unacked),
plus new Bitrix24 tasks (must be 0) and portal refusals. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from pydantic import SecretStr

from exchanger.amqp.connection import connect
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger.settings import RabbitMQSettings
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger_sandbox import exchanger_py as old
from exchanger_sandbox.demo.people import person_webhook
from exchanger_sandbox.demo.stack import ROOT, Stack

PERSON = 2
DAEMONS = {
    "CAMUNDA_WORKER_ID": "exchanger", "CAMUNDA_MAX_TASKS": "50", "CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS": "5000",
    "WORKER_HEALTH_PORT": "0", "CREATOR_HEALTH_PORT": "0", "CREATOR_QUEUES": "bitrix24.queue,bitrix24.sent.queue",
    "BITRIX_ANSWER_OK_XML_ID": "ДА", "BITRIX_ANSWER_NO_XML_ID": "НЕТ", "BITRIX_CHECK_INTERVAL_S": "3600",
    "BITRIX_COMPLETE_ON_AWAITING_CONTROL": "true", "CREATOR_MAX_TRACKING_AGE_S": "0", "LOG_LEVEL": "INFO",
}  # fmt: skip


def build(stack: Stack, count: int) -> None:
    settings = stack.settings
    camunda = CamundaClient(CamundaSettings(base_url=settings["CAMUNDA_BASE_URL"], worker_id=old.WORKER_ID))
    admin = Bitrix24Client(Bitrix24Settings(webhook_url=SecretStr(settings["BITRIX_WEBHOOK_URL"])))
    person = Bitrix24Client(Bitrix24Settings(webhook_url=SecretStr(person_webhook(settings, PERSON)),
                                             rate_per_s=1000, burst=1000))
    old.set_up_old_portal(admin)
    ops = EngineOps(camunda)
    ops.deploy(old.NOTICE_BPMN, name="notice.bpmn")
    for _ in range(count):
        ops.start(old.NOTICE_KEY, {"startedBy": "3"})
    connection = connect(RabbitMQSettings(virtual_host=stack.vhost), name="old-tool", attempts=3)
    old.declare_old_topology(connection.channel())
    tool = old.OldTool(camunda, person, connection.channel())
    fetched = 0
    while fetched < count:
        messages = tool.fetch("bitrix_create_task", min(200, count - fetched), activity_names=old.ACTIVITY_NAMES)
        for message in messages:
            tool.create_bitrix_task(message)
        fetched += len(messages)
    connection.close()


def queue_total(vhost: str, queue: str) -> int:
    """Ready plus unacked, from rabbitmqctl (the AMQP passive declare sees only ready)."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages"], capture_output=True,
                         text=True, timeout=60).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--adopt-rate", type=float, default=2.0, help="tasks released per second")
    parser.add_argument("--batch-size", type=int, default=20)
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="exchanger-migration-bench-")))
    stack.create_vhost()
    try:
        stack.start_sandbox("camunda")
        stack.start_sandbox("bitrix24", "--ui-user", str(PERSON), "--no-user-fields",
                            "--external-id-field", "UF_CAMUNDA_ID_EXTERNAL_TASK")
        stack.write_env_file(DAEMONS)
        build(stack, args.tasks)
        origin = stack.settings["BITRIX_WEBHOOK_URL"].split("/rest/")[0]
        before = requests.get(f"{origin}/_admin/stats", timeout=10).json()
        stack.start_daemon("camunda-worker")
        stack.start_daemon("task-creator")
        time.sleep(3)
        started = time.monotonic()
        migration = subprocess.run(
            [sys.executable, "-m", "exchanger.cli.main", "migrate", "from-exchanger-py", "--yes",
             "--adopt-rate", str(args.adopt_rate), "--batch-size", str(args.batch_size),
             "--old-lock-file", str(stack.workdir / "old.lock")],
            cwd=ROOT, env={**stack._base_env(), "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(stack.workdir)},
            capture_output=True, text=True, timeout=24 * 3600)
        migration_s = time.monotonic() - started
        ops = EngineOps(CamundaClient(CamundaSettings(base_url=stack.settings["CAMUNDA_BASE_URL"])))
        while True:
            adopted = ops.count("/external-task", workerId="exchanger", locked="true")
            if adopted >= args.tasks and queue_total(stack.vhost, "bitrix24.queue") == 0:
                break
            time.sleep(2)
        adopted_s = time.monotonic() - started
        after = requests.get(f"{origin}/_admin/stats", timeout=10).json()
        figures = {
            "tasks": args.tasks, "adopt_rate_per_s": args.adopt_rate, "portal_rate_per_s": 2.0, "portal_burst": 50,
            "migration_exit": migration.returncode, "migration_s": round(migration_s, 1),
            "all_adopted_s": round(adopted_s, 1), "tasks_per_s": round(args.tasks / adopted_s, 2),
            "new_bitrix24_tasks": after["created"] - before["created"], "duplicates": len(after["duplicates"]),
            "portal_requests": after["requests"] - before["requests"], "portal_refusals": after["rejected"],
        }  # fmt: skip
        print(migration.stdout.strip().splitlines()[-1] if migration.stdout.strip() else migration.stderr[-500:])
        print(f"adopting {args.tasks} locked tasks at {args.adopt_rate:g}/s against a 2 req/s portal: "
              f"{adopted_s:.0f} s until all are tracked; new Bitrix24 tasks {figures['new_bitrix24_tasks']}")
        print(json.dumps(figures))
        return 0
    finally:
        stack.stop_all()
        stack.delete_vhost()


if __name__ == "__main__":
    sys.exit(main())
