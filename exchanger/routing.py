"""Topic → system: the one routing table of Exchanger.

The default table is each registered system's declared topics (:mod:`exchanger.systems`).

camunda-worker fetches every topic listed here and publishes each task with routing key
``<system>.<topic>``; each system's queue is bound with ``<system>.#`` so that topics containing dots
or hyphens route correctly. A topic nobody listed belongs to the ``default`` system, whose consumer
turns it into an incident that names the topic. The table can be extended or overridden by a TOML
file named by ``ROUTING_FILE``::

    [systems]
    bitrix24 = ["bitrix_create_task", "bitrix_update_task"]
    python = ["send_email", "my_custom_task"]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from exchanger.errors import ConfigError
from exchanger.settings import ExchangerSettings
from exchanger.systems import registered_systems

DEFAULT_SYSTEM = "default"


def default_routes() -> dict[str, list[str]]:
    """System → topics, as the registered systems declare them (systems without topics left out)."""
    return {name: list(spec.topics) for name, spec in registered_systems().items() if spec.topics}


class RoutingSettings(ExchangerSettings):
    routing_file: str = Field("", alias="ROUTING_FILE", description="TOML file extending the topic → system table")


@dataclass
class RoutingTable:
    routes: dict[str, list[str]] = field(default_factory=default_routes)

    def __post_init__(self) -> None:
        self._system_of: dict[str, str] = {}
        for system, topics in self.routes.items():
            for topic in topics:
                if topic in self._system_of and self._system_of[topic] != system:
                    raise ConfigError(f"topic {topic!r} is routed to both {self._system_of[topic]} and {system}")
                self._system_of[topic] = system

    @property
    def topics(self) -> list[str]:
        return sorted(self._system_of)

    @property
    def systems(self) -> list[str]:
        return sorted({*self.routes, DEFAULT_SYSTEM})

    def system_for(self, topic: str) -> str:
        return self._system_of.get(topic, DEFAULT_SYSTEM)

    def routing_key(self, topic: str) -> str:
        return f"{self.system_for(topic)}.{topic}"


def load_routing(settings: RoutingSettings | None = None) -> RoutingTable:
    """The default table, with the systems named in ``ROUTING_FILE`` replaced or added."""
    settings = settings or RoutingSettings()
    routes = default_routes()
    if settings.routing_file:
        path = Path(settings.routing_file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"ROUTING_FILE={path}: cannot read it ({exc})") from None
        systems = data.get("systems")
        if not isinstance(systems, dict) or not all(isinstance(v, list) for v in systems.values()):
            raise ConfigError(f"ROUTING_FILE={path}: expected a [systems] table of topic lists")
        for system, topics in systems.items():
            routes[system] = [str(topic) for topic in topics]
    return RoutingTable(routes)
