"""Load and validate the handler and tracker classes named by the routing table, at start.

A queue listed in ``CREATOR_QUEUES`` must load: a missing module or class, a class that does not
implement the contract, or a constructor that fails stops the start with a :class:`ConfigError`
naming the queue, the module and the class. With ``CREATOR_QUEUES`` empty every known queue is
tried, and one whose module does not exist (a system not installed) or whose settings are missing
is skipped with a warning; a broken contract still stops the start.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import TypeVar

from loguru import logger

from exchanger.creator.base import BaseMessageHandler, BaseTracker, SystemContext
from exchanger.creator.routing_config import CreatorRouting
from exchanger.creator.settings import CreatorSettings
from exchanger.errors import ConfigError

C = TypeVar("C", BaseMessageHandler, BaseTracker)


class NotInstalled(ConfigError):
    """The module of a queue's class does not exist (the system's package is not there)."""


class NotConfigured(ConfigError):
    """The class loaded but its constructor refused its settings (e.g. a required variable is unset)."""


@dataclass
class LoadedHandler:
    queue: str
    system: str
    handler: BaseMessageHandler
    sent_queue: str | None


@dataclass
class LoadedTracker:
    queue: str  # the sent queue it consumes
    system: str
    tracker: BaseTracker
    target_queue: str  # where its responses go


@dataclass
class Components:
    handlers: dict[str, LoadedHandler] = field(default_factory=dict)
    trackers: dict[str, LoadedTracker] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # queue → why it is not served

    @property
    def queues(self) -> list[str]:
        return [*self.handlers, *self.trackers]

    @property
    def event_systems(self) -> list[str]:
        """Systems whose tracker takes item events (pushed or swept): each gets ``<system>.events.queue``."""
        return [t.system for t in self.trackers.values() if t.tracker.item_events]

    def cleanup(self) -> None:
        """Call every handler's and tracker's ``cleanup``; one failing does not stop the others."""
        components: list[BaseMessageHandler | BaseTracker] = [*(h.handler for h in self.handlers.values()),
                                                              *(t.tracker for t in self.trackers.values())]
        for component in components:
            try:
                component.cleanup()
            except Exception:  # noqa: BLE001 - shutting down: log it and clean up the rest
                logger.exception("cleanup of {} failed", type(component).__name__)


def load_class(module_name: str, class_name: str, base: type[C], what: str) -> type[C]:
    """Import ``module_name`` and return its ``class_name``, checked against ``base``."""
    where = f"{what}: {module_name}:{class_name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise NotInstalled(f"{where} cannot be loaded: module {module_name} does not exist") from None
        raise ConfigError(f"{where} cannot be loaded: importing it failed: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any import-time error stops the start with its name
        raise ConfigError(f"{where} cannot be loaded: importing it failed: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"{where} cannot be loaded: module {module_name} has no {class_name}")
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise ConfigError(f"{where} does not implement the contract: it must subclass "
                          f"{base.__module__}.{base.__name__}")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if issubclass(cls, BaseTracker) and not cls.implements_check():
        missing.append("check")
    if missing:
        raise ConfigError(f"{where} does not implement the contract: missing {', '.join(missing)}")
    return cls


def _build(cls: type[C], context: SystemContext, what: str) -> C:
    try:
        return cls(context)
    except ConfigError as exc:
        raise NotConfigured(f"{what}: {cls.__module__}:{cls.__name__} cannot start: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a failing constructor stops the start, named
        raise ConfigError(f"{what}: {cls.__module__}:{cls.__name__} cannot start: "
                          f"{type(exc).__name__}: {exc}") from exc


def load_components(settings: CreatorSettings, routing: CreatorRouting, responses_queue: str) -> Components:
    """Instantiate the handler or tracker of every served queue (see the module docstring)."""
    explicit = settings.served_queues
    unknown = [q for q in explicit if q not in routing.queue_handlers and q not in routing.tracker_handlers]
    if unknown:
        raise ConfigError(f"CREATOR_QUEUES names {', '.join(unknown)}, which no QUEUE_HANDLERS or TRACKER_HANDLERS "
                          f"entry serves (known: {', '.join(routing.all_queues)}); add it with "
                          f"CREATOR_QUEUE_HANDLERS / CREATOR_TRACKER_HANDLERS")
    components = Components()
    for queue in explicit or routing.all_queues:
        system = routing.system_of(queue)
        try:
            if queue in routing.queue_handlers:
                spec = routing.queue_handlers[queue]
                what = f"queue {queue}"
                cls = load_class(spec.module, spec.handler_class, BaseMessageHandler, what)  # type: ignore[type-abstract]
                sent = routing.sent_queues.get(queue)
                context = SystemContext(system=system, queue=queue, sent_queue=sent, settings=settings)
                components.handlers[queue] = LoadedHandler(queue, system, _build(cls, context, what), sent)
            else:
                tspec = routing.tracker_handlers[queue]
                what = f"sent queue {queue}"
                tcls = load_class(tspec.module, tspec.tracker_class, BaseTracker, what)
                context = SystemContext(system=system, queue=queue.replace(".sent.queue", ".queue"),
                                        sent_queue=queue, settings=settings)
                components.trackers[queue] = LoadedTracker(queue, system, _build(tcls, context, what),
                                                           tspec.target_queue or responses_queue)
        except ConfigError as exc:
            if explicit or not isinstance(exc, NotInstalled | NotConfigured):
                components.cleanup()
                raise
            components.skipped[queue] = str(exc)
            logger.warning("not serving {}: {} (list the served queues in CREATOR_QUEUES to make this an error)",
                           queue, exc)
    for loaded in components.handlers.values():
        if loaded.sent_queue and loaded.sent_queue not in components.trackers:
            logger.warning("{} is served but its tracker queue {} is not: created items wait there until a "
                           "task-creator serving it runs", loaded.queue, loaded.sent_queue)
    return components
