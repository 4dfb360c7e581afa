"""The BPMN subset that external-task processes drawn in Camunda Modeler use, and the refusals of what
the sandbox cannot run (each named once, with its real cause)."""

from __future__ import annotations

import pytest

from exchanger.bpmn import timers

from .conftest import Api, bpmn, error

MESSAGES = '<bpmn:message id="m1" name="paid"/><bpmn:message id="m2" name="order"/>'


def _refusal(api: Api, model: bytes) -> list[dict]:
    response = api.http.post(api.url + "/deployment/create", files={"x.bpmn": ("x.bpmn", model)})
    return error(response, 400)["details"]["x.bpmn"]["errors"]


def test_plain_and_manual_tasks_pass_through(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="plain"/>
    <bpmn:task id="plain"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:task>
    <bpmn:sequenceFlow id="f2" sourceRef="plain" targetRef="manual"/>
    <bpmn:manualTask id="manual"/>
    <bpmn:sequenceFlow id="f3" sourceRef="manual" targetRef="end"/>
    <bpmn:endEvent id="end"/>"""))
    instance = api.start()
    assert api.history(instance["id"])["state"] == "COMPLETED"
    assert api.activities(instance["id"]) == ["start", "plain", "manual", "end"]


def test_history_time_to_live_reads_as_camunda_reads_it(api: Api) -> None:
    for ttl, days in (("P180D", 180), ("30", 30)):
        result = api.deploy_model(bpmn('<bpmn:startEvent id="s"/>', key=f"ttl{days}",
                                       attributes=f' camunda:historyTimeToLive="{ttl}"'))
        (definition,) = result["deployedProcessDefinitions"].values()
        assert definition["historyTimeToLive"] == days


def test_out_of_scope_elements_are_refused_once_with_their_cause(api: Api) -> None:
    errors = _refusal(api, bpmn("""
    <bpmn:startEvent id="start" camunda:formKey="embedded:app:start.html"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve"/>
    <bpmn:userTask id="approve"/>
    <bpmn:boundaryEvent id="late" attachedToRef="approve"><bpmn:timerEventDefinition>
      <bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="java"/>
    <bpmn:serviceTask id="java" camunda:class="com.example.Delegate"/>
    <bpmn:sequenceFlow id="f3" sourceRef="java" targetRef="script"/>
    <bpmn:scriptTask id="script" scriptFormat="groovy"><bpmn:script>x</bpmn:script></bpmn:scriptTask>
    <bpmn:serviceTask id="looped" camunda:type="external" camunda:topic="t">
      <bpmn:standardLoopCharacteristics/></bpmn:serviceTask>
    <bpmn:serviceTask id="listened" camunda:type="external" camunda:topic="t">
      <bpmn:extensionElements><camunda:executionListener class="com.example.L" event="start"/>
      </bpmn:extensionElements></bpmn:serviceTask>"""))
    by_element: dict[str, list[str]] = {}
    for item in errors:
        by_element.setdefault(item["mainElementId"], []).append(item["message"])
    assert set(by_element) == {"start", "approve", "java", "script", "looped", "listened"}, errors
    assert all(len(messages) == 1 for messages in by_element.values()), by_element
    assert "start form" in by_element["start"][0]
    assert "user tasks need a tasklist" in by_element["approve"][0]
    assert "camunda:class runs Java inside the engine" in by_element["java"][0]
    assert "scripts run inside a Java engine" in by_element["script"][0]
    assert "standardLoopCharacteristics" in by_element["looped"][0]
    assert "executionListener" in by_element["listened"][0]


def test_boundary_event_on_a_missing_activity_names_it(api: Api) -> None:
    (item,) = _refusal(api, bpmn("""
    <bpmn:startEvent id="s"/>
    <bpmn:boundaryEvent id="b" attachedToRef="ghost"><bpmn:timerEventDefinition>
      <bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>"""))
    assert item["message"] == "Boundary event 'b' is attached to 'ghost', which is not an activity of this process"


def test_timer_start_events_duration_date_and_repeating_cycle(api: Api) -> None:
    model = bpmn("""
    <bpmn:startEvent id="soon"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M</bpmn:timeDuration>
    </bpmn:timerEventDefinition></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="soon" targetRef="task"/>
    <bpmn:startEvent id="noon"><bpmn:timerEventDefinition><bpmn:timeDate>2024-01-16T12:00:00Z</bpmn:timeDate>
    </bpmn:timerEventDefinition></bpmn:startEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="noon" targetRef="task"/>
    <bpmn:startEvent id="hourly"><bpmn:timerEventDefinition><bpmn:timeCycle>R2/PT1H</bpmn:timeCycle>
    </bpmn:timerEventDefinition></bpmn:startEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="hourly" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>""")
    api.deploy_model(model)

    def started() -> list[str]:
        return [row["startActivityId"] for row in api.get("/history/process-instance", sortBy="startTime",
                                                          sortOrder="asc").json()]

    api.advance(60_000)
    assert started() == ["soon"]
    api.advance(3_600_000)
    assert started() == ["soon", "hourly"]
    api.advance(3_600_000)
    assert started() == ["soon", "hourly", "hourly"]
    api.advance(24 * 3_600_000)  # the cycle ran out (R2); the date came
    assert started() == ["soon", "hourly", "hourly", "noon"]
    response = api.post("/process-definition/key/p/start", {})
    assert error(response, 500)["message"].endswith("the process has no none start event (it starts by timer or "
                                                    "message)")


def test_cron_cycle_and_invalid_cron_is_refused(api: Api) -> None:
    items = _refusal(api, bpmn("""<bpmn:startEvent id="s"><bpmn:timerEventDefinition>
      <bpmn:timeCycle>0 0 12 * * MON-FRI L</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:startEvent>"""))
    assert "unsupported value 'L'" in items[0]["message"]
    api.deploy_model(bpmn("""<bpmn:startEvent id="s"><bpmn:timerEventDefinition>
      <bpmn:timeCycle>0 0 9 ? * MON-FRI</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:startEvent>
      <bpmn:sequenceFlow id="f" sourceRef="s" targetRef="t"/>
      <bpmn:serviceTask id="t" camunda:type="external" camunda:topic="work"/>"""))
    # the clock starts Monday 2024-01-15 12:00 UTC: the next fire is Tuesday 09:00
    api.advance(20 * 3_600_000)
    assert api.get("/history/process-instance/count").json()["count"] == 0
    api.advance(1 * 3_600_000)
    (row,) = api.get("/history/process-instance").json()
    assert row["startTime"].startswith("2024-01-16T09:00:00")


def test_non_interrupting_timer_cycle_on_a_task(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>
    <bpmn:boundaryEvent id="remind" attachedToRef="task" cancelActivity="false">
      <bpmn:timerEventDefinition><bpmn:timeCycle>R3/PT10M</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="remind" targetRef="reminder"/>
    <bpmn:serviceTask id="reminder" camunda:type="external" camunda:topic="remind"/>"""))
    api.start()
    for _ in range(4):
        api.advance(600_000)
    assert len(api.fetch(topic="remind")) == 3
    assert len(api.fetch(topic="work")) == 1


