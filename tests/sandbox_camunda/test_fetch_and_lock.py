"""``POST /external-task/fetchAndLock``: validation, filters, variables, ordering and long polling."""

from __future__ import annotations

import threading
import time

import pytest

from .conftest import Api, bpmn, error, one_task


def fetch_body(**overrides: object) -> dict:
    body: dict = {"workerId": "w1", "maxTasks": 5, "topics": [{"topicName": "work", "lockDuration": 1000}]}
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("body", "status", "expected"), [
    (fetch_body(workerId=None), 500, {"type": "NullValueException", "message": "workerId is null", "code": 0}),
    (fetch_body(maxTasks=-1), 500, {"type": "ProcessEngineException",
                                    "message": "maxResults is not greater than or equal to 0", "code": 0}),
    (fetch_body(topics=[{"lockDuration": 100}]), 500, {"type": "NullValueException", "message": "topicName is null",
                                                       "code": 0}),
    (fetch_body(topics=[{"topicName": "work", "lockDuration": 0}]), 500,
     {"type": "ProcessEngineException", "message": "lockTime is not greater than 0", "code": 0}),
    (fetch_body(asyncResponseTimeout=1_800_001), 400,
     {"type": "InvalidRequestException", "code": None, "message": "The asynchronous response timeout cannot be set "
                                                                  "to a value greater than 1800000 milliseconds"}),
    (fetch_body(sorting=[{"sortBy": "priority", "sortOrder": "asc"}]), 400,
     {"type": "InvalidRequestException", "message": "Cannot set query sortBy parameter to value priority",
      "code": None}),
    (fetch_body(sorting=[{"sortBy": "createTime", "sortOrder": "up"}]), 400,
     {"type": "InvalidRequestException", "message": "Cannot set query sortOrder parameter to value up",
      "code": None}),
])
def test_invalid_requests(api: Api, body: dict, status: int, expected: dict) -> None:
    assert error(api.post("/external-task/fetchAndLock", body), status) == expected


def test_a_string_where_a_number_is_expected_is_400(api: Api) -> None:
    assert error(api.post("/external-task/fetchAndLock", fetch_body(maxTasks="many")), 400)["type"] == \
        "InvalidRequestException"


