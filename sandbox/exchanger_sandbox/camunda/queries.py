"""List/count filters of the REST queries, turned into SQL over the store's tables.

Parameters come from a query string (GET) or a JSON body (POST variants) through :class:`Params`;
booleans only filter when true, as in Camunda; paging is ``firstResult``/``maxResults``; sorting is
``sortBy``+``sortOrder`` (GET) or ``sorting: [{sortBy, sortOrder}]`` (POST).
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from exchanger.bpmn.errors import InvalidRequestException
from exchanger_sandbox.camunda.variables import parse_date


class Params:
    """Typed access to query parameters, whichever way they were sent."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> Params:
        return cls({name: values[0] for name, values in query.items() if values})

    def _invalid(self, name: str) -> InvalidRequestException:
        return InvalidRequestException(400, f"Cannot set query parameter '{name}' to value '{self.values.get(name)}'")

    def str(self, name: builtins.str) -> builtins.str | None:
        value = self.values.get(name)
        return None if value is None else str(value)

    def bool(self, name: builtins.str) -> builtins.bool:
        value = self.values.get(name)
        if value is None or isinstance(value, bool):
            return bool(value)
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise self._invalid(name)

    def list(self, name: builtins.str) -> builtins.list[builtins.str] | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, list):
            return [str(item) for item in value]
        return [item for item in str(value).split(",") if item != ""]

    def int(self, name: builtins.str) -> builtins.int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise self._invalid(name) from None

    def date(self, name: builtins.str) -> builtins.int | None:
        value = self.values.get(name)
        if value is None:
            return None
        try:
            return parse_date(str(value))
        except ValueError:
            raise self._invalid(name) from None


