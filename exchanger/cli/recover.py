"""``exchanger recover [--older-than DURATION] [--yes]``: find genuinely lost tasks and hand them back.

A task is lost when this environment's worker holds it with the long (in-flight) lock and no message
about it exists anywhere: not in a system queue, not as a tracking record (sent queue or delay queue),
not as a response, not in the parking lot. Every message is looked at twice, a moment apart, because a
message moving between queues (a delayed re-check being dead-lettered, a consumer acking and
republishing) can be missed by one pass; a task must be absent from both and still locked the same way.

Handing back is an unlock: the worker fetches and publishes the task again, and the handler looks the
work item up by the Camunda task id before creating anything, so a task that was not lost after all
(a message a consumer held unacked for the whole check) does not get a second work item.
Dry run by default; ``--yes`` acts.
"""

from __future__ import annotations

import time
from typing import Any

from exchanger.cli.context import EXIT_OK, EXIT_RED, EXIT_WARN, Cli, Context, human_age, parse_duration

DEFAULT_OLDER_THAN = "30m"  # a task published less than this ago may still be in a consumer's hands
SECOND_LOOK_S = 2.0  # pause between the two looks at the broker


def register(cli: Cli, subparsers: Any) -> None:
    parser = cli.leaf(subparsers, "recover", "find tasks locked by this environment whose message is gone; "
                      "hand them back (dry run unless --yes)", recover, description=__doc__)
    parser.add_argument("--older-than", type=parse_duration, default=parse_duration(DEFAULT_OLDER_THAN),
                        metavar="DURATION", help=f"only tasks locked at least this long (default {DEFAULT_OLDER_THAN}; "
                                                 "0 = any age)")
    parser.add_argument("--yes", action="store_true", help="unlock the lost tasks (without: only list them)")


def task_ids_in_broker(context: Context, queues: list[str]) -> set[str]:
    from exchanger.amqp.inspect import peek

    return {task_id for message in peek(context.rabbit, queues) if (task_id := message.task_id())}


def find_lost(context: Context, older_than_s: float, second_look_s: float = SECOND_LOOK_S
              ) -> tuple[list[dict[str, Any]], str]:
    """(lost tasks, note); the note is non-empty when the broker could not be searched completely."""
    from exchanger.amqp.inspect import list_queues
    from exchanger.cli.tasks import locked_by_worker

    settings = context.camunda_settings
    # a lock no longer than fetchAndLock's is a task being published right now: not ours to judge
    candidates = [t for t in locked_by_worker(context, older_than_s=older_than_s)
                  if _lock_left_ms(t) > settings.fetch_lock_ms]
    if not candidates:
        return [], ""
    listing = list_queues(context.rabbit, context.topology)
    if not listing.complete:
        return [], f"the broker could not be searched completely ({listing.note})"
    queues = [queue.name for queue in listing.queues]
    missing = {t["id"] for t in candidates} - task_ids_in_broker(context, queues)
    if missing:
        time.sleep(second_look_s)
        missing -= task_ids_in_broker(context, queues)
    lost = []
    for task in candidates:
        if task["id"] not in missing:
            continue
        current = context.camunda.get_task(task["id"])  # still held the same way? (not completed meanwhile)
        if current.get("workerId") == task["workerId"] and \
                current.get("lockExpirationTime") == task["lockExpirationTime"]:
            lost.append(task)
    return lost, ""


def _lock_left_ms(task: dict[str, Any]) -> float:
    from exchanger.cli.context import camunda_time, now

    expires = camunda_time(task.get("lockExpirationTime"))
    return 0.0 if expires is None else (expires - now()).total_seconds() * 1000


def recover(context: Context) -> int:
    from exchanger.cli.tasks import unlock

    args = context.args
    lost, note = find_lost(context, args.older_than)
    if note:
        print(f"exchanger: recover cannot decide: {note}")
        return EXIT_RED
    if not lost:
        if context.json:
            context.emit_json({"action": "recover", "confirmed": args.yes, "tasks": []})
        else:
            age = f"for at least {human_age(args.older_than)}" if args.older_than else "(any age)"
            print(f"no lost tasks: every task locked by {context.camunda_settings.worker_id!r} {age} has a message "
                  "in a queue, a tracking record, a response or the parking lot")
        return EXIT_OK
    code = unlock(context, lost, args.yes, why="recover")
    return EXIT_WARN if not args.yes and code != EXIT_OK else code