def test_no_topics_or_zero_max_tasks_return_empty(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    assert api.post("/external-task/fetchAndLock", fetch_body(topics=None)).json() == []
    assert api.post("/external-task/fetchAndLock", fetch_body(topics=[])).json() == []
    assert api.post("/external-task/fetchAndLock", fetch_body(maxTasks=0)).json() == []
    assert len(api.fetch()) == 1


# ------------------------------------------------------------------------------- locking


def test_fetch_locks_and_a_second_fetch_gets_nothing(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    task = api.fetch_one(lock=5000)
    assert task["workerId"] == "w1"
    assert api.fetch(worker="w2") == []
    api.advance(4999)
    assert api.fetch(worker="w2") == []
    api.advance(1)
    assert api.fetch_one(worker="w2")["id"] == task["id"]


def test_max_tasks_across_topics(api: Api) -> None:
    api.deploy_model(one_task(topic="a"), name="a.bpmn")
    api.deploy_model(one_task(key="q", topic="b"), name="b.bpmn")
    for _ in range(3):
        api.start("p")
        api.start("q")
    response = api.post("/external-task/fetchAndLock", {"workerId": "w", "maxTasks": 4, "topics": [
        {"topicName": "a", "lockDuration": 100}, {"topicName": "b", "lockDuration": 100}]})
    tasks = response.json()
    assert len(tasks) == 4 and {t["topicName"] for t in tasks} == {"a", "b"}


def test_use_priority_and_create_time_sorting(api: Api) -> None:
    api.deploy_model(one_task(extra=' camunda:taskPriority="${prio}"'))
    for priority in (1, 9, 5):
        api.start(variables={"prio": {"value": priority}})
        api.advance(1000)
    by_priority = api.post("/external-task/fetchAndLock", fetch_body(usePriority=True, maxTasks=3)).json()
    assert [t["priority"] for t in by_priority] == [9, 5, 1]
    api.advance(2000)
    newest_first = api.post("/external-task/fetchAndLock", fetch_body(
        maxTasks=3, sorting=[{"sortBy": "createTime", "sortOrder": "desc"}])).json()
    assert [t["priority"] for t in newest_first] == [5, 9, 1]


# ------------------------------------------------------------------------------- filters


def test_tenant_filters(api: Api) -> None:
    api.deploy_model(one_task(), name="none.bpmn")
    api.deploy_model(one_task(), name="a.bpmn", tenant_id="tenant-a")
    api.deploy_model(one_task(), name="b.bpmn", tenant_id="tenant-b")
    api.start()
    api.start(tenant="tenant-a")
    api.start(tenant="tenant-b")
    assert [t["tenantId"] for t in api.fetch(tenantIdIn=["tenant-a"])] == ["tenant-a"]
    assert [t["tenantId"] for t in api.fetch(withoutTenantId=True)] == [None]
    assert [t["tenantId"] for t in api.fetch()] == ["tenant-b"]
    tasks = api.tasks(tenantIdIn="tenant-a,tenant-b")
    assert {t["tenantId"] for t in tasks} == {"tenant-a", "tenant-b"}


def test_definition_business_key_version_tag_and_process_variable_filters(api: Api) -> None:
    deployed = api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>""",
        attributes=' camunda:versionTag="v1.2"'))
    api.deploy_model(one_task(key="other"), name="other.bpmn")
    definition_id = next(iter(deployed["deployedProcessDefinitions"]))
    api.start("p", {"region": {"value": "north"}}, businessKey="order-1")
    api.start("p", {"region": {"value": "south"}}, businessKey="order-2")
    api.start("other", {"region": {"value": "north"}})

    def ids(**filters: object) -> list[str | None]:
        return sorted(t["businessKey"] or t["processDefinitionKey"] for t in api.fetch(lock=1, **filters))

    assert ids(businessKey="order-2") == ["order-2"]
    api.advance(1)
    assert ids(processDefinitionKey="other") == ["other"]
    api.advance(1)
    assert ids(processDefinitionKeyIn=["p"]) == ["order-1", "order-2"]
    api.advance(1)
    assert ids(processDefinitionId=definition_id) == ["order-1", "order-2"]
    api.advance(1)
    assert ids(processDefinitionIdIn=[definition_id]) == ["order-1", "order-2"]
    api.advance(1)
    assert ids(processDefinitionVersionTag="v1.%") == ["order-1", "order-2"]
    api.advance(1)
    assert ids(processVariables={"region": "north"}) == ["order-1", "other"]
    api.advance(1)
    assert ids(processVariables={"region": "west"}) == []


def test_duplicate_topic_names_keep_the_last(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    response = api.post("/external-task/fetchAndLock", {"workerId": "w", "maxTasks": 1, "topics": [
        {"topicName": "work", "lockDuration": 100, "businessKey": "nope"},
        {"topicName": "work", "lockDuration": 100}]})
    assert len(response.json()) == 1


# ----------------------------------------------------------------------------- variables


SCOPED = bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work">
      <bpmn:extensionElements>
        <camunda:properties><camunda:property name="system" value="bitrix24"/></camunda:properties>
        <camunda:inputOutput>
          <camunda:inputParameter name="title">Order ${orderId}</camunda:inputParameter>
          <camunda:inputParameter name="items"><camunda:list><camunda:value>a</camunda:value>
            <camunda:value>${orderId}</camunda:value></camunda:list></camunda:inputParameter>
          <camunda:inputParameter name="meta"><camunda:map><camunda:entry key="k">v</camunda:entry></camunda:map>
          </camunda:inputParameter>
        </camunda:inputOutput>
      </bpmn:extensionElements>
    </bpmn:serviceTask>""")


def test_variables_all_none_named_and_local(api: Api) -> None:
    api.deploy_model(SCOPED)
    api.start(variables={"orderId": {"value": 7}, "customer": {"value": {"name": "Ann"}}})
    task = api.fetch_one(lock=1, deserializeValues=True)
    variables = task["variables"]
    assert variables["orderId"] == {"type": "Integer", "value": 7, "valueInfo": {}}
    assert variables["title"] == {"type": "String", "value": "Order 7", "valueInfo": {}}
    assert variables["items"]["value"] == ["a", 7]
    assert variables["items"]["valueInfo"]["objectTypeName"] == "java.util.ArrayList"
    assert variables["meta"]["value"] == {"k": "v"}
    assert variables["customer"]["value"] == {"name": "Ann"}
    assert variables["customer"]["valueInfo"] == {"objectTypeName": "java.util.LinkedHashMap",
                                                  "serializationDataFormat": "application/x-java-serialized-object"}
    assert task["extensionProperties"] == {}
    api.advance(1)
    assert api.fetch_one(lock=1, variables=[])["variables"] == {}
    api.advance(1)
    assert set(api.fetch_one(lock=1, variables=["orderId", "nope"])["variables"]) == {"orderId"}
    api.advance(1)
    assert set(api.fetch_one(lock=1, localVariables=True)["variables"]) == {"title", "items", "meta"}
    api.advance(1)
    serialized = api.fetch_one(lock=1, variables=["customer"])["variables"]["customer"]
    assert serialized["value"] == '{"name": "Ann"}'
    api.advance(1)
    assert api.fetch_one(lock=1, includeExtensionProperties=True)["extensionProperties"] == {"system": "bitrix24"}


def test_typed_variables_round_trip(api: Api) -> None:
    api.deploy_model(one_task())
    api.start(variables={
        "when": {"value": "2024-01-15T12:00:00.000+0200", "type": "Date"},
        "big": {"value": 5, "type": "Long"},
        "ratio": {"value": 0.5},
        "flag": {"value": True},
        "nothing": {"value": None},
        "huge": {"value": 2**40},
        "doc": {"value": '{"a": 1}', "type": "Json"},
        "obj": {"value": '{"a": 1}', "type": "Object",
                "valueInfo": {"objectTypeName": "java.util.HashMap", "serializationDataFormat": "application/json"}},
        "file": {"value": "aGVsbG8=", "type": "File", "valueInfo": {"filename": "a.txt", "mimeType": "text/plain"}},
    })
    variables = api.fetch_one(deserializeValues=True)["variables"]
    assert variables["when"]["type"] == "Date" and variables["when"]["value"].endswith(("+0000", "+0100")) or \
        variables["when"]["value"][-5] in "+-"
    assert variables["big"] == {"type": "Long", "value": 5, "valueInfo": {}}
    assert variables["ratio"]["type"] == "Double"
    assert variables["flag"]["type"] == "Boolean"
    assert variables["nothing"] == {"type": "Null", "value": None, "valueInfo": {}}
    assert variables["huge"]["type"] == "Long"
    assert variables["doc"] == {"type": "Json", "value": '{"a": 1}', "valueInfo": {}}
    assert variables["obj"]["value"] == {"a": 1}
    assert variables["file"]["value"] is None and variables["file"]["valueInfo"]["filename"] == "a.txt"


def test_java_serialized_object_is_refused(api: Api) -> None:
    api.deploy_model(one_task())
    response = api.post("/process-definition/key/p/start", {"variables": {"o": {
        "value": "rO0AB", "type": "Object", "valueInfo": {"objectTypeName": "x.Y"}}}})
    body = error(response, 500)
    assert "ENGINE-17007 Cannot set variable with name o. Java serialization format is prohibited" in body["message"]


def test_object_value_must_be_a_string(api: Api) -> None:
    api.deploy_model(one_task())
    body = error(api.post("/process-definition/key/p/start", {"variables": {"o": {"value": {"a": 1},
                                                                                  "type": "Object"}}}), 400)
    assert body["message"].endswith(
        "Must provide 'null' or String value for value of SerializableValue type 'Object'.")


# ---------------------------------------------------------------------------- long polling


def _poll_in_background(api: Api, timeout_ms: int, result: dict) -> threading.Thread:
    def poll() -> None:
        started = time.monotonic()
        response = api.http.post(api.url + "/external-task/fetchAndLock",
                                 json=fetch_body(asyncResponseTimeout=timeout_ms), timeout=30)
        result["elapsed"] = time.monotonic() - started
        result["answered_at"] = time.monotonic()
        result["response"] = response

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.15)  # let the request reach the server and wait
    return thread


