"""The token engine: moves executions through a process model inside one store transaction.

Executions are rows: the process instance (``kind='process'``), an embedded subprocess scope
(``'subprocess'``), a multi-instance body and its inner instances (``'mi-body'``, ``'mi-inner'``, see
:mod:`.multi_instance`) and every waiting token (``'task'`` for an external task, ``'timer'``,
``'message'`` or ``'conditional'`` for a catch event or receive task, ``'call'`` for a call activity
waiting on the instance it started (:mod:`.calls`), ``'join'`` for a token waiting at a parallel or
inclusive join). Messages and conditions are subscriptions (:mod:`.events`), timer arithmetic lives in
:mod:`.timers`, variable and incident history in :mod:`.history`. Each row is also a
variable scope, so an external task's input parameters and local variables live on its own
execution and vanish with it, as in Camunda. Nothing here commits: :class:`~.engine.Engine` wraps
each command in a transaction, so any exception (an unknown variable in a condition, a gateway
without a usable flow) leaves the store exactly as it was.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from sqlite3 import Row
from typing import Any

from exchanger.bpmn import timers
from exchanger.bpmn.errors import ProcessEngineException
from exchanger.bpmn.juel import ContextObject, Expression, JuelError, UnknownIdentifier
from exchanger.bpmn.parser import Activity, Param, ProcessModel
from exchanger_sandbox.camunda import calls, events, history, multi_instance
from exchanger_sandbox.camunda.clock import Clock
from exchanger_sandbox.camunda.store import Store
from exchanger_sandbox.camunda.variables import NULL, TypedValue, decode, encode, infer, to_python

# Activity type names as Camunda writes them into the history.
_HISTORY_TYPES = {
    ("startEvent", "none"): "startEvent",
    ("endEvent", "none"): "noneEndEvent",
    ("endEvent", "error"): "errorEndEvent",
    ("endEvent", "terminate"): "terminateEndEvent",
    ("endEvent", "message"): "messageEndEvent",
    ("intermediateThrowEvent", "message"): "intermediateMessageThrowEvent",
    ("intermediateThrowEvent", "none"): "intermediateNoneThrowEvent",
    ("intermediateCatchEvent", "timer"): "intermediateTimer",
    ("intermediateCatchEvent", "message"): "intermediateMessageCatch",
    ("intermediateCatchEvent", "conditional"): "intermediateConditional",
    ("startEvent", "timer"): "startTimerEvent",
    ("startEvent", "message"): "messageStartEvent",
    ("boundaryEvent", "error"): "boundaryError",
    ("boundaryEvent", "timer"): "boundaryTimer",
    ("boundaryEvent", "message"): "boundaryMessage",
    ("boundaryEvent", "conditional"): "boundaryConditional",
    ("intermediateCatchEvent", "signal"): "intermediateSignalCatch",
    ("intermediateThrowEvent", "signal"): "intermediateSignalThrow",
    ("endEvent", "signal"): "signalEndEvent",
    ("startEvent", "signal"): "signalStartEvent",
    ("boundaryEvent", "signal"): "boundarySignal",
}


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class InstanceContext:
    """What every step of one process instance needs to know about it."""

    id: str
    model: ProcessModel
    definition_id: str
    definition_key: str
    version_tag: str | None
    tenant_id: str | None
    business_key: str | None


class ExecutionView(ContextObject):
    """``execution`` inside expressions."""

    juel_methods = frozenset({"getVariable", "getVariableLocal", "hasVariable", "getId", "getProcessInstanceId",
                              "getActivityId", "getProcessBusinessKey", "getBusinessKey", "getTenantId",
                              "getProcessDefinitionId"})

    def __init__(self, runtime: Runtime, context: InstanceContext, execution_id: str) -> None:
        self._runtime = runtime
        self._context = context
        self._execution_id = execution_id

    def getVariable(self, name: str) -> Any:  # noqa: N802 - Java method names, as expressions call them
        typed = self._runtime.lookup(self._execution_id, name)
        return to_python(typed) if typed is not None else None

    def getVariableLocal(self, name: str) -> Any:  # noqa: N802
        typed = self._runtime.local(self._execution_id, name)
        return to_python(typed) if typed is not None else None

    def hasVariable(self, name: str) -> bool:  # noqa: N802
        return self._runtime.lookup(self._execution_id, name) is not None

    def getId(self) -> str:  # noqa: N802
        return self._execution_id

    def getProcessInstanceId(self) -> str:  # noqa: N802
        return self._context.id

    def getActivityId(self) -> str | None:  # noqa: N802
        row = self._runtime.execution(self._execution_id)
        return row["activity_id"] if row is not None else None

    def getProcessBusinessKey(self) -> str | None:  # noqa: N802
        return self._context.business_key

    getBusinessKey = getProcessBusinessKey  # noqa: N815

    def getTenantId(self) -> str | None:  # noqa: N802
        return self._context.tenant_id

    def getProcessDefinitionId(self) -> str:  # noqa: N802
        return self._context.definition_id


class Runtime:
    """One command's view of the engine state; create one per transaction."""

    def __init__(self, store: Store, clock: Clock, models: Callable[[str], ProcessModel],
                 contexts: dict[str, InstanceContext] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.now = clock.now_ms()
        self._models = models
        self._contexts = contexts if contexts is not None else {}  # immutable facts, may outlive the command
        self._parents: dict[str, str | None] = {}
        self._act_insts: dict[str, str] = {}  # execution id -> its activity instance id (for the history)
        self._agenda: deque[tuple[InstanceContext, str, str]] = deque()  # (context, activity id, scope id)
        self._touched: set[tuple[str, str]] = set()  # (instance id, scope id) that may release inclusive joins
        self.tasks_changed = False  # long polls should look again after the commit
        self._changes: list[tuple[str, str]] = []  # (execution id, variable name) set since conditions were checked

    # ------------------------------------------------------------------------------ lookups

    def context(self, instance_id: str) -> InstanceContext:
        context = self._contexts.get(instance_id)
        if context is None:
            row = self.store.one(
                "SELECT p.id, p.definition_id, p.definition_key, p.business_key, p.tenant_id, d.version_tag "
                "FROM process_instance p JOIN definition d ON d.id = p.definition_id WHERE p.id = ?",
                (instance_id,),
            )
            if row is None:
                raise ProcessEngineException(f"execution {instance_id} doesn't exist: execution is null")
            context = InstanceContext(row["id"], self._models(row["definition_id"]), row["definition_id"],
                                      row["definition_key"], row["version_tag"], row["tenant_id"],
                                      row["business_key"])
            self._contexts[instance_id] = context
        return context

    def execution(self, execution_id: str) -> Row | None:
        return self.store.one("SELECT * FROM execution WHERE id = ?", (execution_id,))

    def existing(self, execution_id: str) -> Row:
        """The execution the engine holds the id of (a bug, not a user error, if it is gone)."""
        return self.store.row("SELECT * FROM execution WHERE id = ?", (execution_id,))

    def _parent(self, execution_id: str) -> str | None:
        if execution_id not in self._parents:
            row = self.store.one("SELECT parent_id FROM execution WHERE id = ?", (execution_id,))
            self._parents[execution_id] = row[0] if row is not None else None
        return self._parents[execution_id]

    def chain(self, execution_id: str) -> list[str]:
        """The execution and its enclosing scopes, innermost first, up to the process instance."""
        chain = [execution_id]
        parent = self._parent(execution_id)
        while parent is not None:
            chain.append(parent)
            parent = self._parent(parent)
        return chain

    # ---------------------------------------------------------------------------- variables

    def local(self, execution_id: str, name: str) -> TypedValue | None:
        row = self.store.one("SELECT type, value, info FROM variable WHERE execution_id = ? AND name = ?",
                             (execution_id, name))
        return decode(row[0], row[1], row[2]) if row is not None else None

    def lookup(self, execution_id: str, name: str) -> TypedValue | None:
        """The variable ``name`` as seen from an execution (the innermost scope that has it)."""
        for scope in self.chain(execution_id):
            typed = self.local(scope, name)
            if typed is not None:
                return typed
        return None

    def visible(self, execution_id: str, names: list[str] | None = None, local_only: bool = False,
                ) -> dict[str, TypedValue]:
        """Variables visible from an execution (inner scopes win); ``names`` restricts them."""
        result: dict[str, TypedValue] = {}
        scopes = [execution_id] if local_only else self.chain(execution_id)
        for scope in scopes:
            for row in self.store.all("SELECT name, type, value, info FROM variable WHERE execution_id = ?", (scope,)):
                if row[0] not in result and (names is None or row[0] in names):
                    result[row[0]] = decode(row[1], row[2], row[3])
        return result

    def set_local(self, execution_id: str, name: str, typed: TypedValue) -> None:
        type_name, value, info = encode(typed)
        instance_id = self.chain(execution_id)[-1]
        self.store.run(
            "INSERT INTO variable (execution_id, name, proc_inst_id, type, value, info) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(execution_id, name) DO UPDATE SET type = excluded.type, value = excluded.value, "
            "info = excluded.info",
            (execution_id, name, instance_id, type_name, value, info),
        )
        history.variable_set(self, execution_id, instance_id, name, (type_name, value, info))
        self._changes.append((execution_id, name))

    def set_variable(self, execution_id: str, name: str, typed: TypedValue) -> None:
        """Camunda's ``setVariable``: the innermost scope that already has ``name``, else the instance."""
        chain = self.chain(execution_id)
        for scope in chain:
            if self.store.one("SELECT 1 FROM variable WHERE execution_id = ? AND name = ?", (scope, name)):
                self.set_local(scope, name, typed)
                return
        self.set_local(chain[-1], name, typed)

    def remove_local(self, execution_id: str, name: str) -> None:
        if self.store.run("DELETE FROM variable WHERE execution_id = ? AND name = ?", (execution_id, name)):
            history.variable_removed(self, execution_id, name)
            self._changes.append((execution_id, name))

    # --------------------------------------------------------------------------- expressions

    def evaluate(self, context: InstanceContext, expression: Expression, execution_id: str) -> Any:
        """Evaluate with the variables visible from ``execution_id``; failures are Camunda's 500."""

        def resolve(name: str) -> Any:
            typed = self.lookup(execution_id, name)
            if typed is not None:
                return to_python(typed)
            if name == "execution":
                return ExecutionView(self, context, execution_id)
            raise KeyError(name)

        try:
            return expression.evaluate(resolve)
        except UnknownIdentifier as exc:
            raise ProcessEngineException(
                f"Unknown property used in expression: {expression.source}. Cause: Cannot resolve identifier "
                f"'{exc.name}'"
            ) from None
        except JuelError as exc:
            raise ProcessEngineException(
                f"Error while evaluating expression: {expression.source}. Cause: {exc}"
            ) from None

    def condition(self, context: InstanceContext, expression: Expression, execution_id: str) -> bool:
        result = self.evaluate(context, expression, execution_id)
        if not isinstance(result, bool):
            raise ProcessEngineException(
                f"condition expression returns non-Boolean: result has class {type(result).__name__} and not "
                "java.lang.Boolean"
            )
        return result

    def _param(self, context: InstanceContext, param: Param, execution_id: str) -> TypedValue:
        if param.kind == "null":
            return NULL
        if param.kind == "value" and param.expression is not None:
            parts = param.expression.parts
            if len(parts) == 1 and isinstance(parts[0], tuple) and parts[0][0] == "id":
                typed = self.lookup(execution_id, parts[0][1])
                if typed is not None:  # a plain ${name} keeps the variable's type
                    return typed
            return infer(self.evaluate(context, param.expression, execution_id))
        if param.kind == "list":
            return infer([to_python(self._param(context, item, execution_id)) for item in param.items])
        return infer({key: to_python(self._param(context, item, execution_id)) for key, item in param.entries})

    # ------------------------------------------------------------------------------- history

    def _history_start(self, context: InstanceContext, activity: Activity, act_inst_id: str, scope_id: str,
                       execution_id: str, ended: bool = False, body: bool = False) -> None:
        parent_act_inst = self._act_insts.get(scope_id)
        if parent_act_inst is None:
            scope = self.execution(scope_id)
            parent_act_inst = scope["act_inst_id"] if scope is not None else context.id
        self.store.insert("activity_instance", {
            "id": act_inst_id,
            "parent_act_inst_id": parent_act_inst,
            "activity_id": f"{activity.id}#multiInstanceBody" if body else activity.id,
            "activity_name": activity.name,
            "activity_type": "multiInstanceBody" if body else _HISTORY_TYPES.get((activity.kind, activity.event),
                                                                                  activity.kind),
            "proc_inst_id": context.id,
            "definition_id": context.definition_id,
            "definition_key": context.definition_key,
            "execution_id": execution_id,
            "start_time": self.now,
            "end_time": self.now if ended else None,
            "tenant_id": context.tenant_id,
        })

    def _history_end(self, act_inst_id: str, canceled: bool = False) -> None:
        self.store.run("UPDATE activity_instance SET end_time = ?, canceled = ? WHERE id = ? AND end_time IS NULL",
                       (self.now, int(canceled), act_inst_id))

    # ------------------------------------------------------------------------------ commands

    def start_instance(self, definition: Row, variables: dict[str, TypedValue], business_key: str | None,
                       start_activity: str | None = None, super_execution: Row | None = None,
                       run_now: bool = True) -> str:
        """A new instance from ``start_activity`` (the none/only start event by default), run to its wait
        states unless ``run_now`` is false (started from inside a running command: queued on the agenda)."""
        instance_id = new_id()
        model = self._models(definition["id"])
        start = start_activity or model.start_event
        if not start:
            raise ProcessEngineException(
                f"Cannot start process instance of '{definition['key']}': the process has no none start event "
                "(it starts by timer or message)")
        self.store.insert("process_instance", {
            "id": instance_id, "definition_id": definition["id"], "definition_key": definition["key"],
            "business_key": business_key, "tenant_id": definition["tenant_id"], "start_time": self.now,
            "start_activity_id": start, "state": "ACTIVE",
            "super_execution_id": super_execution["id"] if super_execution is not None else None,
            "super_proc_inst_id": super_execution["proc_inst_id"] if super_execution is not None else None,
        })
        self.store.insert("execution", {"id": instance_id, "proc_inst_id": instance_id, "parent_id": None,
                                        "activity_id": None, "act_inst_id": instance_id, "kind": "process"})
        self._parents[instance_id] = None
        self._act_insts[instance_id] = instance_id
        for name, typed in variables.items():
            self.set_local(instance_id, name, typed)
        context = self.context(instance_id)
        self._agenda.append((context, start, instance_id))
        if run_now:
            self.run()
        return instance_id

    def complete_task(self, task: Row, variables: dict[str, TypedValue], local_variables: dict[str, TypedValue],
                      ) -> None:
        context = self.context(task["proc_inst_id"])
        execution_id = task["execution_id"]
        for name, typed in variables.items():
            self.set_variable(execution_id, name, typed)
        for name, typed in local_variables.items():
            self.set_local(execution_id, name, typed)
        events.dispatch_conditions(self)
        if self.execution(execution_id) is None:  # an interrupting conditional event took the token
            self.run()
            return
        if self._raise_error_definitions(context, task):
            return
        self._delete_task(task["id"])
        activity = context.model.activities[task["activity_id"]]
        self._leave_wait_state(context, execution_id, activity)
        self.run()

    def task_failed_variables(self, task: Row, variables: dict[str, TypedValue],
                              local_variables: dict[str, TypedValue]) -> bool:
        """Apply a failure's variables; True if a ``camunda:errorEventDefinition`` turned it into a BPMN error."""
        for name, typed in variables.items():
            self.set_variable(task["execution_id"], name, typed)
        for name, typed in local_variables.items():
            self.set_local(task["execution_id"], name, typed)
        return self._raise_error_definitions(self.context(task["proc_inst_id"]), task)

    def bpmn_error(self, task: Row, error_code: str, error_message: str | None,
                   variables: dict[str, TypedValue]) -> None:
        execution_id = task["execution_id"]
        for name, typed in variables.items():
            self.set_variable(execution_id, name, typed)
        self._delete_task(task["id"])
        context = self.context(task["proc_inst_id"])
        parent = self._parent(execution_id)
        if not self._throw_error(context, execution_id, error_code, error_message):
            self._cancel(execution_id, completed=True)  # uncaught: the path ends silently (Camunda default)
            if parent is not None:
                self._token_ended(context, parent)
        self.run()

    def _raise_error_definitions(self, context: InstanceContext, task: Row) -> bool:
        activity = context.model.activities[task["activity_id"]]
        for code, expression in activity.error_definitions:
            if self.condition(context, expression, task["execution_id"]):
                self.bpmn_error(task, code or "", task["error_message"], {})
                return True
        return False

    def cancel_instance(self, instance_id: str, reason: str | None) -> None:
        self._cancel(instance_id)
        self.store.run("UPDATE process_instance SET state = 'EXTERNALLY_TERMINATED', end_time = ?, "
                       "delete_reason = ? WHERE id = ?", (self.now, reason, instance_id))

    def fire_timer(self, timer: Row) -> None:
        """A due timer: a timer start event starts an instance; a boundary or catch event moves on. A cycle
        is re-armed for its next due time until its repeats run out."""
        if timer["definition_id"] and not timer["execution_id"]:
            definition = self.store.one("SELECT * FROM definition WHERE id = ?", (timer["definition_id"],))
            self._rearm_or_delete(timer)
            if definition is not None:
                self.start_instance(definition, {}, None, timer["activity_id"])
            return
        context = self.context(timer["proc_inst_id"])
        activity = context.model.activities[timer["activity_id"]]
        execution_id = timer["execution_id"]
        if activity.kind == "boundaryEvent":
            self.trigger_boundary(context, activity, execution_id)
            self._rearm_or_delete(timer)
        elif self.existing(execution_id)["kind"] == "event-gateway":
            self.gateway_event(context, activity, execution_id)
        else:
            self.store.run("DELETE FROM timer WHERE id = ?", (timer["id"],))
            self._leave_wait_state(context, execution_id, activity)
        self.run()

    def _rearm_or_delete(self, timer: Row) -> None:
        remaining = timer["remaining"]
        if timer["cycle"] and (remaining is None or remaining > 0):
            due = timers.parse_cycle(timer["cycle"]).next_due(timer["due"], self.now)
            self.store.run("UPDATE timer SET due = ?, remaining = ? WHERE id = ?",
                           (due, None if remaining is None else remaining - 1, timer["id"]))
        else:
            self.store.run("DELETE FROM timer WHERE id = ?", (timer["id"],))

    def gateway_event(self, context: InstanceContext, event: Activity, gateway_execution: str) -> None:
        """The first event after an event-based gateway arrived: the others stop waiting, the token passes
        the event that came."""
        row = self.existing(gateway_execution)
        scope_id = self._parent(gateway_execution) or context.id
        self._remove_execution(gateway_execution)  # with the other events' timers and subscriptions
        self._history_end(row["act_inst_id"])
        self._history_start(context, event, f"{event.id}:{new_id()}", scope_id, scope_id, ended=True)
        self._leave(context, event, scope_id)

    def trigger_boundary(self, context: InstanceContext, boundary: Activity, host_execution: str) -> None:
        """A timer, message or conditional boundary event fires on the host's execution."""
        parent = self._parent(host_execution) or context.id
        if boundary.cancel_activity:
            self._cancel(host_execution)
            self._touched.add((context.id, parent))
        self._agenda.append((context, boundary.id, parent))

    def arm_start_timers(self, definition: Row, model: ProcessModel) -> None:
        """A deployed version's timer start events replace those of the versions before it (as in Camunda)."""
        self.store.run("DELETE FROM timer WHERE execution_id = '' AND definition_id IN (SELECT id FROM definition "
                       "WHERE key = ? AND tenant_id IS ? AND id != ?)",
                       (definition["key"], definition["tenant_id"], definition["id"]))
        for event_id in model.timer_starts:
            event = model.activities[event_id]
            if event.timer is None:
                continue
            kind, expression = event.timer
            text = str(expression.evaluate(_no_variables)).strip()
            due, cycle, remaining = timers.first_due(kind, text, self.now)
            self.store.insert("timer", {"id": new_id(), "execution_id": "", "proc_inst_id": "",
                                        "activity_id": event_id, "due": due, "definition_id": definition["id"],
                                        "cycle": cycle, "remaining": remaining})

    # ----------------------------------------------------------------------------- execution

    def run(self) -> None:
        """Work the agenda until every token waits or has ended, then release inclusive joins."""
        while self._agenda or self._touched or self._changes:
            while self._agenda:
                context, activity_id, scope_id = self._agenda.popleft()
                self._enter(context, context.model.activities[activity_id], scope_id)
            if self._changes:
                events.dispatch_conditions(self)
            elif self._touched:
                instance_id, scope_id = self._touched.pop()
                self._release_inclusive_joins(self.context(instance_id), scope_id)

    def _new_execution(self, context: InstanceContext, scope_id: str, activity: Activity, act_inst_id: str,
                       kind: str) -> str:
        execution_id = new_id()
        self.store.insert("execution", {"id": execution_id, "proc_inst_id": context.id, "parent_id": scope_id,
                                        "activity_id": activity.id, "act_inst_id": act_inst_id, "kind": kind})
        self._parents[execution_id] = scope_id
        self._act_insts[execution_id] = act_inst_id
        return execution_id

    def _enter(self, context: InstanceContext, activity: Activity, scope_id: str) -> None:
        if activity.loop is not None and not multi_instance.is_inner(self, activity, scope_id):
            multi_instance.enter(self, context, activity, scope_id)
            return
        act_inst_id = f"{activity.id}:{new_id()}"
        kind = activity.kind
        if activity.external or kind in ("subProcess", "callActivity", "receiveTask"):
            execution_kind = {"subProcess": "subprocess", "callActivity": "call", "receiveTask": "message"}
            execution_id = self._new_execution(context, scope_id, activity, act_inst_id,
                                               execution_kind.get(kind, "task"))
            self._history_start(context, activity, act_inst_id, scope_id, execution_id)
            for name, param in activity.inputs:
                self.set_local(execution_id, name, self._param(context, param, scope_id))
            if activity.loop is None:
                self.arm_boundaries(context, activity, execution_id)
            if activity.external:
                self._create_task(context, activity, execution_id, act_inst_id)
            elif kind == "subProcess":
                self._agenda.append((context, activity.start_event or "", execution_id))
            elif kind == "callActivity":
                calls.call(self, context, activity, execution_id)
            else:
                events.subscribe(self, context, activity, execution_id)
            return
        if kind == "intermediateCatchEvent":
            execution_id = self._new_execution(context, scope_id, activity, act_inst_id, activity.event)
            self._history_start(context, activity, act_inst_id, scope_id, execution_id)
            if activity.event == "timer":
                self._arm_timer(context, activity, execution_id, execution_id)
            else:
                events.subscribe(self, context, activity, execution_id)
            return
        if kind == "eventBasedGateway":
            execution_id = self._new_execution(context, scope_id, activity, act_inst_id, "event-gateway")
            self._history_start(context, activity, act_inst_id, scope_id, execution_id)
            for flow in activity.outgoing:
                event = context.model.activities[flow.target]
                if event.event == "timer":
                    self._arm_timer(context, event, execution_id, scope_id)
                else:
                    events.subscribe(self, context, event, execution_id)
            return
        if kind in ("parallelGateway", "inclusiveGateway") and len(activity.incoming) > 1:
            execution_id = self._new_execution(context, scope_id, activity, act_inst_id, "join")
            self._history_start(context, activity, act_inst_id, scope_id, execution_id)
            if kind == "parallelGateway":
                self._release_parallel_join(context, activity, scope_id)
            else:
                self._touched.add((context.id, scope_id))
            return
        self._history_start(context, activity, act_inst_id, scope_id, scope_id, ended=True)
        if kind == "endEvent":
            self._end_event(context, activity, scope_id)
        elif kind == "exclusiveGateway":
            self._agenda.append((context, self._exclusive_choice(context, activity, scope_id).target, scope_id))
        elif kind == "inclusiveGateway":
            self._take(context, self._inclusive_choice(context, activity, scope_id), scope_id)
        else:  # start events, parallel forks, none and signal throw events, boundary events
            if kind == "intermediateThrowEvent" and activity.event == "signal":
                events.broadcast(self, activity.event_name or "")
            self._leave(context, activity, scope_id)

    def _end_event(self, context: InstanceContext, activity: Activity, scope_id: str) -> None:
        if activity.event == "error":
            if not self._throw_error(context, scope_id, activity.error_code or "", None):
                self._token_ended(context, scope_id)
        elif activity.event == "signal":
            events.broadcast(self, activity.event_name or "")
            self._token_ended(context, scope_id)
        elif activity.event == "terminate":
            for child in self.store.all("SELECT id FROM execution WHERE parent_id = ?", (scope_id,)):
                self._cancel(child[0])
            self._complete_scope(context, scope_id, activity.id)
        else:
            self._token_ended(context, scope_id)

    def _leave(self, context: InstanceContext, activity: Activity, scope_id: str) -> None:
        """Take the outgoing flows: unconditional ones and true conditions, else the default flow."""
        if activity.loop is not None and multi_instance.is_inner(self, activity, scope_id):
            multi_instance.inner_done(self, context, activity, scope_id)
            return
        if activity.kind == "parallelGateway":
            self._take(context, activity.outgoing, scope_id)
            return
        chosen = [flow for flow in activity.outgoing if flow.id != activity.default_flow and (
            flow.condition is None or self.condition(context, flow.condition, scope_id))]
        if not chosen and activity.default_flow:
            chosen = [flow for flow in activity.outgoing if flow.id == activity.default_flow]
        if not chosen:
            self._token_ended(context, scope_id)
            return
        self._take(context, chosen, scope_id)

    def _take(self, context: InstanceContext, flows: list, scope_id: str) -> None:
        for flow in flows:
            self._agenda.append((context, flow.target, scope_id))

    def _no_flow(self, activity: Activity) -> ProcessEngineException:
        return ProcessEngineException(
            f"ENGINE-02004 No outgoing sequence flow for the element with id '{activity.id}' could be selected for "
            "continuing the process."
        )

    def _exclusive_choice(self, context: InstanceContext, activity: Activity, scope_id: str) -> Any:
        for flow in activity.outgoing:
            if flow.id == activity.default_flow:
                continue
            if flow.condition is None or self.condition(context, flow.condition, scope_id):
                return flow
        for flow in activity.outgoing:
            if flow.id == activity.default_flow:
                return flow
        raise self._no_flow(activity)

    def _inclusive_choice(self, context: InstanceContext, activity: Activity, scope_id: str) -> list:
        chosen = [flow for flow in activity.outgoing if flow.id != activity.default_flow and (
            flow.condition is None or self.condition(context, flow.condition, scope_id))]
        if not chosen:
            chosen = [flow for flow in activity.outgoing if flow.id == activity.default_flow]
        if not chosen:
            raise self._no_flow(activity)
        return chosen

    def _release_parallel_join(self, context: InstanceContext, activity: Activity, scope_id: str) -> None:
        waiting = self.store.all("SELECT id, act_inst_id FROM execution WHERE parent_id = ? AND activity_id = ? "
                                 "AND kind = 'join' ORDER BY rowid", (scope_id, activity.id))
        if len(waiting) >= len(activity.incoming):
            self._fire_join(context, activity, scope_id, waiting[: len(activity.incoming)])

    def _release_inclusive_joins(self, context: InstanceContext, scope_id: str) -> None:
        rows = self.store.all("SELECT id, activity_id, act_inst_id, kind FROM execution WHERE parent_id = ?",
                              (scope_id,))
        for gateway_id in {row["activity_id"] for row in rows if row["kind"] == "join"}:
            gateway = context.model.activities[gateway_id]
            if gateway.kind != "inclusiveGateway":
                continue
            waiting = [row for row in rows if row["kind"] == "join" and row["activity_id"] == gateway_id]
            others = [row for row in rows if not (row["kind"] == "join" and row["activity_id"] == gateway_id)]
            if len(waiting) >= len(gateway.incoming) or not any(
                    context.model.can_reach(row["activity_id"], gateway_id) for row in others):
                self._fire_join(context, gateway, scope_id, waiting)
                self._touched.add((context.id, scope_id))  # look again once the released token moved on
                return

    def _fire_join(self, context: InstanceContext, gateway: Activity, scope_id: str, waiting: list[Row]) -> None:
        for row in waiting:
            self._remove_execution(row["id"])
            self._history_end(row["act_inst_id"])
        if gateway.kind == "inclusiveGateway":
            self._take(context, self._inclusive_choice(context, gateway, scope_id), scope_id)
        else:
            self._take(context, gateway.outgoing, scope_id)

    def _leave_wait_state(self, context: InstanceContext, execution_id: str, activity: Activity) -> None:
        """A task or timer token moves on: map outputs, drop its scope, follow the flows."""
        outputs = [(name, self._param(context, param, execution_id)) for name, param in activity.outputs]
        row = self.execution(execution_id)
        scope_id = self._parent(execution_id) or context.id
        self._remove_execution(execution_id)
        if row is not None:
            self._history_end(row["act_inst_id"])
        for name, typed in outputs:
            self.set_variable(scope_id, name, typed)
        if activity.kind == "endEvent":
            self._token_ended(context, scope_id)
        else:
            self._leave(context, activity, scope_id)

    def _token_ended(self, context: InstanceContext, scope_id: str) -> None:
        """A path ended inside a scope; the scope completes when nothing is left in it."""
        self._touched.add((context.id, scope_id))
        if self.store.one("SELECT 1 FROM execution WHERE parent_id = ? LIMIT 1", (scope_id,)) is None:
            self._complete_scope(context, scope_id, None)

    def _complete_scope(self, context: InstanceContext, scope_id: str, end_activity: str | None) -> None:
        scope = self.execution(scope_id)
        if scope is None:
            return
        if scope["kind"] == "process":
            outputs = calls.outputs(self, context)
            self._remove_execution(scope_id)
            self.store.run("UPDATE process_instance SET state = 'COMPLETED', end_time = ?, end_activity_id = ? "
                           "WHERE id = ?", (self.now, end_activity, context.id))
            if outputs is not None:
                calls.returned(self, *outputs)
            return
        subprocess = context.model.activities[scope["activity_id"]]
        parent = scope["parent_id"]
        mapped = [(name, self._param(context, param, scope_id)) for name, param in subprocess.outputs]
        self._remove_execution(scope_id)
        self.store.run("UPDATE activity_instance SET complete_scope = 1 WHERE id = ?", (scope["act_inst_id"],))
        self._history_end(scope["act_inst_id"])
        for name, typed in mapped:
            self.set_variable(parent, name, typed)
        self._leave(context, subprocess, parent)

    def _throw_error(self, context: InstanceContext, execution_id: str, code: str, message: str | None) -> bool:
        """Find a catching boundary event walking up the scopes; True if one took the token."""
        current = self.execution(execution_id)
        while current is not None:
            if current["kind"] == "process":
                caller = calls.caller(self, current["id"])
                if caller is None:
                    return False
                context, current = caller
                continue
            activity = context.model.activities[current["activity_id"]]
            if activity.loop is not None and current["kind"] != "mi-body":
                current = self.execution(current["parent_id"]) if current["parent_id"] else None
                continue  # a multi-instance activity's boundary events belong to its body
            boundary = self._matching_boundary(context, activity, code)
            if boundary is not None:
                parent = current["parent_id"]
                self._cancel(current["id"])
                self._touched.add((context.id, parent))
                if boundary.error_code_variable:
                    self.set_local(parent, boundary.error_code_variable, TypedValue("String", code))
                if boundary.error_message_variable:
                    self.set_local(parent, boundary.error_message_variable, infer(message))
                self._agenda.append((context, boundary.id, parent))
                return True
            current = self.execution(current["parent_id"]) if current["parent_id"] else None
        return False

    def _matching_boundary(self, context: InstanceContext, activity: Activity, code: str) -> Activity | None:
        catch_all = None
        for boundary_id in activity.boundaries:
            boundary = context.model.activities[boundary_id]
            if boundary.event != "error":
                continue
            if boundary.error_code == code:
                return boundary
            if boundary.error_code is None and catch_all is None:
                catch_all = boundary
        return catch_all

    # ------------------------------------------------------------------------ tasks and timers

    def _create_task(self, context: InstanceContext, activity: Activity, execution_id: str, act_inst_id: str) -> None:
        topic = self.evaluate(context, activity.topic, execution_id) if activity.topic is not None else ""
        priority_expression = activity.priority or context.model.task_priority
        priority = 0
        if priority_expression is not None:
            value = self.evaluate(context, priority_expression, execution_id)
            try:
                priority = int(value)
            except (TypeError, ValueError):
                raise ProcessEngineException(
                    f"Priority value is not an Integer nor a String representing an Integer: {value}") from None
        self.store.insert("external_task", {
            "id": new_id(), "topic": str(topic), "execution_id": execution_id,
            "proc_inst_id": context.id, "definition_id": context.definition_id,
            "definition_key": context.definition_key, "version_tag": context.version_tag,
            "activity_id": activity.id, "act_inst_id": act_inst_id, "tenant_id": context.tenant_id,
            "priority": priority, "business_key": context.business_key, "create_time": self.now,
        })
        self.tasks_changed = True

    def arm_boundaries(self, context: InstanceContext, activity: Activity, execution_id: str) -> None:
        """Timer, message and conditional boundary events start waiting with their host."""
        for boundary_id in activity.boundaries:
            boundary = context.model.activities[boundary_id]
            if boundary.event == "timer":
                self._arm_timer(context, boundary, execution_id, execution_id)
            elif boundary.event in ("message", "conditional", "signal"):
                events.subscribe(self, context, boundary, execution_id)

    def _arm_timer(self, context: InstanceContext, event: Activity, execution_id: str, scope_id: str) -> None:
        if event.timer is None:
            return
        kind, expression = event.timer
        text = str(self.evaluate(context, expression, scope_id)).strip()
        try:
            due, cycle, remaining = timers.first_due(kind, text, self.now)
        except ValueError as exc:
            raise ProcessEngineException(f"Invalid timer value '{text}' on '{event.id}': {exc}") from None
        self.store.insert("timer", {"id": new_id(), "execution_id": execution_id, "proc_inst_id": context.id,
                                    "activity_id": event.id, "due": due, "cycle": cycle, "remaining": remaining})

    def _delete_task(self, task_id: str) -> None:
        self.store.run("DELETE FROM external_task WHERE id = ?", (task_id,))
        where = "configuration = ? AND incident_type = 'failedExternalTask'"
        history.incidents_ended(self, where, (task_id,), "deleted")
        self.store.run(f"DELETE FROM incident WHERE {where}", (task_id,))

    def _remove_execution(self, execution_id: str) -> None:
        """Delete one execution with its variables, tasks, incidents and timers (no children)."""
        for row in self.store.all("SELECT id FROM external_task WHERE execution_id = ?", (execution_id,)):
            self._delete_task(row[0])
            self.tasks_changed = True
        self.store.run("DELETE FROM timer WHERE execution_id = ?", (execution_id,))
        self.store.run("DELETE FROM subscription WHERE execution_id = ?", (execution_id,))
        self.store.run("DELETE FROM variable WHERE execution_id = ?", (execution_id,))
        history.incidents_ended(self, "execution_id = ?", (execution_id,), "deleted")
        self.store.run("DELETE FROM incident WHERE execution_id = ?", (execution_id,))
        self.store.run("DELETE FROM execution WHERE id = ?", (execution_id,))

    def _cancel(self, execution_id: str, completed: bool = False) -> None:
        """Remove an execution and everything below it (a boundary event, a deletion, a terminate end)."""
        for child in self.store.all("SELECT id FROM execution WHERE parent_id = ?", (execution_id,)):
            self._cancel(child[0])
        row = self.execution(execution_id)
        if row is not None and row["kind"] == "call":
            calls.cancel_called(self, execution_id)
        self._remove_execution(execution_id)
        if row is not None and row["kind"] not in ("process", "mi-inner"):  # an inner instance shares its body's
            self._history_end(row["act_inst_id"], canceled=not completed)


def _no_variables(name: str) -> Any:
    """Resolver for expressions evaluated outside any instance (a timer start event's value)."""
    raise KeyError(name)
