"""The external systems Exchanger knows: one :class:`SystemSpec` per system, found in one registry.

A system declares itself once, in its package (``SYSTEM = SystemSpec(...)`` in its ``__init__.py``):
its name, the topics routed to it, where its handler, tracker, settings class and fake server live.
Everything else is derived from the registry: the routing table (:mod:`exchanger.routing`), the
task-creator's queue maps (:mod:`exchanger.creator.routing_config`), the sandbox's server list, the
settings the CLI checks and masks, and the settings page (:mod:`exchanger.settings_doc`).

The registry holds the built-in systems plus every entry point of the group ``exchanger.systems``,
so a separately installed package adds a system with one line in its ``pyproject.toml``::

    [project.entry-points."exchanger.systems"]
    jira = "acme_jira:SYSTEM"

Classes are named by ``"module:Class"`` and imported only when used, so that a declared system
whose package cannot import is skipped by the task-creator with a warning, as before.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from exchanger.errors import ConfigError

ENTRY_POINT_GROUP = "exchanger.systems"
BUILTIN_SYSTEMS = (  # packages whose SYSTEM is a built-in system, in documentation order
    "exchanger.systems.bitrix24",
    "exchanger.systems.openproject",
    "exchanger.systems.onec",
    "exchanger.systems.python",
    "exchanger.systems.default",
)


@dataclass(frozen=True)
class SystemSpec:
    """One external system, declared once.

    ``handler``, ``tracker`` and ``settings`` are ``"module:Class"``; ``tracker`` None means work items
    finish at once (no ``<name>.sent.queue``). ``fake_server`` is the module of its sandbox stand-in,
    with ``start(port=0, ...)`` (the factory tests use) and ``cli(argv)`` (``python -m exchanger_sandbox
    <fake_name>``); ``fake_name`` defaults to ``name``. ``probe`` is ``"module:function"``, the cheap
    read ``exchanger config check`` makes when the system is configured: ``function(settings) -> str``
    says what answered and raises an ``ExchangerError`` when the system cannot be reached.
    """

    name: str
    handler: str
    topics: tuple[str, ...] = ()
    tracker: str | None = None
    settings: str | None = None
    fake_server: str | None = None
    fake_name: str | None = None
    probe: str | None = None

    def __post_init__(self) -> None:
        for what in ("handler", "tracker", "settings", "probe"):
            value = getattr(self, what)
            if value is not None and value.count(":") != 1:
                raise ConfigError(f"system {self.name}: {what} must be 'module:Class', got {value!r}")

    @property
    def sandbox_name(self) -> str:
        return self.fake_name or self.name

    def settings_class(self) -> type[Any] | None:
        """The settings class (imported now), or None for a system without settings of its own."""
        return resolve(self.settings) if self.settings else None


def split(target: str) -> tuple[str, str]:
    """``"pkg.mod:Class"`` → ``("pkg.mod", "Class")``."""
    module, _, name = target.partition(":")
    return module, name


def resolve(target: str) -> Any:
    """Import ``"module:Name"`` and return the object."""
    module, name = split(target)
    return getattr(importlib.import_module(module), name)


def _spec_of(source: str, found: object) -> SystemSpec:
    if not isinstance(found, SystemSpec):
        raise ConfigError(f"{source} is not an exchanger.systems.SystemSpec (got {type(found).__name__})")
    return found


@cache
def registered_systems() -> dict[str, SystemSpec]:
    """Every system by name: the built-ins, then the ``exchanger.systems`` entry points.

    A second system of the same name is refused here, when the registry is read, not at run time.
    """
    specs = [_spec_of(f"{package}.SYSTEM", importlib.import_module(package).SYSTEM) for package in BUILTIN_SYSTEMS]
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in stops the start, named
            raise ConfigError(f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP}) cannot be loaded: "
                              f"{type(exc).__name__}: {exc}") from exc
        specs.append(_spec_of(f"entry point {point.value}", loaded))
    systems: dict[str, SystemSpec] = {}
    for spec in specs:
        if spec.name in systems:
            raise ConfigError(f"system {spec.name!r} is declared twice ({systems[spec.name].handler} and "
                              f"{spec.handler})")
        systems[spec.name] = spec
    return systems


def settings_modules() -> list[str]:
    """The modules of every registered system's settings class."""
    return [split(spec.settings)[0] for spec in registered_systems().values() if spec.settings]
