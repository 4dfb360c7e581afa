"""Call activities: start the called process (``calledElement`` by key, latest or a given version),
pass variables in and out (``camunda:in``/``camunda:out``: ``variables="all"``, ``source``/``target``,
``sourceExpression``, ``local``) and the business key, and resume the caller when the called
instance ends. A BPMN error the called instance does not catch is thrown at the call activity.
"""

from __future__ import annotations

from sqlite3 import Row
from typing import TYPE_CHECKING

from exchanger.bpmn.errors import ProcessEngineException
from exchanger.bpmn.parser import Activity, Mapping
from exchanger_sandbox.camunda.variables import NULL, TypedValue, infer

if TYPE_CHECKING:
    from exchanger_sandbox.camunda.runtime import InstanceContext, Runtime


def _mapped(rt: Runtime, context: InstanceContext, mappings: list[Mapping], execution_id: str,
            ) -> list[tuple[str, TypedValue, bool]]:
    """``(name, value, local)`` for each mapping, read from the variables visible at ``execution_id``."""
    result: list[tuple[str, TypedValue, bool]] = []
    for mapping in mappings:
        if mapping.all:
            result.extend((name, typed, mapping.local) for name, typed in rt.visible(execution_id).items())
        elif mapping.expression is not None and mapping.target:
            result.append((mapping.target, infer(rt.evaluate(context, mapping.expression, execution_id)),
                           mapping.local))
        elif mapping.source and mapping.target:
            result.append((mapping.target, rt.lookup(execution_id, mapping.source) or NULL, mapping.local))
    return result


def call(rt: Runtime, context: InstanceContext, activity: Activity, execution_id: str) -> None:
    """Start the called process from the call activity's execution ``execution_id``."""
    assert activity.called_element is not None
    key = str(rt.evaluate(context, activity.called_element, execution_id))
    if activity.called_version is not None:
        version = rt.evaluate(context, activity.called_version, execution_id)
        definition = rt.store.one("SELECT * FROM definition WHERE key = ? AND version = ? AND tenant_id IS ?",
                                  (key, int(version), context.tenant_id))
        missing = f"no processes deployed with key = '{key}' and version = '{version}'"
    else:
        definition = rt.store.one("SELECT * FROM definition WHERE key = ? AND tenant_id IS ? ORDER BY version DESC "
                                  "LIMIT 1", (key, context.tenant_id))
        missing = f"no processes deployed with key '{key}'"
    if definition is None:
        raise ProcessEngineException(missing)
    business_key = None
    if activity.business_key is not None:
        value = rt.evaluate(context, activity.business_key, execution_id)
        business_key = None if value is None else str(value)
    variables = {name: typed for name, typed, _ in _mapped(rt, context, activity.in_mappings, execution_id)}
    rt.start_instance(definition, variables, business_key, super_execution=rt.execution(execution_id),
                      run_now=False)


def outputs(rt: Runtime, context: InstanceContext) -> tuple[InstanceContext, str, list] | None:
    """When a called instance ends: the caller's context, its call execution and the ``camunda:out`` values
    (read before the called instance's variables go); None for an instance nobody called."""
    caller_row = rt.store.one("SELECT super_execution_id, super_proc_inst_id FROM process_instance WHERE id = ?",
                              (context.id,))
    if caller_row is None or caller_row["super_execution_id"] is None:
        return None
    call_execution = rt.execution(caller_row["super_execution_id"])
    if call_execution is None:
        return None
    caller = rt.context(caller_row["super_proc_inst_id"])
    activity = caller.model.activities[call_execution["activity_id"]]
    return caller, call_execution["id"], _mapped(rt, context, activity.out_mappings, context.id)


def returned(rt: Runtime, caller: InstanceContext, call_execution: str, values: list) -> None:
    """Set the ``camunda:out`` values on the caller and let the call activity continue."""
    for name, typed, local in values:
        if local:
            rt.set_local(call_execution, name, typed)
        else:
            rt.set_variable(call_execution, name, typed)
    row = rt.existing(call_execution)
    activity = caller.model.activities[row["activity_id"]]
    rt._leave_wait_state(caller, call_execution, activity)


def caller(rt: Runtime, instance_id: str) -> tuple[InstanceContext, Row] | None:
    """The calling instance's context and call execution, to throw an uncaught BPMN error there."""
    row = rt.store.one("SELECT super_execution_id, super_proc_inst_id FROM process_instance WHERE id = ?",
                       (instance_id,))
    if row is None or row["super_execution_id"] is None:
        return None
    execution = rt.execution(row["super_execution_id"])
    return (rt.context(row["super_proc_inst_id"]), execution) if execution is not None else None


def cancel_called(rt: Runtime, call_execution: str) -> None:
    """The call activity is cancelled (boundary event, deletion): so is the instance it called."""
    for row in rt.store.all("SELECT id FROM process_instance WHERE super_execution_id = ? AND state = 'ACTIVE'",
                            (call_execution,)):
        rt.cancel_instance(row["id"], "the calling activity was cancelled")
