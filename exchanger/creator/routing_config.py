"""Which class handles which queue: ``QUEUE_HANDLERS``, ``SENT_QUEUES_MAPPING``, ``TRACKER_HANDLERS``.

The seeds' routing table, with the package's module paths as defaults. ``CREATOR_QUEUE_HANDLERS``,
``CREATOR_SENT_QUEUES_MAPPING`` and ``CREATOR_TRACKER_HANDLERS`` (JSON) add entries or replace
entries of the same queue, so a company plugs in its own consumer without editing this file::

    CREATOR_QUEUE_HANDLERS={"crm.queue": {"module": "acme.crm.handler", "handler_class": "CrmTaskHandler"}}
    CREATOR_SENT_QUEUES_MAPPING={"crm.queue": "crm.sent.queue"}
    CREATOR_TRACKER_HANDLERS={"crm.sent.queue": {"module": "acme.crm.tracker", "tracker_class": "CrmTracker"}}

(the queues of a new system also need its topics in ``ROUTING_FILE`` so that they are declared).
"""

from __future__ import annotations

from dataclasses import dataclass

from exchanger.amqp.topology import sent_queue, system_queue
from exchanger.creator.settings import CreatorSettings, HandlerSpec, TrackerSpec

_TRACKED_SYSTEMS = {  # system → (package, handler class, tracker class)
    "bitrix24": ("exchanger.consumers.bitrix24", "Bitrix24TaskHandler", "Bitrix24Tracker"),
    "openproject": ("exchanger.consumers.openproject", "OpenProjectTaskHandler", "OpenProjectTracker"),
    "1c": ("exchanger.consumers.onec", "OneCTaskHandler", "OneCTracker"),
}

QUEUE_HANDLERS: dict[str, HandlerSpec] = {
    **{system_queue(system): HandlerSpec(module=f"{package}.handler", handler_class=handler)
       for system, (package, handler, _) in _TRACKED_SYSTEMS.items()},
    system_queue("python"): HandlerSpec(module="exchanger.consumers.python.handler", handler_class="PythonTaskHandler"),
    system_queue("default"): HandlerSpec(module="exchanger.consumers.default.handler",
                                         handler_class="DefaultTaskHandler"),
}

SENT_QUEUES_MAPPING: dict[str, str] = {system_queue(system): sent_queue(system) for system in _TRACKED_SYSTEMS}

TRACKER_HANDLERS: dict[str, TrackerSpec] = {
    sent_queue(system): TrackerSpec(module=f"{package}.tracker", tracker_class=tracker)
    for system, (package, _, tracker) in _TRACKED_SYSTEMS.items()
}


@dataclass(frozen=True)
class CreatorRouting:
    queue_handlers: dict[str, HandlerSpec]
    sent_queues: dict[str, str]
    tracker_handlers: dict[str, TrackerSpec]

    @classmethod
    def from_settings(cls, settings: CreatorSettings) -> CreatorRouting:
        """The defaults with the settings' entries laid over them."""
        return cls(
            queue_handlers={**QUEUE_HANDLERS, **settings.queue_handlers},
            sent_queues={**SENT_QUEUES_MAPPING, **settings.sent_queues_mapping},
            tracker_handlers={**TRACKER_HANDLERS, **settings.tracker_handlers},
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