class Where:
    """WHERE clauses with their parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def eq(self, column: str, value: Any) -> None:
        if value is not None:
            self.add(f"{column} = ?", value)

    def like(self, column: str, value: Any) -> None:
        if value is not None:
            self.add(f"{column} LIKE ?", value)

    def one_of(self, column: str, values: list[Any] | None) -> None:
        if values is not None:
            self.add(f"{column} IN ({','.join('?' * len(values))})" if values else "0", *values)

    def none_of(self, column: str, values: list[Any] | None) -> None:
        if values:
            self.add(f"{column} NOT IN ({','.join('?' * len(values))})", *values)

    def when(self, flag: bool, clause: str, *params: Any) -> None:
        if flag:
            self.add(clause, *params)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


def page_and_sort(params: Params, sort_columns: dict[str, str], default: str) -> tuple[str, list[Any]]:
    """``ORDER BY ... LIMIT ? OFFSET ?`` from the sorting and paging parameters."""
    orders: list[str] = []
    sorting = params.values.get("sorting")
    if isinstance(sorting, list):
        pairs = [(s.get("sortBy"), s.get("sortOrder")) for s in sorting if isinstance(s, dict)]
    else:
        sort_by, sort_order = params.str("sortBy"), params.str("sortOrder")
        if (sort_by is None) != (sort_order is None):
            raise InvalidRequestException(
                400, "Only a single sorting parameter specified. sortBy and sortOrder required")
        pairs = [(sort_by, sort_order)] if sort_by is not None else []
    for sort_by, sort_order in pairs:
        if sort_by not in sort_columns:
            raise InvalidRequestException(400, f"sortBy parameter has invalid value: {sort_by}")
        if sort_order not in ("asc", "desc"):
            raise InvalidRequestException(400, f"sortOrder parameter has invalid value: {sort_order}")
        orders.append(f"{sort_columns[sort_by]} {sort_order.upper()}")
    orders.append(default)
    first, maximum = params.int("firstResult") or 0, params.int("maxResults")
    return " ORDER BY " + ", ".join(orders) + " LIMIT ? OFFSET ?", [maximum if maximum is not None else -1, first]


_OPERATORS = {"eq": "=", "neq": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "like": "LIKE"}


def variable_filters(where: Where, params: Params, instance_column: str) -> None:
    """``variables=name_op_value,...`` on process-instance variables."""
    text = params.values.get("variables")
    if not text:
        return
    items = text if isinstance(text, list) else [{"name": part.split("_", 2)[0], "operator": part.split("_", 2)[1],
                                                  "value": part.split("_", 2)[2]}
                                                 for part in str(text).split(",") if part.count("_") >= 2]
    for item in items:
        operator = _OPERATORS.get(str(item.get("operator")))
        if operator is None:
            raise InvalidRequestException(400, f"Invalid variable comparator specified: {item.get('operator')}")
        value = item.get("value")
        if operator == "LIKE":
            column, value = "json_extract(v.value, '$')", str(value)
        elif isinstance(value, str):
            try:
                value = json.loads(value) if value not in ("", "NaN") else value
            except ValueError:
                pass
            column = "json_extract(v.value, '$')"
        else:
            column = "json_extract(v.value, '$')"
        where.add(f"EXISTS (SELECT 1 FROM variable v WHERE v.execution_id = {instance_column} AND v.name = ? "
                  f"AND {column} {operator} ?)", item.get("name"), value)


# ------------------------------------------------------------------------------------ resources

EXTERNAL_TASK_SORT = {"id": "t.id", "lockExpirationTime": "t.lock_expiration", "processInstanceId": "t.proc_inst_id",
                      "processDefinitionId": "t.definition_id", "processDefinitionKey": "t.definition_key",
                      "tenantId": "t.tenant_id", "taskPriority": "t.priority", "createTime": "t.create_time"}


def external_tasks(params: Params, now: int) -> Where:
    where = Where()
    where.eq("t.id", params.str("externalTaskId"))
    where.one_of("t.id", params.list("externalTaskIdIn"))
    where.eq("t.topic", params.str("topicName"))
    where.eq("t.worker_id", params.str("workerId"))
    where.eq("t.execution_id", params.str("executionId"))
    where.eq("t.proc_inst_id", params.str("processInstanceId"))
    where.one_of("t.proc_inst_id", params.list("processInstanceIdIn"))
    where.eq("t.activity_id", params.str("activityId"))
    where.one_of("t.activity_id", params.list("activityIdIn"))
    where.eq("t.definition_id", params.str("processDefinitionId"))
    where.eq("t.definition_key", params.str("processDefinitionKey"))
    where.one_of("t.definition_key", params.list("processDefinitionKeyIn"))
    where.one_of("t.tenant_id", params.list("tenantIdIn"))
    where.when(params.bool("locked"), "t.lock_expiration > ?", now)
    where.when(params.bool("notLocked"), "(t.lock_expiration IS NULL OR t.lock_expiration < ?)", now)
    before, after = params.date("lockExpirationBefore"), params.date("lockExpirationAfter")
    where.when(before is not None, "t.lock_expiration < ?", before)
    where.when(after is not None, "t.lock_expiration > ?", after)
    where.when(params.bool("withRetriesLeft"), "(t.retries IS NULL OR t.retries > 0)")
    where.when(params.bool("noRetriesLeft"), "t.retries = 0")
    where.when(params.bool("active"), "t.suspended = 0")
    where.when(params.bool("suspended"), "t.suspended = 1")
    high, low = params.int("priorityHigherThanOrEquals"), params.int("priorityLowerThanOrEquals")
    where.when(high is not None, "t.priority >= ?", high)
    where.when(low is not None, "t.priority <= ?", low)
    name, name_like = params.str("processDefinitionName"), params.str("processDefinitionNameLike")
    where.when(name is not None, "t.definition_id IN (SELECT id FROM definition WHERE name = ?)", name)
    where.when(name_like is not None, "t.definition_id IN (SELECT id FROM definition WHERE name LIKE ?)", name_like)
    variable_filters(where, params, "t.proc_inst_id")
    return where


DEFINITION_SORT = {"category": "d.key", "key": "d.key", "id": "d.id", "name": "d.name", "version": "d.version",
                   "deploymentId": "d.deployment_id", "deployTime": "d.deployment_time", "tenantId": "d.tenant_id",
                   "versionTag": "d.version_tag"}


def definitions(params: Params) -> Where:
    where = Where()
    where.eq("d.id", params.str("processDefinitionId"))
    where.one_of("d.id", params.list("processDefinitionIdIn"))
    where.eq("d.key", params.str("key"))
    where.one_of("d.key", params.list("keysIn"))
    where.like("d.key", params.str("keyLike"))
    where.eq("d.name", params.str("name"))
    where.like("d.name", params.str("nameLike"))
    where.eq("d.deployment_id", params.str("deploymentId"))
    after, at = params.date("deployedAfter"), params.date("deployedAt")
    where.when(after is not None, "d.deployment_time > ?", after)
    where.when(at is not None, "d.deployment_time = ?", at)
    where.eq("d.version", params.int("version"))
    where.when(params.bool("latestVersion"), "d.version = (SELECT MAX(o.version) FROM definition o WHERE "
                                             "o.key = d.key AND o.tenant_id IS d.tenant_id)")
    where.eq("d.resource_name", params.str("resourceName"))
    where.like("d.resource_name", params.str("resourceNameLike"))
    where.when(params.bool("active"), "d.suspended = 0")
    where.when(params.bool("suspended"), "d.suspended = 1")
    tenants = params.list("tenantIdIn")
    if tenants is not None:
        marks = ",".join("?" * len(tenants))
        if params.bool("includeProcessDefinitionsWithoutTenantId"):
            where.add(f"(d.tenant_id IN ({marks}) OR d.tenant_id IS NULL)", *tenants)
        else:
            where.one_of("d.tenant_id", tenants)
    where.when(params.bool("withoutTenantId"), "d.tenant_id IS NULL")
    where.eq("d.version_tag", params.str("versionTag"))
    where.like("d.version_tag", params.str("versionTagLike"))
    where.when(params.bool("withoutVersionTag"), "d.version_tag IS NULL")
    where.when(params.bool("startableInTasklist"), "d.startable = 1")
    where.when(params.bool("notStartableInTasklist"), "d.startable = 0")
    incident_type = params.str("incidentType")
    where.when(incident_type is not None,
               "d.id IN (SELECT definition_id FROM incident WHERE incident_type = ?)", incident_type)
    incident_id = params.str("incidentId")
    where.when(incident_id is not None, "d.id IN (SELECT definition_id FROM incident WHERE id = ?)", incident_id)
    return where


DEPLOYMENT_SORT = {"id": "id", "name": "name", "deploymentTime": "deployment_time", "tenantId": "tenant_id"}


def deployments(params: Params) -> Where:
    where = Where()
    where.eq("id", params.str("id"))
    where.eq("name", params.str("name"))
    where.like("name", params.str("nameLike"))
    where.eq("source", params.str("source"))
    where.when(params.bool("withoutSource"), "source IS NULL")
    where.one_of("tenant_id", params.list("tenantIdIn"))
    where.when(params.bool("withoutTenantId"), "tenant_id IS NULL")
    before, after = params.date("before"), params.date("after")
    where.when(before is not None, "deployment_time < ?", before)
    where.when(after is not None, "deployment_time > ?", after)
    return where


INSTANCE_SORT = {"instanceId": "p.id", "definitionKey": "p.definition_key", "definitionId": "p.definition_id",
                 "tenantId": "p.tenant_id", "businessKey": "p.business_key"}


def instances(params: Params) -> Where:
    where = Where()
    where.add("p.state = 'ACTIVE'")
    where.one_of("p.id", params.list("processInstanceIds"))
    where.eq("p.business_key", params.str("businessKey"))
    where.like("p.business_key", params.str("businessKeyLike"))
    where.eq("p.definition_id", params.str("processDefinitionId"))
    where.eq("p.definition_key", params.str("processDefinitionKey"))
    where.one_of("p.definition_key", params.list("processDefinitionKeyIn"))
    where.none_of("p.definition_key", params.list("processDefinitionKeyNotIn"))
    deployment = params.str("deploymentId")
    where.when(deployment is not None,
               "p.definition_id IN (SELECT id FROM definition WHERE deployment_id = ?)", deployment)
    where.when(params.bool("active"), "p.suspended = 0")
    where.when(params.bool("suspended"), "p.suspended = 1")
    where.when(params.bool("withIncident"), "EXISTS (SELECT 1 FROM incident i WHERE i.proc_inst_id = p.id)")
    for name, column in (("incidentId", "id"), ("incidentType", "incident_type"),
                         ("incidentMessage", "incident_message")):
        value = params.str(name)
        where.when(value is not None, f"EXISTS (SELECT 1 FROM incident i WHERE i.proc_inst_id = p.id AND "
                                      f"i.{column} = ?)", value)
    like = params.str("incidentMessageLike")
    where.when(like is not None, "EXISTS (SELECT 1 FROM incident i WHERE i.proc_inst_id = p.id AND "
                                 "i.incident_message LIKE ?)", like)
    where.one_of("p.tenant_id", params.list("tenantIdIn"))
    where.when(params.bool("withoutTenantId") or params.bool("processDefinitionWithoutTenantId"),
               "p.tenant_id IS NULL")
    activities = params.list("activityIdIn")
    if activities is not None:
        marks = ",".join("?" * len(activities))
        where.add(f"EXISTS (SELECT 1 FROM execution e WHERE e.proc_inst_id = p.id AND e.activity_id IN ({marks}))",
                  *activities)
    variable_filters(where, params, "p.id")
    return where


INCIDENT_SORT = {"incidentId": "id", "incidentMessage": "incident_message", "incidentTimestamp": "incident_timestamp",
                 "incidentType": "incident_type", "executionId": "execution_id", "activityId": "activity_id",
                 "processInstanceId": "proc_inst_id", "processDefinitionId": "definition_id",
                 "causeIncidentId": "cause_incident_id", "rootCauseIncidentId": "root_cause_incident_id",
                 "configuration": "configuration", "tenantId": "tenant_id"}


def incidents(params: Params) -> Where:
    where = Where()
    where.eq("id", params.str("incidentId"))
    where.eq("incident_type", params.str("incidentType"))
    where.eq("incident_message", params.str("incidentMessage"))
    where.like("incident_message", params.str("incidentMessageLike"))
    where.eq("definition_id", params.str("processDefinitionId"))
    keys = params.list("processDefinitionKeyIn")
    if keys is not None:
        marks = ",".join("?" * len(keys))
        where.add(f"definition_id IN (SELECT id FROM definition WHERE key IN ({marks}))", *keys)
    where.eq("proc_inst_id", params.str("processInstanceId"))
    where.eq("execution_id", params.str("executionId"))
    before, after = params.date("incidentTimestampBefore"), params.date("incidentTimestampAfter")
    where.when(before is not None, "incident_timestamp < ?", before)
    where.when(after is not None, "incident_timestamp > ?", after)
    where.eq("activity_id", params.str("activityId"))
    where.when(params.str("failedActivityId") is not None, "0")
    where.eq("cause_incident_id", params.str("causeIncidentId"))
    where.eq("root_cause_incident_id", params.str("rootCauseIncidentId"))
    where.eq("configuration", params.str("configuration"))
    where.one_of("tenant_id", params.list("tenantIdIn"))
    where.when(bool(params.list("jobDefinitionIdIn")), "0")
    return where


HISTORY_INSTANCE_SORT = {"instanceId": "p.id", "definitionId": "p.definition_id", "definitionKey": "p.definition_key",
                         "definitionName": "d.name", "definitionVersion": "d.version",
                         "businessKey": "p.business_key", "startTime": "p.start_time", "endTime": "p.end_time",
                         "duration": "(p.end_time - p.start_time)", "tenantId": "p.tenant_id"}


def historic_instances(params: Params) -> Where:
    where = Where()
    where.eq("p.id", params.str("processInstanceId"))
    where.one_of("p.id", params.list("processInstanceIds"))
    where.none_of("p.id", params.list("processInstanceIdNotIn"))
    where.eq("p.business_key", params.str("processInstanceBusinessKey"))
    where.one_of("p.business_key", params.list("processInstanceBusinessKeyIn"))
    where.like("p.business_key", params.str("processInstanceBusinessKeyLike"))
    where.eq("p.definition_id", params.str("processDefinitionId"))
    where.eq("p.definition_key", params.str("processDefinitionKey"))
    where.one_of("p.definition_key", params.list("processDefinitionKeyIn"))
    where.none_of("p.definition_key", params.list("processDefinitionKeyNotIn"))
    where.eq("d.name", params.str("processDefinitionName"))
    where.like("d.name", params.str("processDefinitionNameLike"))
    where.when(params.bool("finished"), "p.end_time IS NOT NULL")
    where.when(params.bool("unfinished"), "p.end_time IS NULL")
    where.when(params.bool("active"), "p.state = 'ACTIVE' AND p.suspended = 0")
    where.when(params.bool("suspended"), "p.state = 'ACTIVE' AND p.suspended = 1")
    where.when(params.bool("completed"), "p.state = 'COMPLETED'")
    where.when(params.bool("externallyTerminated"), "p.state = 'EXTERNALLY_TERMINATED'")
    where.when(params.bool("internallyTerminated"), "p.state = 'INTERNALLY_TERMINATED'")
    where.when(params.bool("withIncidents") or params.bool("withRootIncidents"),
               "EXISTS (SELECT 1 FROM incident i WHERE i.proc_inst_id = p.id)")
    incident_type = params.str("incidentType")
    where.when(incident_type is not None, "EXISTS (SELECT 1 FROM incident i WHERE i.proc_inst_id = p.id AND "
                                          "i.incident_type = ?)", incident_type)
    for name, operator in (("startedBefore", "p.start_time <= ?"), ("startedAfter", "p.start_time >= ?"),
                           ("finishedBefore", "p.end_time <= ?"), ("finishedAfter", "p.end_time >= ?")):
        value = params.date(name)
        where.when(value is not None, operator, value)
    where.one_of("p.tenant_id", params.list("tenantIdIn"))
    where.when(params.bool("withoutTenantId"), "p.tenant_id IS NULL")
    for name, extra in (("activityIdIn", ""), ("executedActivityIdIn", ""), ("activeActivityIdIn",
                                                                              " AND a.end_time IS NULL")):
        activities = params.list(name)
        if activities is not None:
            marks = ",".join("?" * len(activities))
            where.add(f"EXISTS (SELECT 1 FROM activity_instance a WHERE a.proc_inst_id = p.id AND a.activity_id IN "
                      f"({marks}){extra})", *activities)
    variable_filters(where, params, "p.id")
    return where


ACTIVITY_INSTANCE_SORT = {"activityInstanceId": "id", "instanceId": "id", "executionId": "execution_id",
                          "activityId": "activity_id", "activityName": "activity_name",
                          "activityType": "activity_type", "startTime": "start_time", "endTime": "end_time",
                          "duration": "(end_time - start_time)", "definitionId": "definition_id",
                          "occurrence": "rowid", "tenantId": "tenant_id"}


def historic_activity_instances(params: Params) -> Where:
    where = Where()
    where.eq("id", params.str("activityInstanceId"))
    where.eq("proc_inst_id", params.str("processInstanceId"))
    where.eq("definition_id", params.str("processDefinitionId"))
    where.eq("execution_id", params.str("executionId"))
    where.eq("activity_id", params.str("activityId"))
    where.one_of("activity_id", params.list("activityIdIn"))
    where.eq("activity_name", params.str("activityName"))
    where.eq("activity_type", params.str("activityType"))
    where.when(params.bool("finished"), "end_time IS NOT NULL")
    where.when(params.bool("unfinished"), "end_time IS NULL")
    where.when(params.bool("canceled"), "canceled = 1")
    where.when(params.bool("completeScope"), "complete_scope = 1")
    where.one_of("tenant_id", params.list("tenantIdIn"))
    where.when(params.bool("withoutTenantId"), "tenant_id IS NULL")
    return where


HISTORIC_VARIABLE_SORT = {"instanceId": "proc_inst_id", "variableName": "name", "tenantId": "tenant_id"}


def historic_variables(params: Params) -> Where:
    """``/history/variable-instance`` filters (removed variables only with ``includeDeleted``)."""
    where = Where()
    where.eq("name", params.str("variableName"))
    where.like("name", params.str("variableNameLike"))
    where.one_of("name", params.list("variableNameIn"))
    where.one_of("type", params.list("variableTypeIn"))
    where.eq("proc_inst_id", params.str("processInstanceId"))
    where.one_of("proc_inst_id", params.list("processInstanceIdIn"))
    where.eq("definition_id", params.str("processDefinitionId"))
    where.eq("definition_key", params.str("processDefinitionKey"))
    where.one_of("execution_id", params.list("executionIdIn"))
    where.one_of("act_inst_id", params.list("activityInstanceIdIn"))
    where.one_of("tenant_id", params.list("tenantIdIn"))
    where.when(params.bool("withoutTenantId"), "tenant_id IS NULL")
    where.when(bool(params.list("taskIdIn")) or bool(params.list("caseInstanceIdIn")), "0")
    where.when(params.str("caseInstanceId") is not None, "0")
    where.when(not params.bool("includeDeleted"), "state = 'CREATED'")
    return where


HISTORIC_DETAIL_SORT = {"processInstanceId": "proc_inst_id", "variableName": "name", "variableType": "type",
                        "variableRevision": "revision", "formPropertyId": "name", "time": "time",
                        "occurrence": "rowid", "tenantId": "tenant_id"}


def historic_details(params: Params) -> Where:
    """``/history/detail`` filters; every detail here is a ``variableUpdate``."""
    where = Where()
    where.eq("proc_inst_id", params.str("processInstanceId"))
    where.one_of("proc_inst_id", params.list("processInstanceIdIn"))
    where.eq("execution_id", params.str("executionId"))
    where.eq("act_inst_id", params.str("activityInstanceId"))
    where.eq("var_inst_id", params.str("variableInstanceId"))
    where.one_of("type", params.list("variableTypeIn"))
    where.one_of("tenant_id", params.list("tenantIdIn"))
    where.when(params.bool("withoutTenantId"), "tenant_id IS NULL")
    where.when(params.bool("formFields") or params.str("taskId") is not None
               or params.str("caseInstanceId") is not None or params.str("userOperationId") is not None, "0")
    where.when(params.bool("initial"), "initial = 1")
    before, after = params.date("occurredBefore"), params.date("occurredAfter")
    where.when(before is not None, "time <= ?", before)
    where.when(after is not None, "time >= ?", after)
    return where


HISTORIC_INCIDENT_SORT = {"incidentId": "id", "incidentMessage": "incident_message", "createTime": "incident_timestamp",
                          "endTime": "end_time", "incidentType": "incident_type", "executionId": "execution_id",
                          "activityId": "activity_id", "processInstanceId": "proc_inst_id",
                          "processDefinitionId": "definition_id", "processDefinitionKey": "definition_key",
                          "causeIncidentId": "cause_incident_id", "rootCauseIncidentId": "root_cause_incident_id",
                          "configuration": "configuration", "tenantId": "tenant_id"}


def historic_incidents(params: Params) -> Where:
    """The runtime incident filters (the history table has the same columns) plus key and state."""
    where = incidents(params)
    where.eq("definition_key", params.str("processDefinitionKey"))
    for state in ("open", "resolved", "deleted"):
        where.when(params.bool(state), "state = ?", state)
    return where
