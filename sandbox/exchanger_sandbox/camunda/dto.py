"""Rows → Camunda's JSON DTOs. Every key Camunda serializes is present, nulls included."""

from __future__ import annotations

from sqlite3 import Row
from typing import Any

from exchanger_sandbox.camunda.variables import TypedValue, decode, format_date, to_dto


def variables_dto(variables: dict[str, TypedValue], deserialize: bool = True) -> dict[str, Any]:
    return {name: to_dto(typed, deserialize) for name, typed in variables.items()}


def external_task(row: Row | dict[str, Any]) -> dict[str, Any]:
    """``ExternalTaskDto`` (GET /external-task…)."""
    return {
        "activityId": row["activity_id"],
        "activityInstanceId": row["act_inst_id"],
        "errorMessage": row["error_message"],
        "executionId": row["execution_id"],
        "id": row["id"],
        "lockExpirationTime": format_date(row["lock_expiration"]),
        "createTime": format_date(row["create_time"]),
        "processDefinitionId": row["definition_id"],
        "processDefinitionKey": row["definition_key"],
        "processDefinitionVersionTag": row["version_tag"],
        "processInstanceId": row["proc_inst_id"],
        "retries": row["retries"],
        "suspended": bool(row["suspended"]),
        "workerId": row["worker_id"],
        "topicName": row["topic"],
        "tenantId": row["tenant_id"],
        "priority": row["priority"],
        "businessKey": row["business_key"],
    }


def locked_task(row: Row | dict[str, Any], variables: dict[str, Any],
                extension_properties: dict[str, str]) -> dict[str, Any]:
    """``LockedExternalTaskDto``: as above plus errorDetails, variables and extensionProperties;
    ``suspended`` is always false there (``fromLockedExternalTask`` never sets it)."""
    dto = external_task(row)
    dto["suspended"] = False
    dto["errorDetails"] = row["error_details"]
    dto["variables"] = variables
    dto["extensionProperties"] = extension_properties
    return dto


def definition(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "key": row["key"],
        "category": "http://bpmn.io/schema/bpmn",
        "description": row["description"],
        "name": row["name"],
        "version": row["version"],
        "resource": row["resource_name"],
        "deploymentId": row["deployment_id"],
        "diagram": None,
        "suspended": bool(row["suspended"]),
        "tenantId": row["tenant_id"],
        "versionTag": row["version_tag"],
        "historyTimeToLive": row["history_ttl"],
        "startableInTasklist": bool(row["startable"]),
    }


def deployment(row: Row, base_url: str) -> dict[str, Any]:
    return {
        "links": [{"method": "GET", "href": f"{base_url}/deployment/{row['id']}", "rel": "self"}],
        "id": row["id"],
        "name": row["name"],
        "source": row["source"],
        "deploymentTime": format_date(row["deployment_time"]),
        "tenantId": row["tenant_id"],
    }


def process_instance(row: Row, base_url: str) -> dict[str, Any]:
    return {
        "links": [{"method": "GET", "href": f"{base_url}/process-instance/{row['id']}", "rel": "self"}],
        "id": row["id"],
        "definitionId": row["definition_id"],
        "definitionKey": row["definition_key"],
        "businessKey": row["business_key"],
        "caseInstanceId": None,
        "ended": False,
        "suspended": bool(row["suspended"]),
        "tenantId": row["tenant_id"],
    }


def incident(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "processDefinitionId": row["definition_id"],
        "processInstanceId": row["proc_inst_id"],
        "executionId": row["execution_id"],
        "incidentTimestamp": format_date(row["incident_timestamp"]),
        "incidentType": row["incident_type"],
        "activityId": row["activity_id"],
        "failedActivityId": None,
        "causeIncidentId": row["cause_incident_id"],
        "rootCauseIncidentId": row["root_cause_incident_id"],
        "configuration": row["configuration"],
        "incidentMessage": row["incident_message"],
        "tenantId": row["tenant_id"],
        "jobDefinitionId": None,
        "annotation": None,
    }


def historic_process_instance(row: Row) -> dict[str, Any]:
    """``HistoricProcessInstanceDto``; the row is a process instance joined with its definition."""
    end = row["end_time"]
    return {
        "id": row["id"],
        "businessKey": row["business_key"],
        "processDefinitionId": row["definition_id"],
        "processDefinitionKey": row["definition_key"],
        "processDefinitionName": row["definition_name"],
        "processDefinitionVersion": row["definition_version"],
        "startTime": format_date(row["start_time"]),
        "endTime": format_date(end),
        "removalTime": None,
        "durationInMillis": end - row["start_time"] if end is not None else None,
        "startUserId": None,
        "startActivityId": row["start_activity_id"],
        "deleteReason": row["delete_reason"],
        "rootProcessInstanceId": row["id"],
        "superProcessInstanceId": row["super_proc_inst_id"],
        "superCaseInstanceId": None,
        "caseInstanceId": None,
        "tenantId": row["tenant_id"],
        "state": "SUSPENDED" if row["state"] == "ACTIVE" and row["suspended"] else row["state"],
        "restartedProcessInstanceId": None,
    }


