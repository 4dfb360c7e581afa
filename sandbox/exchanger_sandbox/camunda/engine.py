"""The engine: one lock, one SQLite transaction per command, and the commands the REST layer calls.

Commands validate their input in Camunda's order (so the first failing check decides the error),
then run the token engine (:mod:`.runtime`) inside :meth:`Engine.command`. Anything raised rolls the
whole command back. Long polls wait on :attr:`Engine.tasks_signal`, which every command that
creates, unlocks or reschedules an external task notifies after its commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from sqlite3 import Row

from loguru import logger

from exchanger.bpmn import parser as bpmn
from exchanger.bpmn.errors import (
    BadUserRequestException,
    CamundaError,
    NotFoundException,
    NullValueException,
    ProcessEngineException,
    SuspendedEntityInteractionException,
    ensure_not_null,
)
from exchanger_sandbox.camunda import events, history
from exchanger_sandbox.camunda.clock import Clock
from exchanger_sandbox.camunda.runtime import InstanceContext, Runtime, new_id
from exchanger_sandbox.camunda.store import Store
from exchanger_sandbox.camunda.variables import TypedValue

# Camunda's default queue size for pending long polls (FetchAndLockHandlerImpl).
DEFAULT_MAX_PENDING_FETCHES = 200
# A timer whose firing fails is tried again this much later (Camunda retries failed timer jobs).
TIMER_RETRY_MS = 10_000
# Process-instance facts kept between commands (the cache is simply emptied when it grows past this).
MAX_CACHED_CONTEXTS = 10_000
# The timer thread looks for due timers at least this often (seconds of wall time).
TIMER_POLL_S = 0.5


def java_str(value: object) -> str:
    """How Java string concatenation prints a value (``null`` for None)."""
    return "null" if value is None else str(value)


def is_bpmn_resource(name: str) -> bool:
    return name.endswith((".bpmn", ".bpmn20.xml"))


class Engine:
    """Thread-safe facade over the store and the token engine."""

    def __init__(self, store: Store, clock: Clock, *, max_pending_fetches: int = DEFAULT_MAX_PENDING_FETCHES) -> None:
        self.store = store
        self.clock = clock
        self.lock = threading.RLock()
        self.tasks_signal = threading.Condition(self.lock)
        self.max_pending_fetches = max_pending_fetches
        self.pending_fetches = 0
        self.closed = False
        self._models: dict[str, bpmn.ProcessModel] = {}
        self._contexts: dict[str, InstanceContext] = {}  # per process instance, never changes
        self._timer_stop = threading.Event()
        self._timer_thread: threading.Thread | None = None
        clock.add_listener(self._clock_moved)

    # ------------------------------------------------------------------------------ plumbing

    @contextmanager
    def command(self) -> Iterator[Runtime]:
        """One transaction under the engine lock; long polls are woken after a commit that changed tasks."""
        with self.lock:
            if len(self._contexts) > MAX_CACHED_CONTEXTS:
                self._contexts.clear()
            runtime = Runtime(self.store, self.clock, self.model, self._contexts)
            with self.store.transaction():
                yield runtime
            if runtime.tasks_changed:
                self.tasks_signal.notify_all()

    @contextmanager
    def reading(self) -> Iterator[Store]:
        """Consistent reads for queries."""
        with self.lock:
            yield self.store

    def model(self, definition_id: str) -> bpmn.ProcessModel:
        """The parsed model of a deployed definition (parsed once, then cached)."""
        model = self._models.get(definition_id)
        if model is None:
            row = self.store.one(
                "SELECT d.key, r.name, r.bytes FROM definition d JOIN resource r ON r.id = d.resource_id "
                "WHERE d.id = ?", (definition_id,))
            if row is None:
                raise ProcessEngineException(f"no deployed process definition found with id '{definition_id}'")
            model = next(m for m in bpmn.parse(row["name"], row["bytes"]) if m.key == row["key"])
            self._models[definition_id] = model
        return model

    def start_timer_thread(self) -> None:
        self._timer_thread = threading.Thread(target=self._timer_loop, name="camunda-timers", daemon=True)
        self._timer_thread.start()

    def close(self) -> None:
        """Answer pending long polls with Camunda's shutdown error and stop the timer thread."""
        self._timer_stop.set()
        with self.lock:
            self.closed = True
            self.tasks_signal.notify_all()
        if self._timer_thread is not None:
            self._timer_thread.join(timeout=5)
        self.clock.remove_listener(self._clock_moved)

    def reset(self) -> None:
        """Forget everything (``POST /_admin/reset``)."""
        with self.command() as rt:
            for table in ("deployment", "resource", "definition", "process_instance", "execution", "variable",
                          "external_task", "incident", "timer", "activity_instance", "subscription",
                          "variable_history", "variable_detail", "incident_history"):
                rt.store.run(f"DELETE FROM {table}")
            self._models.clear()
            self._contexts.clear()

    # --------------------------------------------------------------------------- deployments

    def deploy(self, *, name: str | None, source: str | None, tenant_id: str | None,
               resources: list[tuple[str, bytes]], duplicate_filtering: bool, changed_only: bool,
               ) -> tuple[Row, list[Row] | None]:
        """Create a deployment; returns it and its new definitions (None when duplicate filtering kept
        the previous deployment)."""
        parsed = {res_name: bpmn.parse(res_name, data) for res_name, data in resources if is_bpmn_resource(res_name)}
        with self.command() as rt:
            store = rt.store
            if duplicate_filtering or changed_only:
                previous = store.one("SELECT * FROM deployment WHERE name IS ? AND source IS ? AND tenant_id IS ? "
                                     "ORDER BY deployment_time DESC, rowid DESC LIMIT 1", (name, source, tenant_id))
                if previous is not None:
                    old = {row["name"]: bytes(row["bytes"]) for row in
                           store.all("SELECT name, bytes FROM resource WHERE deployment_id = ?", (previous["id"],))}
                    changed = [(res_name, data) for res_name, data in resources if old.get(res_name) != data]
                    if not changed:
                        return previous, None
                    if changed_only:
                        resources = changed
            deployment_id = new_id()
            store.insert("deployment", {"id": deployment_id, "name": name, "source": source, "tenant_id": tenant_id,
                                        "deployment_time": rt.now})
            definition_ids: list[str] = []
            for res_name, data in resources:
                resource_id = new_id()
                store.insert("resource", {"id": resource_id, "deployment_id": deployment_id, "name": res_name,
                                          "bytes": data})
                for model in parsed.get(res_name, []):
                    latest = store.row("SELECT MAX(version) FROM definition WHERE key = ? AND tenant_id IS ?",
                                       (model.key, tenant_id))[0]
                    version = (latest or 0) + 1
                    definition_id = f"{model.key}:{version}:{new_id()}"
                    if len(definition_id) > 64:
                        definition_id = new_id()
                    store.insert("definition", {
                        "id": definition_id, "key": model.key, "name": model.name, "version": version,
                        "version_tag": model.version_tag, "resource_name": res_name, "resource_id": resource_id,
                        "deployment_id": deployment_id, "tenant_id": tenant_id, "history_ttl": model.history_ttl,
                        "startable": int(model.startable), "description": model.documentation,
                        "deployment_time": rt.now,
                    })
                    self._models[definition_id] = model
                    definition_ids.append(definition_id)
                    rt.arm_start_timers(store.row("SELECT * FROM definition WHERE id = ?", (definition_id,)), model)
            deployment = store.row("SELECT * FROM deployment WHERE id = ?", (deployment_id,))
            marks = ",".join("?" * len(definition_ids))
            definitions = store.all(f"SELECT * FROM definition WHERE id IN ({marks})", definition_ids)
            return deployment, definitions

    def delete_deployment(self, deployment_id: str, cascade: bool) -> None:
        with self.command() as rt:
            store = rt.store
            definitions = [row[0] for row in store.all("SELECT id FROM definition WHERE deployment_id = ?",
                                                        (deployment_id,))]
            marks = ",".join("?" * len(definitions))
            instances = [row[0] for row in store.all(
                f"SELECT id FROM process_instance WHERE definition_id IN ({marks}) AND state = 'ACTIVE'", definitions)]
            if instances and not cascade:
                raise ProcessEngineException("Deletion of process definition without cascading failed.")
            for instance_id in instances:
                rt.cancel_instance(instance_id, "deleted deployment")
            store.run(f"DELETE FROM timer WHERE execution_id = '' AND definition_id IN ({marks})", definitions)
            if cascade:
                for table in ("activity_instance", "process_instance", "variable_history", "variable_detail",
                              "incident_history"):
                    store.run(f"DELETE FROM {table} WHERE definition_id IN ({marks})", definitions)
            store.run("DELETE FROM definition WHERE deployment_id = ?", (deployment_id,))
            store.run("DELETE FROM resource WHERE deployment_id = ?", (deployment_id,))
            store.run("DELETE FROM deployment WHERE id = ?", (deployment_id,))
            for definition_id in definitions:
                self._models.pop(definition_id, None)

    # ---------------------------------------------------------------------- process instances

    def start_instance(self, definition_id: str, variables: dict[str, TypedValue], business_key: str | None,
                       ) -> tuple[Row, dict[str, TypedValue]]:
        """Start and run to the first wait states; returns the instance row and its variables."""
        with self.command() as rt:
            definition = rt.store.one("SELECT * FROM definition WHERE id = ?", (definition_id,))
            if definition is None:
                raise NotFoundException(f"No process definition found for id '{definition_id}'")
            instance_id = rt.start_instance(definition, variables, business_key)
            row = rt.store.row("SELECT * FROM process_instance WHERE id = ?", (instance_id,))
            return row, rt.visible(instance_id, local_only=True)

    def delete_instance(self, instance_id: str, reason: str | None = None) -> None:
        with self.command() as rt:
            if rt.store.one("SELECT 1 FROM process_instance WHERE id = ? AND state = 'ACTIVE'", (instance_id,)) is None:
                raise NotFoundException(f"No process instance found for id '{instance_id}': processInstance is null")
            rt.cancel_instance(instance_id, reason)

    def _require_execution(self, rt: Runtime, instance_id: str) -> None:
        if rt.execution(instance_id) is None:
            raise NullValueException(f"execution {instance_id} doesn't exist: execution is null")

    def instance_variables(self, instance_id: str) -> dict[str, TypedValue]:
        with self.command() as rt:
            self._require_execution(rt, instance_id)
            return rt.visible(instance_id, local_only=True)

    def modify_instance_variables(self, instance_id: str, modifications: dict[str, TypedValue],
                                  deletions: list[str]) -> None:
        with self.command() as rt:
            self._require_execution(rt, instance_id)
            for name in deletions:
                rt.remove_local(instance_id, name)
            for name, typed in modifications.items():
                rt.set_variable(instance_id, name, typed)
            rt.run()  # conditional events see the change

    # ------------------------------------------------------------------------- external tasks

    def _handled_task(self, rt: Runtime, task_id: str, worker_id: str, wrong_worker: str) -> Row:
        """``HandleExternalTaskCmd``: the task must exist and be locked by this worker."""
        task = rt.store.one("SELECT * FROM external_task WHERE id = ?", (task_id,))
        if task is None:
            raise NotFoundException(f"Cannot find external task with id {task_id}: externalTask is null")
        if worker_id != task["worker_id"]:
            raise BadUserRequestException(f"{wrong_worker}'. It is locked by worker '{java_str(task['worker_id'])}'.")
        self._ensure_active(task)
        return task

    def _ensure_active(self, task: Row) -> None:
        if task["suspended"]:
            raise SuspendedEntityInteractionException(f"ENGINE-03043 ExternalTask with id '{task['id']}' is suspended.")

    def _task(self, rt: Runtime, task_id: str) -> Row:
        task = rt.store.one("SELECT * FROM external_task WHERE id = ?", (task_id,))
        if task is None:
            raise NotFoundException(f"Cannot find external task with id {task_id}: externalTask is null")
        return task

    def complete(self, task_id: str, worker_id: str | None, variables: dict[str, TypedValue],
                 local_variables: dict[str, TypedValue]) -> None:
        ensure_not_null("workerId", worker_id)
        with self.command() as rt:
            task = self._handled_task(rt, task_id, str(worker_id),
                                      f"External Task {task_id} cannot be completed by worker '{worker_id}")
            rt.complete_task(task, variables, local_variables)

    def handle_failure(self, task_id: str, worker_id: str | None, error_message: str | None,
                       error_details: str | None, retries: int, retry_timeout: int,
                       variables: dict[str, TypedValue], local_variables: dict[str, TypedValue]) -> None:
        ensure_not_null("workerId", worker_id)
        if retries < 0:
            raise ProcessEngineException("retries is not greater than or equal to 0")
        if retry_timeout < 0:
            raise ProcessEngineException("retryDuration is not greater than or equal to 0")
        with self.command() as rt:
            task = self._handled_task(rt, task_id, str(worker_id),
                                      f"Failure of External Task {task_id} cannot be reported by worker '{worker_id}")
            if rt.task_failed_variables(task, variables, local_variables):
                return
            details = error_details if error_details is not None else task["error_details"]
            rt.store.run("UPDATE external_task SET error_message = ?, error_details = ?, lock_expiration = ? "
                         "WHERE id = ?", (error_message, details, rt.now + retry_timeout, task_id))
            self._set_retries(rt, task, retries, error_message)
            rt.tasks_changed = True

    def bpmn_error(self, task_id: str, worker_id: str | None, error_code: str | None, error_message: str | None,
                   variables: dict[str, TypedValue]) -> None:
        ensure_not_null("workerId", worker_id)
        ensure_not_null("errorCode", error_code)
        with self.command() as rt:
            task = self._handled_task(rt, task_id, str(worker_id),
                                      f"Bpmn error of External Task {task_id} cannot be reported by worker "
                                      f"'{worker_id}")
            rt.bpmn_error(task, str(error_code), error_message, variables)

    def extend_lock(self, task_id: str, worker_id: str | None, new_duration: int) -> None:
        ensure_not_null("workerId", worker_id)
        if new_duration <= 0:
            raise BadUserRequestException("lockTime is not greater than 0")
        with self.command() as rt:
            task = self._handled_task(rt, task_id, str(worker_id),
                                      f"The lock of the External Task {task_id} cannot be extended by worker "
                                      f"'{worker_id}")
            if task["lock_expiration"] is None or task["lock_expiration"] < rt.now:
                raise BadUserRequestException(
                    "Cannot extend a lock that expired: lockExpirationTime is not greater than or equal to "
                    f"{rt.now}")
            rt.store.run("UPDATE external_task SET lock_expiration = ? WHERE id = ?",
                         (rt.now + new_duration, task_id))

    def lock_task(self, task_id: str, worker_id: str | None, lock_duration: int) -> None:
        """``LockExternalTaskCmd``: refused only while another worker's lock is still running."""
        ensure_not_null("workerId", worker_id)
        if lock_duration <= 0:
            raise BadUserRequestException("lockDuration is not greater than 0")
        with self.command() as rt:
            task = self._task(rt, task_id)
            owner, expiration = task["worker_id"], task["lock_expiration"]
            if owner is not None and owner != worker_id and expiration is not None and not rt.now > expiration:
                raise BadUserRequestException(
                    f"External Task {task_id} cannot be locked by worker '{worker_id}'. It is locked by worker "
                    f"'{owner}'.")
            self._ensure_active(task)
            rt.store.run("UPDATE external_task SET worker_id = ?, lock_expiration = ? WHERE id = ?",
                         (worker_id, rt.now + lock_duration, task_id))

    def unlock(self, task_id: str) -> None:
        with self.command() as rt:
            self._task(rt, task_id)
            rt.store.run("UPDATE external_task SET worker_id = NULL, lock_expiration = NULL WHERE id = ?", (task_id,))
            rt.tasks_changed = True

    def set_retries(self, task_id: str, retries: int) -> None:
        if retries < 0:
            raise BadUserRequestException(
                "The number of retries cannot be negative: retries is not greater than or equal to 0")
        with self.command() as rt:
            task = self._task(rt, task_id)
            self._set_retries(rt, task, retries, task["error_message"])
            rt.tasks_changed = True

    def set_priority(self, task_id: str, priority: int) -> None:
        with self.command() as rt:
            self._task(rt, task_id)
            rt.store.run("UPDATE external_task SET priority = ? WHERE id = ?", (priority, task_id))

    def error_details(self, task_id: str) -> str | None:
        with self.command() as rt:
            return self._task(rt, task_id)["error_details"]

    def _set_retries(self, rt: Runtime, task: Row, retries: int, message: str | None) -> None:
        """``setRetriesAndManageIncidents``: reaching 0 opens an incident, leaving 0 resolves it."""
        had_retries = task["retries"] is None or task["retries"] > 0
        if had_retries and retries <= 0:
            incident_id = new_id()
            incident = {
                "id": incident_id, "incident_timestamp": rt.now, "incident_type": "failedExternalTask",
                "incident_message": message, "execution_id": task["execution_id"], "activity_id": task["activity_id"],
                "proc_inst_id": task["proc_inst_id"], "definition_id": task["definition_id"],
                "cause_incident_id": incident_id, "root_cause_incident_id": incident_id,
                "configuration": task["id"], "tenant_id": task["tenant_id"],
            }
            rt.store.insert("incident", incident)
            history.incident_created(rt, incident)
        elif not had_retries and retries > 0:
            where = "configuration = ? AND incident_type = 'failedExternalTask'"
            history.incidents_ended(rt, where, (task["id"],), "resolved")
            rt.store.run(f"DELETE FROM incident WHERE {where}", (task["id"],))
        rt.store.run("UPDATE external_task SET retries = ? WHERE id = ?", (retries, task["id"]))

    # -------------------------------------------------------------------------------- messages

    def correlate(self, correlation: events.Correlation) -> list[tuple[str, Row | None, Row]]:
        """``POST /message``: returns ``(result type, execution row, process instance row)`` per delivery."""
        with self.command() as rt:
            results = events.correlate(rt, correlation)
            return [(kind, execution, rt.store.row("SELECT * FROM process_instance WHERE id = ?", (instance_id,)))
                    for kind, execution, instance_id in results]

    def signal(self, name: str, variables: dict[str, TypedValue], execution_id: str | None) -> None:
        """``POST /signal``: deliver to every waiting execution (or one) and start signal-started processes."""
        with self.command() as rt:
            if execution_id is not None and rt.execution(execution_id) is None:
                raise NotFoundException(f"Cannot find execution with id '{execution_id}'")
            events.broadcast(rt, name, variables, execution_id)
            rt.run()

    # ---------------------------------------------------------------------------------- timers

    def next_timer_due(self) -> int | None:
        with self.reading() as store:
            due: int | None = store.row("SELECT MIN(due) FROM timer")[0]
            return due

    def fire_due_timers(self) -> int:
        """Fire every timer whose due time has come; each firing is its own transaction."""
        fired = 0
        while not self.closed:
            with self.lock:
                timer = self.store.one("SELECT * FROM timer WHERE due <= ? ORDER BY due, rowid LIMIT 1",
                                       (self.clock.now_ms(),))
                if timer is None:
                    return fired
                try:
                    with self.command() as rt:
                        rt.fire_timer(timer)
                except CamundaError as exc:
                    logger.warning("camunda sandbox: timer {} on {} failed: {}", timer["id"], timer["activity_id"],
                                   exc.message)
                    with self.command() as rt:
                        rt.store.run("UPDATE timer SET due = ? WHERE id = ?", (rt.now + TIMER_RETRY_MS, timer["id"]))
                fired += 1
        return fired

    def _clock_moved(self) -> None:
        self.fire_due_timers()
        with self.lock:
            self.tasks_signal.notify_all()  # locks and retry timeouts may have run out

    def _timer_loop(self) -> None:
        while not self._timer_stop.is_set():
            try:
                self.fire_due_timers()
                due = self.next_timer_due()
            except Exception:  # the loop must survive a bad timer; the error is logged with its trace
                logger.exception("camunda sandbox: timer loop error")
                due = None
            wait = TIMER_POLL_S
            if due is not None and not self.clock.frozen:
                wait = min(wait, max(0.0, (due - self.clock.now_ms()) / 1000))
            self._timer_stop.wait(wait)
