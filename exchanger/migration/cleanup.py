"""Removing what of the old topology would interfere with Exchanger.

``python-services.queue`` keeps its ``python.*`` binding and would receive a copy of every new
``python.<topic>`` task; ``python-services.sent.queue`` and ``bitrix24.dead_letter.queue`` nobody reads
any more. They are deleted only when empty (``if-empty``), so a message that was not migrated is
never deleted with its queue. The old ``<system>.*`` bindings are removed (Exchanger binds
``<system>.#``), as is the error queue's binding to the tasks exchange.
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingConnection
from pika.exceptions import ChannelClosedByBroker

from exchanger.migration import old_tool


def remove_old_topology(connection: BlockingConnection, *, keep_queues: bool = False) -> list[str]:
    """Unbind the old bindings and delete the empty old-only queues; return what was done or kept."""
    notes = []
    for queue, key in old_tool.OLD_BINDINGS:
        if _on_channel(connection, lambda ch, q=queue, k=key: ch.queue_unbind(q, old_tool.TASKS_EXCHANGE, k)):
            notes.append(f"unbound {queue} ({key})")
    for queue in () if keep_queues else old_tool.OLD_ONLY_QUEUES:
        try:
            channel = connection.channel()
            channel.queue_declare(queue, passive=True)
            channel.queue_delete(queue, if_empty=True)
            channel.close()
            notes.append(f"deleted {queue}")
        except ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                notes.append(f"kept {queue}: {exc.reply_text}")
    return notes


def _on_channel(connection: BlockingConnection, operation: object) -> bool:
    """Run ``operation(channel)`` on a channel of its own; False if the broker refused (e.g. no such queue)."""
    channel = connection.channel()
    try:
        operation(channel)  # type: ignore[operator]
    except ChannelClosedByBroker:
        return False
    channel.close()
    return True
