"""``exchanger process list|start|stats``: process definitions of this tenant, starting instances, statistics.

Variables of ``start`` keep explicit types:

    name=value            JSON literal when it parses (5, 2.5, true, {"a": 1}, [1]), else a String
    name:Type=value       explicit Camunda type: String, Integer, Long, Double, Boolean, Json, Date, Null
    --vars '{"a": 1}'     a JSON object of values
    --vars-file f.toml    a TOML file: `a = 1`, or `a = {value = "7", type = "Long"}` for an explicit type
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from exchanger.cli.context import EXIT_OK, Cli, Context, UsageError

TYPES = {"string": "String", "integer": "Integer", "long": "Long", "double": "Double", "boolean": "Boolean",
         "json": "Json", "date": "Date", "null": "Null"}
DEFINITION_COLUMNS = [("key", "KEY"), ("name", "NAME"), ("version", "VERSION"), ("id", "ID"),
                      ("tenantId", "TENANT")]
STATS_COLUMNS = [("process", "PROCESS"), ("topic", "TOPIC"), ("instances", "INSTANCES"), ("tasks", "TASKS"),
                 ("locked", "LOCKED"), ("no_retries", "NO RETRIES"), ("incidents", "INCIDENTS")]


def register(cli: Cli, subparsers: Any) -> None:
    group = subparsers.add_parser("process", help="process definitions: list, start, stats", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    cli.leaf(sub, "list", "latest version of every process definition of this tenant", list_definitions)
    start = cli.leaf(sub, "start", "start an instance with typed variables", start_instance, description=__doc__)
    start.add_argument("key", help="process definition key")
    start.add_argument("variables", nargs="*", metavar="NAME[:TYPE]=VALUE")
    start.add_argument("--vars", help="a JSON object of variables")
    start.add_argument("--vars-file", help="a TOML file of variables")
    start.add_argument("--business-key")
    start.add_argument("--version", type=int, help="this version instead of the latest")
    cli.leaf(sub, "stats", "per process key and topic: instances, open tasks, locked, without retries, incidents",
             stats)


def _ops(context: Context) -> Any:
    from exchanger.camunda.operations import EngineOps

    return EngineOps(context.camunda, context.tenant or None)


def list_definitions(context: Context) -> int:
    params = {"latestVersion": "true", "sortBy": "key", "sortOrder": "asc",
              **(context.tenant_params() or {"withoutTenantId": "true"})}
    rows = [r for r in context.camunda.http.request("GET", "/process-definition", params=params).json()
            if context.in_tenant(r)]
    context.emit(rows, DEFINITION_COLUMNS, empty="no process definitions")
    return EXIT_OK


def typed_value(value: Any, type_name: str | None = None) -> dict[str, Any]:
    """A Camunda ``{value, type}``: the explicit type when given, else inferred from the Python value."""
    from exchanger.variables import to_typed

    if type_name is None:
        return to_typed(value)
    kind = TYPES.get(type_name.lower())
    if kind is None:
        raise UsageError(f"unknown variable type {type_name!r}; one of {', '.join(TYPES.values())}")
    try:
        if kind in ("Integer", "Long"):
            return {"value": int(value), "type": kind}
        if kind == "Double":
            return {"value": float(value), "type": kind}
        if kind == "Boolean":
            text = str(value).lower()
            if text not in ("true", "false"):
                raise ValueError(f"{value!r} is not true or false")
            return {"value": text == "true", "type": kind}
        if kind == "Json":
            return {"value": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
                    "type": kind}
        if kind == "Null":
            return {"value": None, "type": kind}
        return {"value": str(value), "type": kind}
    except ValueError as exc:
        raise UsageError(f"{value!r} is not a valid {kind}: {exc}") from None


def parse_assignment(text: str) -> tuple[str, dict[str, Any]]:
    """``name=value`` or ``name:Type=value`` → (name, typed value)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"variable {text!r} is not NAME=VALUE or NAME:TYPE=VALUE")
    name, _, type_name = name.partition(":")
    if type_name:
        return name, typed_value(raw, type_name)
    try:
        return name, typed_value(json.loads(raw))
    except ValueError:
        return name, typed_value(raw)


def variables_from(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    import tomllib

    typed: dict[str, dict[str, Any]] = {}
    if args.vars_file:
        with open(args.vars_file, "rb") as handle:
            for name, value in tomllib.load(handle).items():
                explicit = isinstance(value, dict) and set(value) == {"value", "type"}
                typed[name] = typed_value(value["value"], value["type"]) if explicit else typed_value(value)
    if args.vars:
        values = json.loads(args.vars)
        if not isinstance(values, dict):
            raise UsageError("--vars must be a JSON object")
        typed.update({name: typed_value(value) for name, value in values.items()})
    typed.update(dict(parse_assignment(text) for text in args.variables))
    return typed


def start_instance(context: Context) -> int:
    from loguru import logger

    args = context.args
    variables = variables_from(args)
    ops = _ops(context)
    definition = ops.definition(args.key, args.version)
    instance = ops.start_definition(definition["id"], variables, business_key=args.business_key)
    logger.info("started {} version {} as instance {} by operator command", args.key, definition["version"],
                instance)
    if context.json:
        context.emit_json({"id": instance, "definitionId": definition["id"], "version": definition["version"],
                           "variables": variables})
    else:
        print(f"started {args.key} version {definition['version']}: instance {instance}")
    return EXIT_OK


def stats(context: Context) -> int:
    from exchanger.cli.tasks import open_incidents

    http = context.camunda.http
    params = context.tenant_params() or {"withoutTenantId": "true"}
    definitions = [d for d in http.request("GET", "/process-definition", params=params).json()
                   if context.in_tenant(d)]
    key_of = {d["id"]: d["key"] for d in definitions}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for key in sorted(set(key_of.values())):
        count = http.request("GET", "/process-instance/count",
                             params={"processDefinitionKey": key, **params}).json()["count"]
        rows[(key, "")] = {"process": key, "topic": "", "instances": count, "tasks": 0, "locked": 0,
                           "no_retries": 0, "incidents": 0}
    for task in context.tasks():
        key = task.get("processDefinitionKey") or key_of.get(task.get("processDefinitionId"), "?")
        row = rows.setdefault((key, task["topicName"]), {"process": key, "topic": task["topicName"], "instances": None,
                                                         "tasks": 0, "locked": 0, "no_retries": 0, "incidents": 0})
        row["tasks"] += 1
        row["locked"] += 1 if task.get("workerId") and task.get("lockExpirationTime") else 0
        row["no_retries"] += 1 if task.get("retries") == 0 else 0
    for incident in open_incidents(context):
        key = key_of.get(incident.get("processDefinitionId"), "?")
        rows.setdefault((key, ""), {"process": key, "topic": "", "instances": None, "tasks": 0, "locked": 0,
                                    "no_retries": 0, "incidents": 0})["incidents"] += 1
    context.emit([rows[k] for k in sorted(rows)], STATS_COLUMNS, empty="no processes")
    return EXIT_OK
