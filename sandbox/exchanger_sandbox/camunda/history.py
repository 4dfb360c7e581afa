"""Variable and incident history at Camunda's default history level (``audit``... ``full`` details).

Every variable a command sets becomes (or updates) a historic variable instance that outlives its
execution, and every write is also a ``variableUpdate`` detail, so ``/history/variable-instance`` and
``/history/detail`` show what a finished process decided. Incidents are copied to a history table that
records when they were resolved or deleted.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exchanger_sandbox.camunda.runtime import Runtime


def _act_inst(rt: Runtime, execution_id: str) -> str | None:
    known = rt._act_insts.get(execution_id)  # executions created by this command
    if known is not None:
        return known
    row = rt.store.one("SELECT act_inst_id FROM execution WHERE id = ?", (execution_id,))
    return row[0] if row is not None else None


def variable_set(rt: Runtime, execution_id: str, instance_id: str, name: str, encoded: tuple[str, str, str]) -> None:
    """Record a variable write: a new historic instance on creation, a revision on update, a detail each time."""
    type_name, value, info = encoded
    current = rt.store.one("SELECT id, revision FROM variable_history WHERE execution_id = ? AND name = ? "
                           "AND state = 'CREATED'", (execution_id, name))
    context = rt.context(instance_id)
    act_inst = _act_inst(rt, execution_id)
    if current is None:
        var_id, revision = str(uuid.uuid4()), 0
        rt.store.insert("variable_history", {
            "id": var_id, "name": name, "execution_id": execution_id, "proc_inst_id": instance_id,
            "act_inst_id": act_inst, "definition_id": context.definition_id,
            "definition_key": context.definition_key, "tenant_id": context.tenant_id, "type": type_name,
            "value": value, "info": info, "state": "CREATED", "create_time": rt.now, "revision": 0})
    else:
        var_id, revision = current["id"], current["revision"] + 1
        rt.store.run("UPDATE variable_history SET type = ?, value = ?, info = ?, revision = ? WHERE id = ?",
                     (type_name, value, info, revision, var_id))
    rt.store.insert("variable_detail", {
        "id": str(uuid.uuid4()), "var_inst_id": var_id, "name": name, "execution_id": execution_id,
        "proc_inst_id": instance_id, "act_inst_id": act_inst, "definition_id": context.definition_id,
        "definition_key": context.definition_key, "tenant_id": context.tenant_id, "type": type_name,
        "value": value, "info": info, "time": rt.now, "revision": revision, "initial": int(current is None)})


def variable_removed(rt: Runtime, execution_id: str, name: str) -> None:
    """An explicit removal (not the end of its scope) marks the historic instance DELETED."""
    rt.store.run("UPDATE variable_history SET state = 'DELETED', removal_time = ? WHERE execution_id = ? "
                 "AND name = ? AND state = 'CREATED'", (rt.now, execution_id, name))


def incident_created(rt: Runtime, incident: dict[str, Any]) -> None:
    key = rt.store.one("SELECT key FROM definition WHERE id = ?", (incident["definition_id"],))
    rt.store.insert("incident_history", {**incident, "definition_key": key[0] if key else None, "state": "open"})


def incidents_ended(rt: Runtime, where: str, params: tuple[Any, ...], state: str) -> None:
    """Close the open historic incidents matching ``where`` (``resolved`` or ``deleted``)."""
    rt.store.run(f"UPDATE incident_history SET state = ?, end_time = ? WHERE state = 'open' AND id IN "
                 f"(SELECT id FROM incident WHERE {where})", (state, rt.now, *params))
