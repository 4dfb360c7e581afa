"""``exchanger parking list|show|replay|purge``: the parking lot ``errors.camunda_tasks.queue``.

``replay`` republishes parked messages to the queue they came from (confirmed, then the parked copy is
acked); ``purge`` deletes them. Both need a selection (``--task``, ``--source`` or ``--all``) and ``--yes``.
"""

from __future__ import annotations

import argparse
from typing import Any

from exchanger.cli.context import EXIT_NOT_CONFIRMED, EXIT_OK, Cli, Context, UsageError

COLUMNS = [("parked_at", "PARKED AT"), ("source_queue", "SOURCE"), ("task_id", "TASK"), ("attempts", "ATTEMPTS"),
           ("error_type", "ERROR"), ("reason", "REASON")]
DEFAULT_LIMIT = 1000  # parked messages looked at by one command
PAST = {"replay": "replayed", "purge": "purged"}


def register(cli: Cli, subparsers: Any) -> None:
    group = subparsers.add_parser("parking", help="the parking lot: list, show, replay, purge",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = cli.leaf(sub, "list", "one line per parked message", list_parked)
    listing.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    show = cli.leaf(sub, "show", "parked records with their original bodies (JSON)", show_parked)
    show.add_argument("--task", help="only this external task id")
    show.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    for name, handler, text in (("replay", replay_parked, "republish to the source queue"),
                                ("purge", purge_parked, "delete for good")):
        parser = cli.leaf(sub, name, f"{text} (needs --task, --source or --all, and --yes)", handler)
        parser.add_argument("--task", help="only this external task id")
        parser.add_argument("--source", help="only messages parked from this queue")
        parser.add_argument("--all", action="store_true", help="every parked message")
        parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
        parser.add_argument("--yes", action="store_true", help="do it (without: say what would be done)")


def _records(context: Context, limit: int) -> list[Any]:
    from exchanger.amqp.parking import peek

    return peek(context.rabbit, context.topology, limit)


def list_parked(context: Context) -> int:
    rows = [r.model_dump(mode="json", exclude={"body_text", "body_base64", "headers"})
            for r in _records(context, context.args.limit)]
    context.emit(rows, COLUMNS, empty="the parking lot is empty")
    return EXIT_OK


def show_parked(context: Context) -> int:
    records = [r for r in _records(context, context.args.limit)
               if not context.args.task or r.task_id == context.args.task]
    context.emit_json([r.model_dump(mode="json") for r in records])
    return EXIT_OK


def _selector(context: Context, verb: str) -> Any:
    args = context.args
    if not (args.task or args.source or args.all):
        raise UsageError(f"parking {verb} needs --task ID, --source QUEUE or --all")
    return lambda r: (not args.task or r.task_id == args.task) and (not args.source or r.source_queue == args.source)


def _act(context: Context, verb: str, action: Any) -> int:
    from loguru import logger

    args = context.args
    select = _selector(context, verb)
    chosen = [r for r in _records(context, args.limit) if select(r)]
    if not args.yes:
        if context.json:
            context.emit_json({"action": verb, "confirmed": False, "tasks": [r.task_id for r in chosen]})
        else:
            print(f"would {verb} {len(chosen)} parked message(s):")
            for r in chosen:
                print(f"  {r.task_id or '-'}  from {r.source_queue}: {r.reason}")
            print("nothing done: add --yes to do it")
        return EXIT_NOT_CONFIRMED if chosen else EXIT_OK
    done = action(context.rabbit, context.topology, limit=args.limit, select=select)
    for record in done:
        logger.warning("parking {}: task {} from {} by operator command", verb, record.task_id, record.source_queue)
    if context.json:
        context.emit_json({"action": verb, "confirmed": True, "tasks": [r.task_id for r in done]})
    else:
        print(f"{PAST[verb]} {len(done)} message(s)")
        for record in done:
            print(f"  {record.task_id or '-'} → {record.source_queue}")
    return EXIT_OK


def replay_parked(context: Context) -> int:
    from exchanger.amqp.parking import replay

    return _act(context, "replay", replay)


def purge_parked(context: Context) -> int:
    from exchanger.amqp.parking import purge

    return _act(context, "purge", purge)