def test_long_poll_wakes_within_50ms_of_task_creation(api: Api) -> None:
    api.deploy_model(one_task())
    result: dict = {}
    thread = _poll_in_background(Api(api.sandbox), 10_000, result)
    assert "response" not in result
    created_at = time.monotonic()
    api.start()
    thread.join(5)
    assert len(result["response"].json()) == 1
    assert result["answered_at"] - created_at < 0.05


def test_long_poll_times_out_with_an_empty_list(api: Api) -> None:
    started = time.monotonic()
    response = api.post("/external-task/fetchAndLock", fetch_body(asyncResponseTimeout=200))
    assert response.status_code == 200 and response.json() == []
    assert 0.19 <= time.monotonic() - started < 2


def test_long_poll_wakes_on_unlock(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    task = api.fetch_one(worker="w9")
    result: dict = {}
    thread = _poll_in_background(Api(api.sandbox), 10_000, result)
    api.post(f"/external-task/{task['id']}/unlock")
    thread.join(5)
    assert [t["id"] for t in result["response"].json()] == [task["id"]]
    assert result["elapsed"] < 1


def test_long_poll_wakes_when_the_retry_timeout_ends(api: Api) -> None:
    api.deploy_model(one_task())
    api.start()
    task = api.fetch_one()
    api.post(f"/external-task/{task['id']}/failure", {"workerId": "w1", "retries": 3, "retryTimeout": 60_000})
    result: dict = {}
    thread = _poll_in_background(Api(api.sandbox), 10_000, result)
    assert "response" not in result
    moved_at = time.monotonic()
    api.advance(60_000)
    thread.join(5)
    assert [t["id"] for t in result["response"].json()] == [task["id"]]
    assert result["answered_at"] - moved_at < 0.05


def test_pending_request_limit(api: Api) -> None:
    api.sandbox.engine.max_pending_fetches = 1
    result: dict = {}
    thread = _poll_in_background(Api(api.sandbox), 1_000, result)
    body = error(api.post("/external-task/fetchAndLock", fetch_body(asyncResponseTimeout=1000)), 500)
    assert body["message"] == ("At the moment the server has to handle too many requests at the same time. Please "
                               "try again later.")
    assert body["type"] == "InvalidRequestException"
    thread.join(5)
    assert result["response"].json() == []
