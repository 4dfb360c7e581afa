"""Message, signal and conditional events: subscriptions, conditions on variable changes, correlation.

A waiting catch event, receive task or boundary event is a ``subscription`` row on the execution that
waits (for a boundary event: its host). Conditions are evaluated when the subscription is created and
whenever a variable changes in a scope the subscription can see (the changed scope is the subscribing
execution or one of its ancestors — Camunda propagates variable events downwards), honouring
``camunda:variableName``. A condition over a variable nobody set is false, not an error, as in Camunda.
"""

from __future__ import annotations

from dataclasses import dataclass
from sqlite3 import Row
from typing import TYPE_CHECKING, Any

from exchanger.bpmn.errors import ProcessEngineException
from exchanger.bpmn.parser import Activity
from exchanger_sandbox.camunda.variables import TypedValue

if TYPE_CHECKING:
    from exchanger_sandbox.camunda.runtime import InstanceContext, Runtime


def subscribe(rt: Runtime, context: InstanceContext, event: Activity, execution_id: str) -> None:
    """Start waiting for ``event``'s message or condition on ``execution_id``."""
    from exchanger_sandbox.camunda.runtime import new_id

    subscription_id = new_id()
    rt.store.insert("subscription", {"id": subscription_id, "kind": event.event, "name": event.event_name,
                                     "execution_id": execution_id, "proc_inst_id": context.id,
                                     "activity_id": event.id, "created": rt.now})
    if event.event == "conditional":
        rt._changes.append((execution_id, ""))  # evaluated once the current step is done, as on creation


def dispatch_conditions(rt: Runtime) -> None:
    """Evaluate the conditional subscriptions that the variable changes since the last call can affect."""
    changes, rt._changes = rt._changes, []
    if rt.store.one("SELECT 1 FROM subscription WHERE kind = 'conditional' LIMIT 1") is None:
        return  # the common case: nothing anywhere waits for a condition
    instances = {rt.chain(execution_id)[-1] for execution_id, _ in changes if rt.execution(execution_id)}
    for instance_id in instances:
        rows = rt.store.all("SELECT * FROM subscription WHERE kind = 'conditional' AND proc_inst_id = ? "
                            "ORDER BY created, rowid", (instance_id,))
        for row in rows:
            if rt.store.one("SELECT 1 FROM subscription WHERE id = ?", (row["id"],)) is None:
                continue  # removed by an event triggered just before
            context = rt.context(instance_id)
            event = context.model.activities[row["activity_id"]]
            chain = set(rt.chain(row["execution_id"]))
            relevant = [name for execution_id, name in changes if execution_id in chain]
            if not relevant or (event.condition_variable and name_filter(event, relevant)):
                continue
            if event.condition is not None and _holds(rt, context, event, row["execution_id"]):
                trigger(rt, context, event, row)


def name_filter(event: Activity, names: list[str]) -> bool:
    """True when ``camunda:variableName`` excludes every change (a creation check, name "", always counts)."""
    return "" not in names and event.condition_variable not in names


def _holds(rt: Runtime, context: InstanceContext, event: Activity, execution_id: str) -> bool:
    try:
        assert event.condition is not None
        return rt.condition(context, event.condition, execution_id)
    except ProcessEngineException as exc:
        if "Unknown property used in expression" in exc.message:
            return False
        raise


def trigger(rt: Runtime, context: InstanceContext, event: Activity, subscription: Row) -> None:
    """The awaited message or condition arrived: a boundary event fires on its host, a catch event or
    receive task leaves its wait state."""
    execution_id = subscription["execution_id"]
    waiting = rt.execution(execution_id)
    if waiting is not None and waiting["kind"] == "event-gateway":
        rt.gateway_event(context, event, execution_id)
    elif event.kind == "boundaryEvent":
        if event.cancel_activity:
            rt.store.run("DELETE FROM subscription WHERE id = ?", (subscription["id"],))
        rt.trigger_boundary(context, event, execution_id)
    else:
        rt.store.run("DELETE FROM subscription WHERE id = ?", (subscription["id"],))
        rt._leave_wait_state(context, execution_id, event)


@dataclass
class Correlation:
    """``POST /message``: what to match and what to set."""

    name: str
    business_key: str | None = None
    process_instance_id: str | None = None
    tenant_id: str | None = None
    without_tenant: bool = False
    correlation_keys: dict[str, TypedValue] | None = None
    local_correlation_keys: dict[str, TypedValue] | None = None
    variables: dict[str, TypedValue] | None = None
    local_variables: dict[str, TypedValue] | None = None
    all: bool = False


