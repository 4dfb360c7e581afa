"""Token engine semantics over REST: gateways, rollback, scopes, subprocesses, errors, timers."""

from __future__ import annotations

from .conftest import Api, bpmn, error

XOR = bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="toLow"/>
    <bpmn:sequenceFlow id="toHigh" sourceRef="gw" targetRef="high">
      <bpmn:conditionExpression>${x &gt; 5}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="toLow" sourceRef="gw" targetRef="low"/>
    <bpmn:serviceTask id="high" camunda:type="external" camunda:topic="high"/>
    <bpmn:serviceTask id="low" camunda:type="external" camunda:topic="low"/>""")


def test_exclusive_gateway_condition_and_default(api: Api) -> None:
    api.deploy_model(XOR)
    api.start(variables={"x": {"value": 1}})
    api.start(variables={"x": {"value": 10}})
    for task in api.fetch(max_tasks=2):
        assert api.complete(task["id"]).status_code == 204
    assert len(api.fetch(topic="high")) == 1
    assert len(api.fetch(topic="low")) == 1


def test_failing_gateway_condition_rolls_back_the_complete(api: Api) -> None:
    api.deploy_model(XOR)
    api.start()
    task = api.fetch_one()
    body = error(api.complete(task["id"], variables={"y": {"value": 1}}), 500)
    assert body == {"type": "ProcessEngineException", "code": 0, "message":
                    "Unknown property used in expression: ${x > 5}. Cause: Cannot resolve identifier 'x'"}
    current = api.get(f"/external-task/{task['id']}").json()
    assert current["workerId"] == "w1"  # still there and still locked
    variables = api.get(f"/process-instance/{task['processInstanceId']}/variables").json()
    assert "y" not in variables  # the variables of the failed command were rolled back too
    assert api.complete(task["id"], variables={"x": {"value": 6}}).status_code == 204
    assert len(api.fetch(topic="high")) == 1


def test_no_selectable_flow_is_500(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw"/>
    <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="end">
      <bpmn:conditionExpression>${false}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="end"/>"""))
    response = api.post("/process-definition/key/p/start", {})
    body = error(response, 500)
    assert body["type"] == "RestException"
    assert body["message"].endswith("ENGINE-02004 No outgoing sequence flow for the element with id 'gw' could be "
                                    "selected for continuing the process.")
    assert body["message"].startswith("Cannot instantiate process definition p:1:")
    assert api.get("/history/process-instance/count").json() == {"count": 0}


def test_parallel_fork_and_join(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="a"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="b"/>
    <bpmn:serviceTask id="a" camunda:type="external" camunda:topic="a"/>
    <bpmn:serviceTask id="b" camunda:type="external" camunda:topic="b"/>
    <bpmn:sequenceFlow id="f4" sourceRef="a" targetRef="join"/>
    <bpmn:sequenceFlow id="f5" sourceRef="b" targetRef="join"/>
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="after"/>
    <bpmn:serviceTask id="after" camunda:type="external" camunda:topic="after"/>"""))
    instance = api.start()
    a, b = api.fetch_one(topic="a"), api.fetch_one(topic="b")
    api.complete(a["id"], variables={"fromA": {"value": 1}})
    assert api.fetch(topic="after") == []
    api.complete(b["id"], localVariables={"onlyB": {"value": 2}})
    after = api.fetch_one(topic="after")
    assert "fromA" in after["variables"] and "onlyB" not in after["variables"]
    assert after["processInstanceId"] == instance["id"]


def test_inclusive_gateway_joins_only_the_taken_paths(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:inclusiveGateway id="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="a">
      <bpmn:conditionExpression>${wantA}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="b">
      <bpmn:conditionExpression>${wantB}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:serviceTask id="a" camunda:type="external" camunda:topic="a"/>
    <bpmn:serviceTask id="b" camunda:type="external" camunda:topic="b"/>
    <bpmn:sequenceFlow id="f4" sourceRef="a" targetRef="join"/>
    <bpmn:sequenceFlow id="f5" sourceRef="b" targetRef="join"/>
    <bpmn:inclusiveGateway id="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="after"/>
    <bpmn:serviceTask id="after" camunda:type="external" camunda:topic="after"/>"""))
    api.start(variables={"wantA": {"value": True}, "wantB": {"value": False}})
    api.complete(api.fetch_one(topic="a")["id"])
    assert len(api.fetch(topic="after")) == 1
    api.start(variables={"wantA": {"value": True}, "wantB": {"value": True}})
    api.complete(api.fetch_one(topic="a")["id"])
    assert api.fetch(topic="after") == []
    api.complete(api.fetch_one(topic="b")["id"])
    assert len(api.fetch(topic="after")) == 1