def historic_activity_instance(row: Row) -> dict[str, Any]:
    end = row["end_time"]
    return {
        "id": row["id"],
        "parentActivityInstanceId": row["parent_act_inst_id"],
        "activityId": row["activity_id"],
        "activityName": row["activity_name"],
        "activityType": row["activity_type"],
        "processDefinitionKey": row["definition_key"],
        "processDefinitionId": row["definition_id"],
        "processInstanceId": row["proc_inst_id"],
        "executionId": row["execution_id"],
        "taskId": None,
        "calledProcessInstanceId": None,
        "calledCaseInstanceId": None,
        "assignee": None,
        "startTime": format_date(row["start_time"]),
        "endTime": format_date(end),
        "durationInMillis": end - row["start_time"] if end is not None else None,
        "canceled": bool(row["canceled"]),
        "completeScope": bool(row["complete_scope"]),
        "tenantId": row["tenant_id"],
        "removalTime": None,
        "rootProcessInstanceId": row["proc_inst_id"],
    }


def _typed(row: Row, deserialize: bool) -> dict[str, Any]:
    return to_dto(decode(row["type"], row["value"], row["info"]), deserialize)


def historic_variable(row: Row, deserialize: bool = True) -> dict[str, Any]:
    """``HistoricVariableInstanceDto``."""
    typed = _typed(row, deserialize)
    return {
        "id": row["id"], "name": row["name"], "type": typed["type"], "value": typed["value"],
        "valueInfo": typed["valueInfo"], "processDefinitionKey": row["definition_key"],
        "processDefinitionId": row["definition_id"], "processInstanceId": row["proc_inst_id"],
        "executionId": row["execution_id"], "activityInstanceId": row["act_inst_id"], "caseDefinitionKey": None,
        "caseDefinitionId": None, "caseInstanceId": None, "caseExecutionId": None, "taskId": None,
        "tenantId": row["tenant_id"], "errorMessage": None, "state": row["state"],
        "createTime": format_date(row["create_time"]), "removalTime": format_date(row["removal_time"]),
        "rootProcessInstanceId": row["proc_inst_id"],
    }


def historic_detail(row: Row, deserialize: bool = True) -> dict[str, Any]:
    """``HistoricVariableUpdateDto`` (``type`` = ``variableUpdate``)."""
    typed = _typed(row, deserialize)
    return {
        "id": row["id"], "type": "variableUpdate", "processDefinitionKey": row["definition_key"],
        "processDefinitionId": row["definition_id"], "processInstanceId": row["proc_inst_id"],
        "activityInstanceId": row["act_inst_id"], "executionId": row["execution_id"], "caseDefinitionKey": None,
        "caseDefinitionId": None, "caseInstanceId": None, "caseExecutionId": None, "taskId": None,
        "tenantId": row["tenant_id"], "userOperationId": None, "time": format_date(row["time"]),
        "removalTime": None, "rootProcessInstanceId": row["proc_inst_id"], "variableName": row["name"],
        "variableInstanceId": row["var_inst_id"], "variableType": typed["type"], "value": typed["value"],
        "valueInfo": typed["valueInfo"], "initial": bool(row["initial"]), "revision": row["revision"],
        "errorMessage": None,
    }


def historic_incident(row: Row) -> dict[str, Any]:
    """``HistoricIncidentDto``."""
    return {
        "id": row["id"], "processDefinitionKey": row["definition_key"], "processDefinitionId": row["definition_id"],
        "processInstanceId": row["proc_inst_id"], "executionId": row["execution_id"],
        "rootProcessInstanceId": row["proc_inst_id"], "createTime": format_date(row["incident_timestamp"]),
        "endTime": format_date(row["end_time"]), "removalTime": None, "incidentType": row["incident_type"],
        "activityId": row["activity_id"], "failedActivityId": row["activity_id"],
        "causeIncidentId": row["cause_incident_id"], "rootCauseIncidentId": row["root_cause_incident_id"],
        "configuration": row["configuration"], "historyConfiguration": None,
        "incidentMessage": row["incident_message"], "tenantId": row["tenant_id"], "jobDefinitionId": None,
        "open": row["state"] == "open", "deleted": row["state"] == "deleted", "resolved": row["state"] == "resolved",
        "annotation": None,
    }
