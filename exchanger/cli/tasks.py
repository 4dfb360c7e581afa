"""``exchanger tasks list|show|unlock|retries|incidents``: Camunda external tasks of this tenant only.

``unlock`` gives locked tasks back to Camunda (the worker fetches and publishes them again; the
handlers' lookup by external task id keeps that from duplicating a work item). It needs task ids or a
filter, prints the plan, and acts only with ``--yes``; it never touches another worker's or tenant's task.
"""

from __future__ import annotations

import argparse
from typing import Any

from exchanger.cli.context import EXIT_NOT_CONFIRMED, EXIT_OK, Cli, Context, UsageError, parse_duration

TASK_COLUMNS = [("id", "TASK"), ("topicName", "TOPIC"), ("processDefinitionKey", "PROCESS"),
                ("processInstanceId", "INSTANCE"), ("workerId", "WORKER"), ("lock_age", "LOCKED FOR"),
                ("retries", "RETRIES")]


def register(cli: Cli, subparsers: Any) -> None:
    group = subparsers.add_parser("tasks", help="external tasks of this environment's tenant",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(title="actions", metavar="ACTION", required=True)

    listing = cli.leaf(sub, "list", "tasks locked by this environment's worker (--all: every task of the tenant)",
                       list_tasks)
    listing.add_argument("--all", action="store_true", help="every task of the tenant, locked or not, any worker")
    _filters(listing)

    show = cli.leaf(sub, "show", "one task, all fields", show_task)
    show.add_argument("task_id")

    unlock = cli.leaf(sub, "unlock", "give locked tasks back to Camunda (needs ids or a filter, and --yes)",
                      unlock_tasks)
    unlock.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    _filters(unlock)
    unlock.add_argument("--yes", action="store_true", help="do it (without: say what would be done)")

    retries = cli.leaf(sub, "retries", "set a task's retries (> 0 resolves its incident; 0 raises one)", set_retries)
    retries.add_argument("task_id")
    retries.add_argument("retries", type=int)

    cli.leaf(sub, "incidents", "open incidents of this tenant", incidents)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", help="only this topic")
    parser.add_argument("--older-than", type=parse_duration, metavar="DURATION",
                        help="only tasks locked at least this long (90s, 15m, 2h, 1d)")


def lock_age_s(context: Context, task: dict[str, Any]) -> float | None:
    """How long ago the task was locked: the lock duration minus what is left of it (Camunda keeps no lock time)."""
    from exchanger.cli.context import camunda_time, now

    expires = camunda_time(task.get("lockExpirationTime"))
    if expires is None:
        return None
    left_ms = (expires - now()).total_seconds() * 1000
    settings = context.camunda_settings
    full_ms = settings.lock_duration if left_ms > settings.fetch_lock_ms else settings.fetch_lock_ms
    return max(0.0, (full_ms - left_ms) / 1000)


def locked_by_worker(context: Context, topic: str | None = None, older_than_s: float | None = None
                     ) -> list[dict[str, Any]]:
    """Tasks this environment's worker holds locked, with ``lock_age_s``, oldest lock first."""
    filters: dict[str, Any] = {"workerId": context.camunda_settings.worker_id, "locked": True}
    if topic:
        filters["topicName"] = topic
    tasks = []
    for task in context.tasks(**filters):
        age = lock_age_s(context, task)
        if older_than_s is not None and (age is None or age < older_than_s):
            continue
        tasks.append({**task, "lock_age_s": age})
    return sorted(tasks, key=lambda t: -(t["lock_age_s"] or 0))


def _rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from exchanger.cli.context import human_age

    return [{**task, "lock_age": human_age(task.get("lock_age_s"))} for task in tasks]


def list_tasks(context: Context) -> int:
    args = context.args
    if args.all:
        filters = {"topicName": args.topic} if args.topic else {}
        tasks = [{**t, "lock_age_s": lock_age_s(context, t)} for t in context.tasks(**filters)]
        if args.older_than is not None:
            tasks = [t for t in tasks if t["lock_age_s"] is not None and t["lock_age_s"] >= args.older_than]
    else:
        tasks = locked_by_worker(context, args.topic, args.older_than)
    context.emit(_rows(tasks), TASK_COLUMNS, empty="no tasks")
    return EXIT_OK


def show_task(context: Context) -> int:
    task = context.task(context.args.task_id)
    context.emit_json({**task, "lock_age_s": lock_age_s(context, task)})
    return EXIT_OK


def unlock_tasks(context: Context) -> int:
    args = context.args
    if not args.task_ids and not args.topic and args.older_than is None:
        raise UsageError("tasks unlock needs task ids or a filter (--topic, --older-than); "
                         "`--older-than 0` selects every task this worker holds")
    worker_id = context.camunda_settings.worker_id
    if args.task_ids:
        tasks = [context.task(task_id) for task_id in args.task_ids]
        others = [t["id"] for t in tasks if t.get("workerId") != worker_id]
        if others:
            raise UsageError(f"not locked by this environment's worker {worker_id!r}: {', '.join(others)}")
        tasks = [t for t in tasks if (args.topic is None or t["topicName"] == args.topic)]
    else:
        tasks = locked_by_worker(context, args.topic, args.older_than)
    return unlock(context, tasks, args.yes)


def unlock(context: Context, tasks: list[dict[str, Any]], confirmed: bool, why: str = "unlock") -> int:
    """Say what will be unlocked; unlock only when ``confirmed`` (shared with ``recover``)."""
    from loguru import logger

    verb = "unlocking" if confirmed else "would unlock"
    if context.json:
        context.emit_json({"action": why, "confirmed": confirmed, "tasks": [t["id"] for t in tasks]})
    else:
        print(f"{verb} {len(tasks)} task(s) of worker {context.camunda_settings.worker_id!r}:")
        for task in tasks:
            print(f"  {task['id']}  {task['topicName']}  instance {task['processInstanceId']}")
    if not confirmed:
        if tasks:
            context.say("nothing done: add --yes to do it")
            return EXIT_NOT_CONFIRMED
        return EXIT_OK
    for task in tasks:
        context.camunda.unlock(task["id"])
        logger.warning("{}: unlocked external task {} ({}, instance {}) by operator command", why, task["id"],
                       task["topicName"], task["processInstanceId"])
    context.say(f"unlocked {len(tasks)} task(s); the worker fetches and publishes them again")
    return EXIT_OK


def set_retries(context: Context) -> int:
    from loguru import logger

    args = context.args
    if args.retries < 0:
        raise UsageError("retries must be 0 or more")
    context.task(args.task_id)  # this tenant's, or refused
    context.camunda.set_retries(args.task_id, args.retries)
    logger.warning("retries of external task {} set to {} by operator command", args.task_id, args.retries)
    context.say(f"retries of {args.task_id} set to {args.retries}")
    return EXIT_OK


INCIDENT_COLUMNS = [("id", "INCIDENT"), ("incidentTimestamp", "SINCE"), ("activityId", "ACTIVITY"),
                    ("processInstanceId", "INSTANCE"), ("configuration", "TASK"), ("incidentMessage", "MESSAGE")]


def open_incidents(context: Context) -> list[dict[str, Any]]:
    rows = context.camunda.http.request("GET", "/incident", params=context.tenant_params()).json()
    return [row for row in rows if context.in_tenant(row)]


def incidents(context: Context) -> int:
    context.emit(open_incidents(context), INCIDENT_COLUMNS, empty="no open incidents")
    return EXIT_OK
