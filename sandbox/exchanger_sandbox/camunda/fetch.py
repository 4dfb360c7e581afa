"""``POST /external-task/fetchAndLock``: topic filters, locking, and long polling.

Long polling follows ``FetchAndLockHandlerImpl``: try at once; answer at once when tasks were found
or no ``asyncResponseTimeout`` was given; otherwise wait (at most ``max_pending_fetches`` requests)
and try again whenever a commit created, unlocked or rescheduled a task, when the clock was moved,
and when the earliest running lock or retry timeout of the requested topics runs out (Camunda only
notices those every 30 s; noticing them sooner is compatible). At the timeout the answer is ``[]``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from exchanger.bpmn.errors import InvalidRequestException, ProcessEngineException, ensure_not_null
from exchanger_sandbox.camunda import dto
from exchanger_sandbox.camunda.engine import Engine
from exchanger_sandbox.camunda.runtime import Runtime

# FetchAndLockHandlerImpl.MAX_REQUEST_TIMEOUT
MAX_ASYNC_RESPONSE_TIMEOUT_MS = 1_800_000


@dataclass
class Topic:
    name: str | None
    lock_duration: int
    variables: list[str] | None
    local_variables: bool
    deserialize: bool
    include_extension_properties: bool
    filters: dict[str, Any]


@dataclass
class FetchRequest:
    worker_id: str | None
    max_tasks: int
    use_priority: bool
    async_timeout_ms: int | None
    topics: dict[str | None, Topic]  # keyed by name: a duplicate name overwrites the earlier topic
    create_time_order: str | None  # "ASC" | "DESC" | None


def _typed(body: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """A body field of the expected JSON type (Jackson's mapping errors are 400)."""
    value = body.get(name, default)
    if value is None:
        return default
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        raise InvalidRequestException(400, f"Cannot deserialize value of type `{kind.__name__}` for '{name}'")
    if kind is bool and not isinstance(value, bool):
        raise InvalidRequestException(400, f"Cannot deserialize value of type `boolean` for '{name}'")
    if kind is list and not isinstance(value, list):
        raise InvalidRequestException(400, f"Cannot deserialize value of type `list` for '{name}'")
    if kind is str and not isinstance(value, str):
        return str(value)
    return value


def parse_request(body: Any) -> FetchRequest:
    """The request DTO, with the REST-level checks (sorting values, the timeout cap)."""
    if not isinstance(body, dict):
        body = {}
    timeout = _typed(body, "asyncResponseTimeout", int)
    if timeout is not None and timeout > MAX_ASYNC_RESPONSE_TIMEOUT_MS:
        raise InvalidRequestException(
            400, "The asynchronous response timeout cannot be set to a value greater than "
                 f"{MAX_ASYNC_RESPONSE_TIMEOUT_MS} milliseconds")
    order = None
    for sorting in _typed(body, "sorting", list, []) or []:
        sort_by = sorting.get("sortBy") if isinstance(sorting, dict) else None
        sort_order = sorting.get("sortOrder") if isinstance(sorting, dict) else None
        if sort_by != "createTime":
            raise InvalidRequestException(400, f"Cannot set query sortBy parameter to value {sort_by}")
        if sort_order not in ("asc", "desc"):
            raise InvalidRequestException(400, f"Cannot set query sortOrder parameter to value {sort_order}")
        order = sort_order.upper()
    topics: dict[str | None, Topic] = {}
    for raw in _typed(body, "topics", list, []) or []:
        raw = raw if isinstance(raw, dict) else {}
        variables = raw.get("variables")
        topic = Topic(
            name=_typed(raw, "topicName", str),
            lock_duration=_typed(raw, "lockDuration", int, 0),
            variables=list(variables) if isinstance(variables, list) else None,
            local_variables=_typed(raw, "localVariables", bool, False),
            deserialize=_typed(raw, "deserializeValues", bool, False),
            include_extension_properties=_typed(raw, "includeExtensionProperties", bool, False),
            filters={key: raw.get(key) for key in (
                "businessKey", "processDefinitionId", "processDefinitionIdIn", "processDefinitionKey",
                "processDefinitionKeyIn", "processDefinitionVersionTag", "withoutTenantId", "tenantIdIn",
                "processVariables")},
        )
        topics[topic.name] = topic
    return FetchRequest(
        worker_id=_typed(body, "workerId", str),
        max_tasks=_typed(body, "maxTasks", int, 0),
        use_priority=_typed(body, "usePriority", bool, False),
        async_timeout_ms=timeout,
        topics=topics,
        create_time_order=order,
    )


def _validate(request: FetchRequest) -> None:
    """``FetchExternalTasksCmd.validateInput``: engine errors, hence 500."""
    ensure_not_null("workerId", request.worker_id)
    if request.max_tasks < 0:
        raise ProcessEngineException("maxResults is not greater than or equal to 0")
    for topic in request.topics.values():
        ensure_not_null("topicName", topic.name)
        if topic.lock_duration <= 0:
            raise ProcessEngineException("lockTime is not greater than 0")


def _topic_clause(topic: Topic) -> tuple[str, list[Any]]:
    clauses = ["t.topic = ?"]
    params: list[Any] = [topic.name]
    filters = topic.filters

    def one_of(column: str, values: Any) -> None:
        values = list(values or [])
        clauses.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
        params.extend(values)

    if filters["businessKey"] is not None:
        clauses.append("t.business_key = ?")
        params.append(filters["businessKey"])
    if filters["processDefinitionId"] is not None:
        clauses.append("t.definition_id = ?")
        params.append(filters["processDefinitionId"])
    if filters["processDefinitionIdIn"] is not None:
        one_of("t.definition_id", filters["processDefinitionIdIn"])
    if filters["processDefinitionKey"] is not None:
        clauses.append("t.definition_key = ?")
        params.append(filters["processDefinitionKey"])
    if filters["processDefinitionKeyIn"] is not None:
        one_of("t.definition_key", filters["processDefinitionKeyIn"])
    if filters["processDefinitionVersionTag"] is not None:
        clauses.append("t.version_tag LIKE ?")
        params.append(filters["processDefinitionVersionTag"])
    if filters["withoutTenantId"]:
        clauses.append("t.tenant_id IS NULL")
    if filters["tenantIdIn"] is not None:
        one_of("t.tenant_id", filters["tenantIdIn"])
    variables = filters["processVariables"]
    if isinstance(variables, dict) and variables:
        matches = []
        for name, value in variables.items():
            matches.append("(v.name = ? AND v.value = ?)")
            params.extend([name, json.dumps(value)])
        clauses.append("EXISTS (SELECT 1 FROM variable v WHERE v.execution_id = t.proc_inst_id AND ("
                       + " OR ".join(matches) + "))")
    return "(" + " AND ".join(clauses) + ")", params


def _select_and_lock(engine: Engine, request: FetchRequest) -> list[dict[str, Any]]:
    if not request.topics or request.max_tasks == 0:
        return []
    with engine.command() as rt:
        clauses, params = [], [rt.now]
        for topic in request.topics.values():
            clause, clause_params = _topic_clause(topic)
            clauses.append(clause)
            params.extend(clause_params)
        order = []
        if request.use_priority:
            order.append("t.priority DESC")
        if request.create_time_order:
            order.append(f"t.create_time {request.create_time_order}")
        order.append("t.rowid")  # deterministic where Camunda's order is arbitrary
        rows = rt.store.all(
            "SELECT t.* FROM external_task t WHERE (t.lock_expiration IS NULL OR t.lock_expiration <= ?) "
            "AND t.suspended = 0 AND (t.retries IS NULL OR t.retries > 0) AND (" + " OR ".join(clauses) + ") "
            "ORDER BY " + ", ".join(order) + " LIMIT ?", [*params, request.max_tasks])
        return [_lock(rt, request, row) for row in rows]


def _lock(rt: Runtime, request: FetchRequest, row: Any) -> dict[str, Any]:
    topic = request.topics[row["topic"]]
    expiration = rt.now + topic.lock_duration
    rt.store.run("UPDATE external_task SET worker_id = ?, lock_expiration = ? WHERE id = ?",
                 (request.worker_id, expiration, row["id"]))
    locked = dict(row)
    locked["worker_id"], locked["lock_expiration"] = request.worker_id, expiration
    if topic.variables is not None and not topic.variables:
        variables = {}
    else:
        variables = rt.visible(row["execution_id"], topic.variables, local_only=topic.local_variables)
    properties: dict[str, str] = {}
    if topic.include_extension_properties:
        properties = dict(rt.context(row["proc_inst_id"]).model.activities[row["activity_id"]].properties)
    return dto.locked_task(locked, dto.variables_dto(variables, topic.deserialize), properties)


def _seconds_until_next_unlock(engine: Engine, request: FetchRequest) -> float | None:
    """Wall seconds until a lock or retry timeout of a requested topic runs out (None: none pending)."""
    if engine.clock.frozen:
        return None
    names = [name for name in request.topics if name is not None]
    now = engine.clock.now_ms()
    row = engine.store.one(
        f"SELECT MIN(lock_expiration) FROM external_task WHERE lock_expiration > ? AND topic IN "
        f"({','.join('?' * len(names))}) AND (retries IS NULL OR retries > 0)", [now, *names])
    if row is None or row[0] is None:
        return None
    return max(0.001, (row[0] - now) / 1000)


def fetch_and_lock(engine: Engine, request: FetchRequest) -> list[dict[str, Any]]:
    """Fetch and lock now, or long-poll up to ``asyncResponseTimeout`` milliseconds."""
    _validate(request)
    with engine.lock:
        result = _select_and_lock(engine, request)
        if result or request.async_timeout_ms is None or not request.topics:
            return result
        if engine.pending_fetches >= engine.max_pending_fetches:
            raise InvalidRequestException(500, "At the moment the server has to handle too many requests at the "
                                               "same time. Please try again later.")
        deadline = time.monotonic() + request.async_timeout_ms / 1000
        engine.pending_fetches += 1
        try:
            while True:
                if engine.closed:
                    raise InvalidRequestException(500, "Request rejected due to shutdown of application server.")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                next_unlock = _seconds_until_next_unlock(engine, request)
                engine.tasks_signal.wait(remaining if next_unlock is None else min(remaining, next_unlock))
                if engine.closed:
                    raise InvalidRequestException(500, "Request rejected due to shutdown of application server.")
                result = _select_and_lock(engine, request)
                if result:
                    return result
        finally:
            engine.pending_fetches -= 1
