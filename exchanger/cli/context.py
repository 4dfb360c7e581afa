"""What every ``exchanger`` subcommand shares: the environment, settings and clients, output, exit codes.

Heavy modules (pika, requests, pydantic settings) are imported when a command first needs them, so
that ``exchanger --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from env_loader import Environment
    from exchanger.amqp.topology import Topology
    from exchanger.camunda.client import CamundaClient
    from exchanger.camunda.settings import CamundaSettings
    from exchanger.settings import ExchangerSettings, RabbitMQSettings

S = TypeVar("S", bound="ExchangerSettings")  # a settings class and its instance

# Exit codes (README, "Operations"): scripts may rely on them.
EXIT_OK = 0  # done; status green
EXIT_WARN = 1  # status yellow; a system could not be reached; recover found lost tasks (dry run)
EXIT_RED = 2  # status red; bad configuration or bad usage
EXIT_NOT_CONFIRMED = 3  # a destructive command without --yes: it said what it would do and did nothing

Handler = Callable[["Context"], int]


class UsageError(Exception):
    """The command line cannot be acted on; the message says what to add (exit 2)."""


class Cli:
    """Registers a command group: ``add(sub, name, help, handler)`` gives every leaf --env and --json."""

    def __init__(self) -> None:
        self.common = argparse.ArgumentParser(add_help=False)
        self.common.add_argument("--env", default=argparse.SUPPRESS, help="prod or dev (default: $EXCHANGER_ENV)")
        self.common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                 help="machine-readable output")

    def leaf(self, subparsers: Any, name: str, help: str, handler: Handler,
             description: str | None = None) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=description or help,
                                                                parents=[self.common],
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(handler=handler)
        return parser


@dataclass
class Context:
    args: argparse.Namespace
    environment: Environment
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    # --- settings and clients -----------------------------------------------------------------

    def settings(self, cls: type[S]) -> S:
        from exchanger.settings import load

        return load(cls)

    @cached_property
    def camunda_settings(self) -> CamundaSettings:
        from exchanger.camunda.settings import CamundaSettings

        return self.settings(CamundaSettings)

    @cached_property
    def camunda(self) -> CamundaClient:
        from exchanger.camunda.client import CamundaClient

        client = CamundaClient(self.camunda_settings, attempts=2)
        self.closers.append(client.close)
        return client

    @cached_property
    def rabbit(self) -> RabbitMQSettings:
        from exchanger.settings import RabbitMQSettings

        return self.settings(RabbitMQSettings)

    @cached_property
    def topology(self) -> Topology:
        from exchanger.amqp.topology import Topology
        from exchanger.routing import RoutingSettings, load_routing
        from exchanger.settings import TopologySettings

        routing = load_routing(self.settings(RoutingSettings))
        return Topology(self.settings(TopologySettings), routing.systems, queue_type=self.rabbit.queue_type,
                        virtual_host=self.rabbit.virtual_host)

    # --- this tenant only ---------------------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self.camunda_settings.tenant_id

    def tenant_params(self) -> dict[str, Any]:
        """Camunda's ``tenantIdIn`` when a tenant is set (queries without a tenant filter rows here)."""
        return {"tenantIdIn": self.tenant} if self.tenant else {}

    def in_tenant(self, row: dict[str, Any]) -> bool:
        return (row.get("tenantId") or "") == self.tenant

    def tasks(self, **filters: Any) -> list[dict[str, Any]]:
        """External tasks of this tenant matching Camunda's query ``filters``."""
        rows = self.camunda.list_tasks(**self.tenant_params(), **filters)
        return [row for row in rows if self.in_tenant(row)]

    def task(self, task_id: str) -> dict[str, Any]:
        """One task of this tenant; another tenant's task is refused as if it did not exist."""
        row = self.camunda.get_task(task_id)
        if not self.in_tenant(row):
            raise UsageError(f"task {task_id} belongs to tenant {row.get('tenantId')!r}, not to this environment's "
                             f"{self.tenant!r}")
        return row

    # --- output -------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        """A human line (suppressed with --json)."""
        if not self.json:
            print(text)

    def emit(self, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
             extra: dict[str, Any] | None = None, empty: str = "(none)") -> None:
        """A listing: a table of ``columns`` (key, header), or with --json every row as it is."""
        if self.json:
            payload: Any = list(rows) if extra is None else {**extra, "items": list(rows)}
            print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
            return
        print(table(rows, columns) if rows else empty)

    def emit_json(self, payload: Any) -> None:
        print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain aligned text table (no colours: it is read over ssh and pasted into tickets)."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds of ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``, or a bare number of seconds (``0``: any)."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (examples: 90s, 15m, 2h, 1d, 1h30m, 0)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def camunda_time(text: str | None) -> datetime | None:
    """A Camunda date (``2026-11-29T20:00:00.000+0000``) as an aware datetime."""
    if not text:
        return None
    from exchanger.variables import parse_date

    return parse_date(text)


def now() -> datetime:
    return datetime.now(UTC)


def fail(message: str) -> int:
    print(f"exchanger: {message}", file=sys.stderr)
    return EXIT_RED
