"""Which class handles which queue: ``QUEUE_HANDLERS``, ``SENT_QUEUES_MAPPING``, ``TRACKER_HANDLERS``.

The task-creator's routing table. Its defaults are derived from the registered systems
(:mod:`exchanger.systems`): ``<system>.queue`` → the handler, ``<system>.sent.queue`` → the tracker of
a system that has one. ``CREATOR_QUEUE_HANDLERS``, ``CREATOR_SENT_QUEUES_MAPPING`` and
``CREATOR_TRACKER_HANDLERS`` (JSON) add entries or replace entries of the same queue, so a company
can also plug in a consumer without declaring a system::

    CREATOR_QUEUE_HANDLERS={"crm.queue": {"module": "acme.crm.handler", "handler_class": "CrmTaskHandler"}}
    CREATOR_SENT_QUEUES_MAPPING={"crm.queue": "crm.sent.queue"}
    CREATOR_TRACKER_HANDLERS={"crm.sent.queue": {"module": "acme.crm.tracker", "tracker_class": "CrmTracker"}}

(the queues of such a consumer also need its topics in ``ROUTING_FILE`` so that they are declared).
"""

from __future__ import annotations

from dataclasses import dataclass

from exchanger.amqp.topology import sent_queue, system_queue
from exchanger.creator.settings import CreatorSettings, HandlerSpec, TrackerSpec
from exchanger.systems import registered_systems, split


def queue_handlers() -> dict[str, HandlerSpec]:
    """``<system>.queue`` → its handler class, for every registered system."""
    handlers = {}
    for name, spec in registered_systems().items():
        module, cls = split(spec.handler)
        handlers[system_queue(name)] = HandlerSpec(module=module, handler_class=cls)
    return handlers


def sent_queues_mapping() -> dict[str, str]:
    """``<system>.queue`` → ``<system>.sent.queue``, for every system with a tracker."""
    return {system_queue(name): sent_queue(name) for name, spec in registered_systems().items() if spec.tracker}


def tracker_handlers() -> dict[str, TrackerSpec]:
    """``<system>.sent.queue`` → its tracker class."""
    trackers = {}
    for name, spec in registered_systems().items():
        if spec.tracker:
            module, cls = split(spec.tracker)
            trackers[sent_queue(name)] = TrackerSpec(module=module, tracker_class=cls)
    return trackers


@dataclass(frozen=True)
class CreatorRouting:
    queue_handlers: dict[str, HandlerSpec]
    sent_queues: dict[str, str]
    tracker_handlers: dict[str, TrackerSpec]

    @classmethod
    def from_settings(cls, settings: CreatorSettings) -> CreatorRouting:
        """The defaults with the settings' entries laid over them."""
        return cls(
            queue_handlers={**queue_handlers(), **settings.queue_handlers},
            sent_queues={**sent_queues_mapping(), **settings.sent_queues_mapping},
            tracker_handlers={**tracker_handlers(), **settings.tracker_handlers},
        )

    @property
    def all_queues(self) -> list[str]:
        """Every queue this table knows, handler queues first."""
        return [*self.queue_handlers, *self.tracker_handlers]

    def system_of(self, queue: str) -> str:
        """``bitrix24`` for ``bitrix24.queue`` or ``bitrix24.sent.queue``."""
        for suffix in (".sent.queue", ".queue"):
            if queue.endswith(suffix):
                return queue[: -len(suffix)]
        return queue
