"""Camunda external tasks of this environment: ``EXCHANGER_ENV=dev python tools/tasks.py list|show|unlock|retries``.

    list [--all]             tasks locked by this worker id (--all: every task of the tenant)
    show ID                  one task
    unlock ID                give a task back (it is fetched and published again)
    retries ID N             set retries (N > 0 resolves an incident)
"""

from __future__ import annotations

import argparse
import json

from env_loader import Environment
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.runtime import run
from exchanger.settings import load


def main() -> int:
    parser = argparse.ArgumentParser(description="external tasks of this environment's worker")
    parser.add_argument("command", choices=("list", "show", "unlock", "retries"))
    parser.add_argument("task_id", nargs="?")
    parser.add_argument("retries", nargs="?", type=int)
    parser.add_argument("--all", action="store_true", help="list every task of the tenant, locked or not")
    args = parser.parse_args()
    if args.command != "list" and not args.task_id:
        parser.error(f"{args.command} needs a task id")
    if args.command == "retries" and args.retries is None:
        parser.error("retries needs a number")

    def command(environment: Environment) -> int:
        settings = load(CamundaSettings)
        client = CamundaClient(settings)
        if args.command == "list":
            filters = {} if args.all else {"workerId": settings.worker_id, "locked": True}
            if settings.tenant_id:
                filters["tenantIdIn"] = settings.tenant_id
            for task in client.list_tasks(**filters):
                print(f"{task['id']} {task['topicName']} instance={task['processInstanceId']} "
                      f"worker={task['workerId']} lock_until={task['lockExpirationTime']} retries={task['retries']}")
        elif args.command == "show":
            print(json.dumps(client.get_task(args.task_id), indent=2, ensure_ascii=False))
        elif args.command == "unlock":
            client.unlock(args.task_id)
            print(f"unlocked {args.task_id}")
        else:
            client.set_retries(args.task_id, args.retries)
            print(f"retries of {args.task_id} set to {args.retries}")
        return 0

    return run("tasks", command)


if __name__ == "__main__":
    raise SystemExit(main())