def _matches(rt: Runtime, row: Row, correlation: Correlation) -> bool:
    instance = rt.store.one("SELECT business_key, tenant_id FROM process_instance WHERE id = ?",
                            (row["proc_inst_id"],))
    if instance is None:
        return False
    if correlation.process_instance_id and row["proc_inst_id"] != correlation.process_instance_id:
        return False
    if correlation.business_key is not None and instance["business_key"] != correlation.business_key:
        return False
    if correlation.tenant_id is not None and instance["tenant_id"] != correlation.tenant_id:
        return False
    if correlation.without_tenant and instance["tenant_id"] is not None:
        return False
    for name, expected in (correlation.correlation_keys or {}).items():
        if _value(rt.local(row["proc_inst_id"], name)) != _value(expected):
            return False
    for name, expected in (correlation.local_correlation_keys or {}).items():
        if _value(rt.local(row["execution_id"], name)) != _value(expected):
            return False
    return True


def _value(typed: TypedValue | None) -> Any:
    return None if typed is None else typed.value


def correlate(rt: Runtime, correlation: Correlation) -> list[tuple[str, Row | None, str]]:
    """Deliver a message; returns ``(result type, waiting execution row or None, process instance id)`` for
    each delivery. Raises :class:`ProcessEngineException` with Camunda's message when nothing or more than
    one thing matches (and ``all`` is not set)."""
    rows = [row for row in rt.store.all("SELECT * FROM subscription WHERE kind = 'message' AND name = ? "
                                        "ORDER BY created, rowid", (correlation.name,))
            if _matches(rt, row, correlation)]
    if not correlation.all and len(rows) > 1:
        raise ProcessEngineException(
            f"Cannot correlate a message with name '{correlation.name}' to a single execution. {len(rows)} "
            "executions match the correlation keys: CorrelationSet [businessKey="
            f"{correlation.business_key}, processInstanceId={correlation.process_instance_id}]")
    results: list[tuple[str, Row | None, str]] = []
    for row in rows if correlation.all else rows[:1]:
        if rt.store.one("SELECT 1 FROM subscription WHERE id = ?", (row["id"],)) is None:
            continue
        execution = rt.execution(row["execution_id"])
        context = rt.context(row["proc_inst_id"])
        for name, typed in (correlation.variables or {}).items():
            rt.set_variable(row["execution_id"], name, typed)
        for name, typed in (correlation.local_variables or {}).items():
            rt.set_local(row["execution_id"], name, typed)
        trigger(rt, context, context.model.activities[row["activity_id"]], row)
        results.append(("Execution", execution, row["proc_inst_id"]))
    if not results and correlation.process_instance_id is None and not correlation.correlation_keys \
            and not correlation.local_correlation_keys:
        for definition, event_id in _start_events(rt, correlation.name, "message_starts", correlation.tenant_id,
                                                  correlation.without_tenant):
            instance_id = rt.start_instance(definition, dict(correlation.variables or {}),
                                            correlation.business_key, event_id, run_now=False)
            results.append(("ProcessDefinition", None, instance_id))
            if not correlation.all:
                break
    if not results:
        raise ProcessEngineException(f"Cannot correlate message '{correlation.name}': No process definition or "
                                     "execution matches the parameters")
    rt.run()
    return results


def _start_events(rt: Runtime, name: str, starts: str, tenant_id: str | None = None,
                  without_tenant: bool = False) -> list[tuple[Row, str]]:
    """The latest version of every process whose message or signal start event (``starts`` names the
    model's map) waits for ``name``."""
    found = []
    for row in rt.store.all("SELECT DISTINCT key, tenant_id FROM definition"):
        if (tenant_id is not None and row["tenant_id"] != tenant_id) or (without_tenant and row["tenant_id"]):
            continue
        definition = rt.store.row("SELECT * FROM definition WHERE key = ? AND tenant_id IS ? ORDER BY version DESC "
                                  "LIMIT 1", (row["key"], row["tenant_id"]))
        event_id = getattr(rt._models(definition["id"]), starts).get(name)
        if event_id is not None:
            found.append((definition, event_id))
    return found


def broadcast(rt: Runtime, name: str, variables: dict[str, TypedValue] | None = None,
              execution_id: str | None = None) -> int:
    """A signal reaches every execution waiting for it (or only ``execution_id``) and, unless aimed at one
    execution, starts every process with a matching signal start event; returns how many it reached."""
    rows = rt.store.all("SELECT * FROM subscription WHERE kind = 'signal' AND name = ? ORDER BY created, rowid",
                        (name,))
    reached = 0
    for row in rows:
        if (execution_id is not None and row["execution_id"] != execution_id) or rt.store.one(
                "SELECT 1 FROM subscription WHERE id = ?", (row["id"],)) is None:
            continue
        for variable, typed in (variables or {}).items():
            rt.set_variable(row["execution_id"], variable, typed)
        context = rt.context(row["proc_inst_id"])
        trigger(rt, context, context.model.activities[row["activity_id"]], row)
        reached += 1
    if execution_id is None:
        for definition, event_id in _start_events(rt, name, "signal_starts"):
            rt.start_instance(definition, dict(variables or {}), None, event_id, run_now=False)
            reached += 1
    return reached