SUBPROCESS = bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
    <bpmn:subProcess id="sub">
      <bpmn:extensionElements><camunda:inputOutput>
        <camunda:inputParameter name="inner">${outer * 2}</camunda:inputParameter>
      </camunda:inputOutput></bpmn:extensionElements>
      <bpmn:startEvent id="subStart"/>
      <bpmn:sequenceFlow id="s1" sourceRef="subStart" targetRef="step"/>
      <bpmn:serviceTask id="step" camunda:type="external" camunda:topic="step">
        <bpmn:extensionElements><camunda:inputOutput>
          <camunda:outputParameter name="result">${answer}</camunda:outputParameter>
        </camunda:inputOutput></bpmn:extensionElements>
      </bpmn:serviceTask>
      <bpmn:sequenceFlow id="s2" sourceRef="step" targetRef="gw"/>
      <bpmn:exclusiveGateway id="gw"/>
      <bpmn:sequenceFlow id="s3" sourceRef="gw" targetRef="subEnd">
        <bpmn:conditionExpression>${result == 'ok'}</bpmn:conditionExpression></bpmn:sequenceFlow>
      <bpmn:sequenceFlow id="s4" sourceRef="gw" targetRef="fail">
        <bpmn:conditionExpression>${result != 'ok'}</bpmn:conditionExpression></bpmn:sequenceFlow>
      <bpmn:endEvent id="subEnd"/>
      <bpmn:endEvent id="fail"><bpmn:errorEventDefinition errorRef="err"/></bpmn:endEvent>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="next"/>
    <bpmn:serviceTask id="next" camunda:type="external" camunda:topic="next"/>
    <bpmn:boundaryEvent id="onError" attachedToRef="sub"><bpmn:errorEventDefinition/></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="onError" targetRef="repair"/>
    <bpmn:serviceTask id="repair" camunda:type="external" camunda:topic="repair"/>""",
                  errors='<bpmn:error id="err" errorCode="SUB_FAILED"/>')


def test_subprocess_scopes_input_and_output_mapping(api: Api) -> None:
    api.deploy_model(SUBPROCESS)
    instance = api.start(variables={"outer": {"value": 21}})
    step = api.fetch_one(topic="step")
    assert step["variables"]["inner"]["value"] == 42
    api.complete(step["id"], variables={"answer": {"value": "ok"}})
    following = api.fetch_one(topic="next")
    variables = following["variables"]
    assert "inner" not in variables  # the subprocess scope ended with its local variable
    assert variables["result"]["value"] == "ok"
    assert variables["answer"]["value"] == "ok"
    assert api.activities(instance["id"])[:3] == ["start", "sub", "subStart"]


def test_error_end_event_in_subprocess_is_caught_by_the_boundary_event(api: Api) -> None:
    api.deploy_model(SUBPROCESS)
    instance = api.start(variables={"outer": {"value": 1}})
    api.complete(api.fetch_one(topic="step")["id"], variables={"answer": {"value": "bad"}})
    assert len(api.fetch(topic="repair")) == 1
    assert api.fetch(topic="next") == []
    rows = api.get("/history/activity-instance", processInstanceId=instance["id"], activityId="sub").json()
    assert rows[0]["canceled"] is True


def test_bpmn_error_from_task_inside_subprocess_propagates_to_subprocess_boundary(api: Api) -> None:
    api.deploy_model(SUBPROCESS)
    api.start(variables={"outer": {"value": 1}})
    step = api.fetch_one(topic="step")
    assert api.post(f"/external-task/{step['id']}/bpmnError", {"workerId": "w1", "errorCode": "ANY"}
                    ).status_code == 204
    assert len(api.fetch(topic="repair")) == 1


def test_terminate_end_event_cancels_the_other_paths(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="a"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="b"/>
    <bpmn:serviceTask id="a" camunda:type="external" camunda:topic="a"/>
    <bpmn:serviceTask id="b" camunda:type="external" camunda:topic="b"/>
    <bpmn:sequenceFlow id="f4" sourceRef="a" targetRef="kill"/>
    <bpmn:endEvent id="kill"><bpmn:terminateEventDefinition/></bpmn:endEvent>"""))
    instance = api.start()
    b = api.fetch_one(topic="b")
    api.complete(api.fetch_one(topic="a")["id"])
    assert api.history(instance["id"])["state"] == "COMPLETED"
    error(api.complete(b["id"]), 404)


