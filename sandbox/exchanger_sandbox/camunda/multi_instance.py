"""Multi-instance activities (tasks, subprocesses, call activities), parallel or sequential.

As in Camunda, a multi-instance activity is a *body* execution (``kind='mi-body'``, history activity
``<id>#multiInstanceBody``) holding ``nrOfInstances``, ``nrOfCompletedInstances`` and
``nrOfActiveInstances``; each inner instance is an ``mi-inner`` execution holding ``loopCounter`` and
the ``camunda:elementVariable``, inside which the activity itself runs. Boundary events belong to the
body. The ``completionCondition`` is evaluated after each inner instance; when true, the remaining
inner instances are cancelled.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import TYPE_CHECKING, Any

from exchanger.bpmn.errors import ProcessEngineException
from exchanger.bpmn.parser import Activity
from exchanger_sandbox.camunda.variables import TypedValue, infer, to_python

if TYPE_CHECKING:
    from exchanger_sandbox.camunda.runtime import InstanceContext, Runtime


def is_inner(rt: Runtime, activity: Activity, scope_id: str) -> bool:
    """Whether ``scope_id`` is an inner instance of ``activity`` (so the activity itself runs there)."""
    row = rt.execution(scope_id)
    return row is not None and row["kind"] == "mi-inner" and row["activity_id"] == activity.id


def _integer(rt: Runtime, execution_id: str, name: str, value: int) -> None:
    rt.set_local(execution_id, name, TypedValue("Integer", value))


def _collection(rt: Runtime, context: InstanceContext, activity: Activity, scope_id: str) -> list[Any] | None:
    loop = activity.loop
    assert loop is not None
    if loop.collection is not None:
        value = rt.evaluate(context, loop.collection, scope_id)
    elif loop.collection_variable is not None:
        typed = rt.lookup(scope_id, loop.collection_variable)
        if typed is None:
            raise ProcessEngineException(f"Unknown property used in expression: ${{{loop.collection_variable}}}. "
                                         f"Cause: Cannot resolve identifier '{loop.collection_variable}'")
        value = to_python(typed)
    else:
        return None
    if isinstance(value, dict) or not isinstance(value, Sized) or isinstance(value, str):
        raise ProcessEngineException(f"ENGINE-02001 Variable '{loop.collection_variable or loop.collection}':"
                                     f"Could not resolve expression of type '{type(value).__name__}' to a collection")
    return list(value)  # type: ignore[call-overload]


def enter(rt: Runtime, context: InstanceContext, activity: Activity, scope_id: str) -> None:
    """Create the body and its first (sequential) or all (parallel) inner instances."""
    from exchanger_sandbox.camunda.runtime import new_id

    loop = activity.loop
    assert loop is not None
    elements = _collection(rt, context, activity, scope_id)
    if loop.cardinality is not None:
        value = rt.evaluate(context, loop.cardinality, scope_id)
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise ProcessEngineException(f"Could not resolve loopCardinality expression "
                                         f"'{loop.cardinality.source}': not a number") from None
        if count < 0:
            raise ProcessEngineException(f"Invalid number of instances: must be non-negative integer value, "
                                         f"but was {count}")
    else:
        count = len(elements or [])
    act_inst_id = f"{activity.id}#multiInstanceBody:{new_id()}"
    body = rt._new_execution(context, scope_id, activity, act_inst_id, "mi-body")
    rt._history_start(context, activity, act_inst_id, scope_id, body, body=True)
    _integer(rt, body, "nrOfInstances", count)
    _integer(rt, body, "nrOfCompletedInstances", 0)
    _integer(rt, body, "nrOfActiveInstances", count if not loop.sequential else min(count, 1))
    rt.arm_boundaries(context, activity, body)
    if count == 0:
        _finish(rt, context, activity, body)
        return
    for index in range(1 if loop.sequential else count):
        _start_inner(rt, context, activity, body, index, elements)


def _start_inner(rt: Runtime, context: InstanceContext, activity: Activity, body: str, index: int,
                 elements: list[Any] | None) -> None:
    loop = activity.loop
    assert loop is not None
    body_row = rt.existing(body)
    inner = rt._new_execution(context, body, activity, body_row["act_inst_id"], "mi-inner")
    _integer(rt, inner, "loopCounter", index)
    if loop.element_variable and elements is not None and index < len(elements):
        rt.set_local(inner, loop.element_variable, infer(elements[index]))
    rt._agenda.append((context, activity.id, inner))


def _counter(rt: Runtime, body: str, name: str) -> int:
    """One of the loop counters the body execution was given when the loop started."""
    typed = rt.local(body, name)
    assert typed is not None, f"multi-instance body {body} has no {name}"
    return int(to_python(typed))


def inner_done(rt: Runtime, context: InstanceContext, activity: Activity, inner: str) -> None:
    """One inner instance completed: count it, check the completion condition, go on or finish."""
    loop = activity.loop
    assert loop is not None
    body = rt._parent(inner) or context.id
    count = _counter(rt, body, "nrOfInstances")
    completed = _counter(rt, body, "nrOfCompletedInstances") + 1
    active = _counter(rt, body, "nrOfActiveInstances") - 1
    _integer(rt, body, "nrOfCompletedInstances", completed)
    _integer(rt, body, "nrOfActiveInstances", active)
    done = loop.completion is not None and rt.condition(context, loop.completion, inner)
    rt._remove_execution(inner)
    if done or completed >= count:
        for row in rt.store.all("SELECT id FROM execution WHERE parent_id = ?", (body,)):
            rt._cancel(row[0])
        _finish(rt, context, activity, body)
    elif loop.sequential:
        _integer(rt, body, "nrOfActiveInstances", 1)
        _start_inner(rt, context, activity, body, completed, _collection(rt, context, activity, body))


def _finish(rt: Runtime, context: InstanceContext, activity: Activity, body: str) -> None:
    row = rt.existing(body)
    parent = rt._parent(body) or context.id
    rt._remove_execution(body)
    rt._history_end(row["act_inst_id"])
    rt._leave(context, activity, parent)