def test_conditional_events_react_to_variable_changes(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:conditionalEventDefinition>
      <bpmn:condition>${stock &gt; 0}</bpmn:condition></bpmn:conditionalEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="ship"/>
    <bpmn:serviceTask id="ship" camunda:type="external" camunda:topic="ship"/>
    <bpmn:sequenceFlow id="f4" sourceRef="fork" targetRef="review"/>
    <bpmn:serviceTask id="review" camunda:type="external" camunda:topic="review"/>
    <bpmn:boundaryEvent id="changed" attachedToRef="review" cancelActivity="false">
      <bpmn:conditionalEventDefinition camunda:variableName="note">
        <bpmn:condition>${note != null}</bpmn:condition></bpmn:conditionalEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f5" sourceRef="changed" targetRef="notify"/>
    <bpmn:serviceTask id="notify" camunda:type="external" camunda:topic="notify"/>"""))
    instance = api.start(variables={"stock": {"value": 0}})
    assert api.fetch(topic="ship") == [] and api.fetch(topic="notify") == []
    base = f"/process-instance/{instance['id']}/variables"
    assert api.post(base, {"modifications": {"stock": {"value": 3}}}).status_code == 204
    assert len(api.fetch(topic="ship")) == 1
    assert api.fetch(topic="notify") == []  # variableName="note": other changes do not count
    assert api.post(base, {"modifications": {"note": {"value": "call me"}}}).status_code == 204
    assert len(api.fetch(topic="notify")) == 1
    assert len(api.fetch(topic="review", lock=1)) == 1  # non-interrupting: the task is still there


def test_parallel_multi_instance_with_collection_and_completion_condition(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="each"/>
    <bpmn:serviceTask id="each" camunda:type="external" camunda:topic="item">
      <bpmn:multiInstanceLoopCharacteristics camunda:collection="${items}" camunda:elementVariable="item">
        <bpmn:completionCondition>${nrOfCompletedInstances &gt;= 2}</bpmn:completionCondition>
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="each" targetRef="after"/>
    <bpmn:serviceTask id="after" camunda:type="external" camunda:topic="after"/>"""))
    instance = api.start(variables={"items": {"value": '["a","b","c"]', "type": "Json"}})
    tasks = api.fetch(topic="item", variables=["item", "loopCounter", "nrOfInstances", "nrOfActiveInstances"])
    assert sorted(t["variables"]["item"]["value"] for t in tasks) == ["a", "b", "c"]
    assert sorted(t["variables"]["loopCounter"]["value"] for t in tasks) == [0, 1, 2]
    assert {t["variables"]["nrOfInstances"]["value"] for t in tasks} == {3}
    assert api.complete(tasks[0]["id"]).status_code == 204
    assert api.fetch(topic="after") == []
    assert api.complete(tasks[1]["id"]).status_code == 204
    assert len(api.fetch(topic="after")) == 1
    assert api.tasks(topicName="item") == []  # the third was cancelled by the completion condition
    bodies = api.get("/history/activity-instance", processInstanceId=instance["id"],
                     activityType="multiInstanceBody").json()
    assert [b["activityId"] for b in bodies] == ["each#multiInstanceBody"] and bodies[0]["endTime"]