def test_boundary_timer_cancels_the_task(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>
    <bpmn:boundaryEvent id="late" attachedToRef="task">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="late" targetRef="escalate"/>
    <bpmn:serviceTask id="escalate" camunda:type="external" camunda:topic="escalate"/>"""))
    api.start()
    task = api.fetch_one()
    api.advance(3_599_000)
    assert api.fetch(topic="escalate") == []
    response = api.post("/_admin/clock", {"advance_ms": 1000})
    assert response.status_code == 200 and "now" in response.json()
    assert len(api.fetch(topic="escalate")) == 1
    error(api.complete(task["id"]), 404)


def test_intermediate_timer_catch_event_waits(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait">
      <bpmn:timerEventDefinition><bpmn:timeDuration>${delay}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work"/>"""))
    api.start(variables={"delay": {"value": "P1D"}})
    assert api.fetch() == []
    api.advance(86_400_000)
    assert len(api.fetch()) == 1


def test_message_throw_and_end_events_as_external_tasks(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="notify"/>
    <bpmn:intermediateThrowEvent id="notify">
      <bpmn:messageEventDefinition camunda:type="external" camunda:topic="notify"/>
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="notify" targetRef="done"/>
    <bpmn:endEvent id="done">
      <bpmn:messageEventDefinition camunda:type="external" camunda:topic="topic-${kind}"/>
    </bpmn:endEvent>"""))
    instance = api.start(variables={"kind": {"value": "final"}})
    api.complete(api.fetch_one(topic="notify")["id"])
    assert api.history(instance["id"])["state"] == "ACTIVE"
    api.complete(api.fetch_one(topic="topic-final")["id"])
    assert api.history(instance["id"])["state"] == "COMPLETED"


def test_variables_propagate_to_the_scope_that_holds_them(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work">
      <bpmn:extensionElements><camunda:inputOutput>
        <camunda:inputParameter name="local">before</camunda:inputParameter>
      </camunda:inputOutput></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="second"/>
    <bpmn:serviceTask id="second" camunda:type="external" camunda:topic="second"/>"""))
    instance = api.start(variables={"shared": {"value": 1}})
    task = api.fetch_one()
    api.complete(task["id"], variables={"local": {"value": "after"}, "shared": {"value": 2}, "new": {"value": 3}})
    variables = api.get(f"/process-instance/{instance['id']}/variables").json()
    assert variables["shared"]["value"] == 2 and variables["new"]["value"] == 3
    assert "local" not in variables  # it was set on the task scope, which is gone


def test_camunda_error_event_definition_turns_complete_into_bpmn_error(api: Api) -> None:
    api.deploy_model(bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:serviceTask id="task" camunda:type="external" camunda:topic="work">
      <bpmn:extensionElements>
        <camunda:errorEventDefinition id="def" errorRef="err" expression="${status == 'rejected'}"/>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="ok"/>
    <bpmn:serviceTask id="ok" camunda:type="external" camunda:topic="ok"/>
    <bpmn:boundaryEvent id="rejected" attachedToRef="task"><bpmn:errorEventDefinition errorRef="err"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="rejected" targetRef="no"/>
    <bpmn:serviceTask id="no" camunda:type="external" camunda:topic="no"/>""",
                          errors='<bpmn:error id="err" errorCode="REJECTED"/>'))
    api.start()
    api.complete(api.fetch_one()["id"], variables={"status": {"value": "rejected"}})
    assert len(api.fetch(topic="no")) == 1 and api.fetch(topic="ok") == []
