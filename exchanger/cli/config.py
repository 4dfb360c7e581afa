"""``exchanger config check`` and ``exchanger config diff ENV ENV``.

``check`` validates every setting of the environment, reaches each configured system once (Camunda,
RabbitMQ, and every registered system with a ``probe`` whose settings are present), and prints the effective
settings with secrets masked. ``diff`` compares two environments' env files (secrets: only whether they
differ). Exit 0 fine, 1 a system unreachable, 2 a bad setting.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
from collections.abc import Callable
from typing import Any

from exchanger.cli.context import EXIT_OK, EXIT_RED, EXIT_WARN, Cli, Context
from exchanger.settings import ExchangerSettings
from exchanger.systems import registered_systems, resolve, settings_modules

SETTINGS_MODULES = ("exchanger.settings", "exchanger.camunda.settings", "exchanger.worker.settings",
                    "exchanger.creator.settings", "exchanger.routing")  # the systems' come from the registry
MASK = "***"


def register(cli: Cli, subparsers: Any) -> None:
    group = subparsers.add_parser("config", help="check this environment's settings; diff two environments",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    check = cli.leaf(sub, "check", "validate, reach each system once, print effective settings (secrets masked)",
                     check_config)
    check.add_argument("--offline", action="store_true", help="validate only; do not contact any system")
    diff = cli.leaf(sub, "diff", "settings that differ between two environments' env files", diff_config)
    diff.add_argument("left", choices=("prod", "dev"))
    diff.add_argument("right", choices=("prod", "dev"))


def settings_classes() -> list[type[ExchangerSettings]]:
    from exchanger.settings import all_settings_classes

    for module in (*SETTINGS_MODULES, *settings_modules()):
        importlib.import_module(module)
    return sorted(all_settings_classes(), key=lambda cls: cls.__name__)


def secret_names() -> set[str]:
    names = set()
    for cls in settings_classes():
        prefix = (cls.model_config.get("env_prefix") or "").upper()
        for name, field in cls.model_fields.items():
            if "SecretStr" in str(field.annotation):
                names.add((field.alias or f"{prefix}{name}").upper())
    return names


def configured(cls: type) -> bool:
    """A class some variable of which is set; a system nobody configured is not checked."""
    return any(name in os.environ for name in cls.env_names())  # type: ignore[attr-defined]




def optional(cls: type) -> bool:
    """An external system's settings: this environment may not use that system."""
    from exchanger.settings import ExternalSystemSettings

    return issubclass(cls, ExternalSystemSettings)


def check_config(context: Context) -> int:
    from exchanger.errors import ConfigError

    loaded: dict[str, Any] = {}
    problems: list[str] = []
    for cls in settings_classes():
        if optional(cls) and not configured(cls):
            continue
        try:
            loaded[cls.__name__] = context.settings(cls)
        except ConfigError as exc:
            problems.append(str(exc))
    reached: list[dict[str, str]] = []
    if not problems and not context.args.offline:
        reached = [reach(name, probe) for name, probe in probes(context, loaded)]
    effective = {name: value for settings in loaded.values() for name, value in masked(settings).items()}
    code = EXIT_RED if problems else (EXIT_WARN if any(r["result"] != "ok" for r in reached) else EXIT_OK)
    if context.json:
        context.emit_json({"environment": context.environment.name, "env_file": str(context.environment.env_file),
                           "problems": problems, "systems": reached, "settings": effective})
        return code
    print(f"environment {context.environment.name} ({context.environment.env_file})")
    for problem in problems:
        print(f"  BAD  {problem}")
    for row in reached:
        print(f"  {'OK ' if row['result'] == 'ok' else 'ERR'}  {row['system']}: {row['detail']}")
    print("\neffective settings (secrets masked):")
    for name in sorted(effective):
        print(f"  {name}={effective[name]}")
    return code


def masked(settings: Any) -> dict[str, str]:
    from pydantic import SecretStr

    prefix = (settings.model_config.get("env_prefix") or "").upper()
    values = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            text = MASK if value.get_secret_value() else ""
        elif isinstance(value, dict | list):
            import json

            text = json.dumps(value, default=str)
        else:
            text = "" if value is None else str(value)
        values[(field.alias or f"{prefix}{name}").upper()] = text
    return values


def probes(context: Context, loaded: dict[str, Any]) -> list[tuple[str, Callable[[], str]]]:
    """One cheap read per configured system."""
    from exchanger.amqp.connection import connect, describe

    def camunda() -> str:
        return f"Camunda {context.camunda.version()} at {context.camunda_settings.base_url}"

    def rabbitmq() -> str:
        connect(context.rabbit, name="exchanger-cli:config", attempts=1).close()
        return describe(context.rabbit)

    found: list[tuple[str, Callable[[], str]]] = [("camunda", camunda), ("rabbitmq", rabbitmq)]
    for name, spec in registered_systems().items():
        cls = spec.settings_class()
        if spec.probe and cls is not None and cls.__name__ in loaded:
            found.append((name, functools.partial(resolve(spec.probe), loaded[cls.__name__])))
    return found


def reach(system: str, probe: Callable[[], str]) -> dict[str, str]:
    from exchanger.errors import ExchangerError

    try:
        return {"system": system, "result": "ok", "detail": probe()}
    except ExchangerError as exc:
        return {"system": system, "result": "error", "detail": str(exc)}


def diff_config(context: Context) -> int:
    from dotenv import dotenv_values

    root = context.environment.root
    left, right = context.args.left, context.args.right
    values = {}
    for env in (left, right):
        path = root / f".env.{env}"
        if not path.is_file():
            print(f"exchanger: {path} is missing")
            return EXIT_RED
        values[env] = {k: v or "" for k, v in dotenv_values(path).items()}
    secrets = secret_names()
    rows = []
    for name in sorted(set(values[left]) | set(values[right])):
        a, b = values[left].get(name), values[right].get(name)
        if a == b:
            continue
        if name in secrets:
            a, b = (None if a is None else MASK), (None if b is None else MASK)
            a, b = (f"{a} (differs)" if a else a), (f"{b} (differs)" if b else b)
        rows.append({"name": name, left: "(unset)" if a is None else a, right: "(unset)" if b is None else b})
    context.emit(rows, [("name", "SETTING"), (left, left.upper()), (right, right.upper())],
                 empty=f"{left} and {right} set the same values")
    return EXIT_OK