def test_sequential_multi_instance_subprocess_with_cardinality(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
    <bpmn:subProcess id="sub">
      <bpmn:multiInstanceLoopCharacteristics isSequential="true">
        <bpmn:loopCardinality>${rounds}</bpmn:loopCardinality>
      </bpmn:multiInstanceLoopCharacteristics>
      <bpmn:startEvent id="s2"/>
      <bpmn:sequenceFlow id="g1" sourceRef="s2" targetRef="step"/>
      <bpmn:serviceTask id="step" camunda:type="external" camunda:topic="step"/>
      <bpmn:sequenceFlow id="g2" sourceRef="step" targetRef="e2"/>
      <bpmn:endEvent id="e2"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>
    <bpmn:endEvent id="end"/>"""))
    instance = api.start(variables={"rounds": {"value": 2}})
    for expected in (0, 1):
        task = api.fetch_one(topic="step", variables=["loopCounter"])
        assert task["variables"]["loopCounter"]["value"] == expected
        assert api.complete(task["id"]).status_code == 204
    assert api.history(instance["id"])["state"] == "COMPLETED"


def test_call_activity_passes_variables_and_business_key_both_ways(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="cs"/>
    <bpmn:sequenceFlow id="c1" sourceRef="cs" targetRef="work"/>
    <bpmn:serviceTask id="work" camunda:type="external" camunda:topic="child"/>
    <bpmn:sequenceFlow id="c2" sourceRef="work" targetRef="ce"/>
    <bpmn:endEvent id="ce"/>""", key="child"))
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <bpmn:callActivity id="call" calledElement="child">
      <bpmn:extensionElements>
        <camunda:in variables="all"/>
        <camunda:in businessKey="#{execution.processBusinessKey}"/>
        <camunda:out source="result" target="childResult"/>
      </bpmn:extensionElements>
    </bpmn:callActivity>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="after"/>
    <bpmn:serviceTask id="after" camunda:type="external" camunda:topic="after"/>""", key="parent"))
    parent = api.start(key="parent", variables={"order": {"value": 7}}, businessKey="order-7")
    task = api.fetch_one(topic="child", variables=["order"])
    assert task["variables"]["order"]["value"] == 7 and task["businessKey"] == "order-7"
    child = api.history(task["processInstanceId"])
    assert child["superProcessInstanceId"] == parent["id"]
    assert api.complete(task["id"], variables={"result": {"value": "done"}}).status_code == 204
    after = api.fetch_one(topic="after", variables=["childResult", "result"])
    assert after["variables"] == {"childResult": {"type": "String", "value": "done", "valueInfo": {}}}
    assert api.history(task["processInstanceId"])["state"] == "COMPLETED"


def test_call_activity_catches_an_error_of_the_called_process(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="cs"/>
    <bpmn:sequenceFlow id="c1" sourceRef="cs" targetRef="work"/>
    <bpmn:serviceTask id="work" camunda:type="external" camunda:topic="child"/>""", key="child"))
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <bpmn:callActivity id="call" calledElement="child"/>
    <bpmn:boundaryEvent id="failed" attachedToRef="call"><bpmn:errorEventDefinition/></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="failed" targetRef="handle"/>
    <bpmn:serviceTask id="handle" camunda:type="external" camunda:topic="handle"/>""", key="parent"))
    api.start(key="parent")
    task = api.fetch_one(topic="child")
    response = api.post(f"/external-task/{task['id']}/bpmnError", {"workerId": "w1", "errorCode": "E1"})
    assert response.status_code == 204, response.text
    assert len(api.fetch(topic="handle")) == 1
    assert api.history(task["processInstanceId"])["state"] != "ACTIVE"


def test_messages_start_processes_and_reach_waiting_events(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="byOrder"><bpmn:messageEventDefinition messageRef="m2"/></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="byOrder" targetRef="waitPaid"/>
    <bpmn:intermediateCatchEvent id="waitPaid"><bpmn:messageEventDefinition messageRef="m1"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="waitPaid" targetRef="ship"/>
    <bpmn:serviceTask id="ship" camunda:type="external" camunda:topic="ship"/>""", errors=MESSAGES))
    started = api.post("/message", {"messageName": "order", "businessKey": "o-1", "resultEnabled": True,
                                    "processVariables": {"amount": {"value": 5}}})
    assert started.status_code == 200, started.text
    (result,) = started.json()
    assert result["resultType"] == "ProcessDefinition" and result["processInstance"]["businessKey"] == "o-1"
    api.post("/message", {"messageName": "order", "businessKey": "o-2"})
    missing = api.post("/message", {"messageName": "paid", "businessKey": "o-3"})
    assert error(missing, 400)["message"] == ("Cannot correlate message 'paid': No process definition or execution "
                                              "matches the parameters")
    assert error(api.post("/message", {"messageName": "paid"}), 400)["message"].startswith(
        "Cannot correlate a message with name 'paid' to a single execution. 2 executions match")
    paid = api.post("/message", {"messageName": "paid", "businessKey": "o-1",
                                 "processVariables": {"paidAt": {"value": "today"}}})
    assert paid.status_code == 204, paid.text
    task = api.fetch_one(topic="ship", variables=["amount", "paidAt"])
    assert task["businessKey"] == "o-1" and task["variables"]["paidAt"]["value"] == "today"
    assert api.post("/message", {"messageName": "paid", "all": True}).status_code == 204
    assert len(api.fetch(topic="ship")) == 1  # o-2's


