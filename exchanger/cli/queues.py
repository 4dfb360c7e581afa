"""``exchanger queues [NAME] [--peek N]``: depth, unacked and consumers of each queue; a peek at messages.

The listing comes from the management API (``RABBITMQ_MANAGEMENT_URL``), a local ``rabbitmqctl``, or
passive declares of the topology's queues (then the delay queues are not shown). A peek leaves every
message where it was (see :mod:`exchanger.amqp.inspect`).
"""

from __future__ import annotations

from typing import Any

from exchanger.cli.context import EXIT_OK, EXIT_RED, Cli, Context, human_age

QUEUE_COLUMNS = [("name", "QUEUE"), ("ready", "READY"), ("unacked", "UNACKED"), ("consumers", "CONSUMERS")]
PEEK_COLUMNS = [("task_id", "TASK"), ("age", "AGE"), ("schema", "SCHEMA"), ("redelivered", "REDELIVERED"),
                ("body", "BODY")]


def register(cli: Cli, subparsers: Any) -> None:
    parser = cli.leaf(subparsers, "queues", "depths and consumers of the queues; --peek N shows messages",
                      queues, description=__doc__)
    parser.add_argument("name", nargs="?", help="one queue (with --peek: the queue to look into)")
    parser.add_argument("--peek", type=int, default=0, metavar="N", help="show the first N messages of NAME")


def queues(context: Context) -> int:
    from exchanger.amqp.inspect import list_queues, passive, peek

    args = context.args
    if args.peek:
        if not args.name:
            print("exchanger: --peek needs a queue NAME")
            return EXIT_RED
        messages = peek(context.rabbit, [args.name], args.peek)
        rows = [{"task_id": m.task_id(), "age": human_age(m.age_s), "age_s": m.age_s,
                 "schema": m.headers.get("x-exchanger-schema"), "redelivered": m.redelivered,
                 "correlation_id": m.correlation_id, "message_id": m.message_id, "headers": m.headers,
                 "body": m.body.decode("utf-8", "replace")} for m in messages]
        context.emit(rows, PEEK_COLUMNS, empty=f"{args.name}: no ready messages")
        return EXIT_OK
    if args.name:
        found = passive(context.rabbit, [args.name])
        listing_rows, source, note = found, "passive", ""
    else:
        listing = list_queues(context.rabbit, context.topology)
        listing_rows, source, note = sorted(listing.queues, key=lambda q: q.name), listing.source, listing.note
    rows = [{"name": q.name, "ready": q.ready if q.exists else "missing", "unacked": q.unacked,
             "consumers": q.consumers} for q in listing_rows]
    context.emit(rows, QUEUE_COLUMNS, extra={"vhost": context.rabbit.virtual_host, "source": source, "note": note})
    if not context.json:
        print(f"\nvhost {context.rabbit.virtual_host!r}, figures from {source}" + (f"; {note}" if note else ""))
    return EXIT_OK if all(q.exists for q in listing_rows) else EXIT_RED
