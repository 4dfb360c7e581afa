"""``exchanger status``: one screen, what an operator runs first; green/yellow/red with the reason.

Checks: Camunda (version, auth), the broker, each queue's depth, consumers, growth between two samples
and the age of its oldest message, the parking lot, both daemons' ``/readyz``, the tasks this
environment's worker holds, open incidents, the last camunda-sync pass. Exit 0 green, 1 yellow, 2 red.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from exchanger.cli.context import EXIT_OK, EXIT_RED, EXIT_WARN, Cli, Context, human_age, parse_duration

GREEN, YELLOW, RED, INFO = "green", "yellow", "red", "info"
SEVERITY = {INFO: 0, GREEN: 0, YELLOW: 1, RED: 2}
DEFAULT_SAMPLE_S = 2.0  # seconds between the two looks at queue depths (growth)
DEFAULT_MAX_AGE = "10m"  # a consumed queue whose oldest message is older than this is yellow
READYZ_TIMEOUT_S = 3.0


@dataclass
class Check:
    name: str
    level: str
    detail: str


def register(cli: Cli, subparsers: Any) -> None:
    parser = cli.leaf(subparsers, "status", "one screen: systems, queues, daemons, tasks; exit 0/1/2 = "
                      "green/yellow/red", status, description=__doc__)
    parser.add_argument("--sample", type=float, default=DEFAULT_SAMPLE_S, metavar="SECONDS",
                        help=f"interval of the two queue samples (default {DEFAULT_SAMPLE_S:g}; 0 = one sample)")
    parser.add_argument("--max-age", type=parse_duration, default=parse_duration(DEFAULT_MAX_AGE),
                        metavar="DURATION", help=f"oldest message age that turns a queue yellow "
                                                 f"(default {DEFAULT_MAX_AGE})")


def status(context: Context) -> int:
    checks: list[Check] = []
    for section in (camunda_checks, broker_checks, daemon_checks, sync_checks):
        checks += guarded(section.__name__.removesuffix("_checks"), functools.partial(section, context))
    worst = max((SEVERITY[c.level] for c in checks), default=0)
    overall = {0: GREEN, 1: YELLOW, 2: RED}[worst]
    if context.json:
        context.emit_json({"environment": context.environment.name, "status": overall,
                           "checks": [asdict(c) for c in checks]})
    else:
        print(f"Exchanger {context.environment.name}: {overall.upper()}")
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"  {c.level.upper():<6}  {c.name:<{width}}  {c.detail}")
        reasons = [f"{c.name}: {c.detail}" for c in checks if SEVERITY[c.level] == worst and worst]
        if reasons:
            print(f"\n{overall.upper()} because:\n  " + "\n  ".join(reasons))
    return {0: EXIT_OK, 1: EXIT_WARN, 2: EXIT_RED}[worst]


def guarded(name: str, section: Callable[[], list[Check]]) -> list[Check]:
    """A section that fails is one red line naming why, never a traceback instead of the screen."""
    from exchanger.errors import ExchangerError

    try:
        return section()
    except ExchangerError as exc:
        return [Check(name, RED, str(exc))]
    except Exception as exc:  # noqa: BLE001 - the status screen must still come out, with the reason
        return [Check(name, RED, f"{type(exc).__name__}: {exc}")]


# --- Camunda ----------------------------------------------------------------------------------------


def camunda_checks(context: Context) -> list[Check]:
    from exchanger.cli.tasks import locked_by_worker, open_incidents

    settings = context.camunda_settings
    auth = "bearer" if settings.auth_bearer_token.get_secret_value() else \
        ("basic" if settings.auth_username else "none")
    version = context.camunda.version()
    checks = [Check("camunda", GREEN, f"{version} at {settings.base_url} (auth {auth}, tenant "
                                      f"{settings.tenant_id or '(none)'})")]
    locked = locked_by_worker(context)
    oldest = human_age(locked[0]["lock_age_s"]) if locked else "-"
    checks.append(Check("locked tasks", INFO, f"{len(locked)} held by worker {settings.worker_id!r} "
                                              f"(oldest lock {oldest}); `exchanger recover` finds lost ones"))
    incidents = open_incidents(context)
    checks.append(Check("incidents", YELLOW if incidents else GREEN,
                        f"{len(incidents)} open" + (" (exchanger tasks incidents)" if incidents else "")))
    return checks


# --- RabbitMQ ---------------------------------------------------------------------------------------


def broker_checks(context: Context) -> list[Check]:
    from exchanger.amqp.connection import describe
    from exchanger.amqp.inspect import list_queues

    topology = context.topology
    first = list_queues(context.rabbit, topology)
    checks = [Check("rabbitmq", GREEN, f"{describe(context.rabbit)} (queues from {first.source})")]
    if context.args.sample > 0:
        time.sleep(context.args.sample)
        second = list_queues(context.rabbit, topology)
    else:
        second = first
    before, after = first.by_name(), second.by_name()
    parking = topology.settings.parking_queue
    consumed = list(dict.fromkeys([*topology.consumable_queues, "default.queue"]))
    missing = [name for name in consumed if name not in after or not after[name].exists]
    if missing:
        checks.append(Check("queues", RED, f"{len(missing)} missing ({', '.join(missing)}): no daemon has declared "
                                           f"them in vhost {context.rabbit.virtual_host!r} yet"))
    present = [name for name in consumed if name not in missing]
    ages = head_ages(context, [q for q in present if after[q].ready])
    for name in present:
        checks.append(queue_check(name, before.get(name), after[name], ages.get(name), context))
    parked = after.get(parking)
    count = parked.ready if parked and parked.ready else 0
    checks.append(Check("parking lot", YELLOW if count else GREEN,
                        f"{count} parked message(s)" + (" (exchanger parking list)" if count else "")))
    delays = [q for q in after.values() if q.name.startswith(topology.settings.delay_exchange + ".")]
    if second.complete:
        waiting = sum(q.ready or 0 for q in delays)
        checks.append(Check("delay queues", INFO, f"{waiting} message(s) waiting in {len(delays)} queue(s)"))
    else:
        checks.append(Check("delay queues", INFO, second.note))
    return checks


def head_ages(context: Context, queues: list[str]) -> dict[str, float | None]:
    """Age of the first ready message of each queue (the oldest, in a FIFO queue)."""
    from exchanger.amqp.inspect import peek

    ages: dict[str, float | None] = {}
    for queue in queues:
        messages = peek(context.rabbit, [queue], 1)
        ages[queue] = messages[0].age_s if messages else None
    return ages


def queue_check(name: str, before: Any, after: Any, age_s: float | None, context: Context) -> Check:
    unacked = f", {after.unacked} unacked" if after.unacked else ""
    text = f"{after.ready} ready{unacked}, {after.consumers} consumer(s)"
    if after.ready and age_s is not None:
        text += f", oldest {human_age(age_s)}"
    if after.ready and not after.consumers:
        return Check(name, RED, f"{text}: nobody consumes it")
    if before is not None and before.exists and after.ready > (before.ready or 0) and after.ready:
        return Check(name, YELLOW, f"{text}: growing ({before.ready} → {after.ready} in {context.args.sample:g}s)")
    if age_s is not None and age_s > context.args.max_age:
        return Check(name, YELLOW, f"{text}: oldest message waits longer than {human_age(context.args.max_age)}")
    return Check(name, GREEN, text)


# --- daemons ----------------------------------------------------------------------------------------


def daemon_checks(context: Context) -> list[Check]:
    from exchanger.creator.settings import CreatorSettings
    from exchanger.worker.settings import WorkerSettings

    worker = context.settings(WorkerSettings)
    creator = context.settings(CreatorSettings)
    return [*instances("camunda-worker", worker.health_host, worker.health_port, "WORKER_HEALTH_PORT"),
            *instances("task-creator", creator.health_host, creator.health_port, "CREATOR_HEALTH_PORT")]


def instances(name: str, host: str, port: int, variable: str) -> list[Check]:
    """The first instance's ``/readyz``, and those of further instances on this host that answer
    (``EXCHANGER_INSTANCE`` n listens PORT_STEP·(n−1) higher; one that is not running is not an error)."""
    from env_loader import MAX_INSTANCE, process_name
    from exchanger.instances import instance_port

    checks = [readyz(name, host, port, variable)]
    for n in range(2, MAX_INSTANCE + 1):
        theirs = instance_port(port, n)
        if not theirs or theirs > 65535:
            break
        check = readyz(process_name(name, n), host, theirs, variable)
        if not check.detail.startswith("not running"):
            checks.append(check)
    return checks


def readyz(name: str, host: str, port: int, variable: str) -> Check:
    """The daemon's ``/readyz``: 200 ready, 503 with the failing checks, nothing = not running."""
    from exchanger.errors import IntegrationError, Unreachable
    from exchanger.http_client import HttpClient

    if not port:
        return Check(name, YELLOW, f"health endpoint off ({variable}=0): cannot tell whether it runs")
    client = HttpClient(f"http://{host}:{port}", system=name, attempts=1, connect_timeout_s=READYZ_TIMEOUT_S,
                        read_timeout_s=READYZ_TIMEOUT_S)
    try:
        body = client.request("GET", "/readyz", retry=False).json()
        return Check(name, GREEN, f"ready ({', '.join(body.get('checks', {}))} ok) on :{port}")
    except Unreachable:
        return Check(name, RED, f"not running: nothing answers on {host}:{port}")
    except IntegrationError as exc:
        return Check(name, RED, f"not ready: {_failing(exc)}")
    finally:
        client.close()


def _failing(exc: Any) -> str:
    import json

    try:
        checks = json.loads(str(exc.details))["checks"]
        return "; ".join(f"{k}: {v['detail']}" for k, v in checks.items() if not v["ok"])
    except (ValueError, KeyError, TypeError):
        return str(exc)


# --- camunda-sync -----------------------------------------------------------------------------------


def sync_checks(context: Context) -> list[Check]:
    from exchanger.cli.sync import last_pass

    return [last_pass(context)]