def test_receive_task_and_message_boundary(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:serviceTask id="work" camunda:type="external" camunda:topic="work"/>
    <bpmn:boundaryEvent id="cancelled" attachedToRef="work"><bpmn:messageEventDefinition messageRef="m2"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="cancelled" targetRef="confirm"/>
    <bpmn:receiveTask id="confirm" messageRef="m1"/>
    <bpmn:sequenceFlow id="f3" sourceRef="confirm" targetRef="end"/>
    <bpmn:endEvent id="end"/>""", errors=MESSAGES))
    instance = api.start(businessKey="k")
    assert api.post("/message", {"messageName": "order", "processInstanceId": instance["id"]}).status_code == 204
    assert api.tasks(topicName="work") == []
    assert api.post("/message", {"messageName": "paid", "businessKey": "k"}).status_code == 204
    assert api.history(instance["id"])["state"] == "COMPLETED"


def test_signals_reach_waiting_events_and_start_processes(api: Api) -> None:
    signals = '<bpmn:signal id="s1" name="stop"/><bpmn:signal id="s2" name="go"/>'
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="byGo"><bpmn:signalEventDefinition signalRef="s2"/></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="byGo" targetRef="work"/>
    <bpmn:serviceTask id="work" camunda:type="external" camunda:topic="work"/>
    <bpmn:boundaryEvent id="stopped" attachedToRef="work"><bpmn:signalEventDefinition signalRef="s1"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="stopped" targetRef="end"/>
    <bpmn:endEvent id="end"/>""", key="worker", errors=signals))
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="throw"/>
    <bpmn:intermediateThrowEvent id="throw"><bpmn:signalEventDefinition signalRef="s2"/>
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="throw" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:signalEventDefinition signalRef="s1"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="done"/>
    <bpmn:endEvent id="done"/>""", key="thrower", errors=signals))
    thrower = api.start(key="thrower")  # its throw event starts a "worker" instance
    assert len(api.tasks(topicName="work")) == 1
    assert api.post("/signal", {"name": "go", "variables": {"batch": {"value": 2}}}).status_code == 204
    assert len(api.tasks(topicName="work")) == 2
    assert api.post("/signal", {"name": "stop"}).status_code == 204
    assert api.tasks(topicName="work") == []
    assert api.history(thrower["id"])["state"] == "COMPLETED"
    assert error(api.post("/signal", {}), 400)["message"] == "No signal name given"


def test_timer_arithmetic() -> None:
    monday_noon = 1_705_320_000_000  # 2024-01-15T12:00:00Z
    cron = timers.parse_cycle("0/5 0/1 * 1/1 * ?")
    assert cron.first_due(monday_noon) == monday_noon + 5_000
    assert cron.next_due(monday_noon, monday_noon + 3_600_000) == monday_noon + 3_605_000  # no catch-up storm
    weekdays = timers.Cron("0 30 8 ? * MON-FRI *")
    friday_evening = monday_noon + 4 * 86_400_000 + 8 * 3_600_000
    assert weekdays.next_after(friday_evening) == monday_noon + 7 * 86_400_000 - 3 * 3_600_000 - 1_800_000
    interval = timers.parse_cycle("R3/2024-01-15T13:00:00Z/PT30M")
    assert (interval.repeats, interval.first_due(monday_noon)) == (3, monday_noon + 3_600_000)
    assert interval.next_due(monday_noon + 3_600_000, 0) == monday_noon + 5_400_000
    assert timers.first_due("duration", "P1DT2H", 0) == (93_600_000, None, None)
    for bad in ("R3/PT0S", "0 0 12 * * *", "61 * * * * ?", "R3/PT"):
        with pytest.raises(ValueError):
            timers.parse_cycle(bad)


def test_a_cycle_on_an_interrupting_timer_fires_once(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>
    <bpmn:boundaryEvent id="late" attachedToRef="task">
      <bpmn:timerEventDefinition><bpmn:timeCycle>R/PT10M</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="late" targetRef="escalate"/>
    <bpmn:serviceTask id="escalate" camunda:type="external" camunda:topic="escalate"/>"""))
    api.start()
    api.advance(3 * 600_000)
    assert len(api.fetch(topic="escalate")) == 1 and api.tasks(topicName="work") == []


def test_event_based_gateway_takes_the_first_event(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:eventBasedGateway id="gw"/>
    <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="paid"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="timeout"/>
    <bpmn:intermediateCatchEvent id="paid"><bpmn:messageEventDefinition messageRef="m1"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="timeout"><bpmn:timerEventDefinition>
      <bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f4" sourceRef="paid" targetRef="ship"/>
    <bpmn:serviceTask id="ship" camunda:type="external" camunda:topic="ship"/>
    <bpmn:sequenceFlow id="f5" sourceRef="timeout" targetRef="remind"/>
    <bpmn:serviceTask id="remind" camunda:type="external" camunda:topic="remind"/>""", errors=MESSAGES))
    first = api.start(businessKey="a")
    second = api.start(businessKey="b")
    assert api.post("/message", {"messageName": "paid", "businessKey": "a"}).status_code == 204
    api.advance(3_600_000)
    (ship,) = api.fetch(topic="ship")
    (remind,) = api.fetch(topic="remind")
    assert (ship["processInstanceId"], remind["processInstanceId"]) == (first["id"], second["id"])
    assert api.activities(first["id"]) == ["start", "gw", "paid", "ship"]
    assert error(api.post("/message", {"messageName": "paid", "businessKey": "b"}), 400)
