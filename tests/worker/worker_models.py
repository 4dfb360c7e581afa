"""BPMN models the worker tests deploy to the sandbox engine."""

from __future__ import annotations

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="http://exchanger/tests">
"""


def one_task(key: str, topic: str, *, then_topic: str | None = None) -> str:
    """start → external task ``topic`` (with properties, fields, I/O) → [external task ``then_topic``] → end.

    ``then_topic`` keeps the instance alive after the first task so that its variables can be read.
    """
    after = "end"
    second = ""
    if then_topic:
        after = "after"
        second = f"""
    <bpmn:serviceTask id="after" name="After" camunda:type="external" camunda:topic="{then_topic}" />
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end" />"""
    return HEADER + f"""  <bpmn:process id="{key}" name="Process {key}" isExecutable="true">
    <bpmn:extensionElements>
      <camunda:properties><camunda:property name="department" value="sales" /></camunda:properties>
    </bpmn:extensionElements>
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:serviceTask id="work" name="Do the work" camunda:type="external" camunda:topic="{topic}">
      <bpmn:documentation>Create a task for the responsible person.</bpmn:documentation>
      <bpmn:extensionElements>
        <camunda:properties>
          <camunda:property name="responsible_id" value="7" />
          <camunda:property name="deadline_days" value="2" />
        </camunda:properties>
        <camunda:field name="title" stringValue="Call the customer" />
        <camunda:inputOutput>
          <camunda:inputParameter name="priority_label">high</camunda:inputParameter>
          <camunda:inputParameter name="watchers">
            <camunda:list><camunda:value>1</camunda:value><camunda:value>2</camunda:value></camunda:list>
          </camunda:inputParameter>
        </camunda:inputOutput>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="{after}" />{second}
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def with_error_boundary(key: str, topic: str, error_code: str, handler_topic: str, done_topic: str) -> str:
    """start → ``topic`` → ``done_topic``; a BPMN error ``error_code`` on it leads to ``handler_topic`` instead."""
    return HEADER + f"""  <bpmn:error id="err" name="Business error" errorCode="{error_code}" />
  <bpmn:process id="{key}" name="Process {key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:serviceTask id="work" name="Do the work" camunda:type="external" camunda:topic="{topic}" />
    <bpmn:boundaryEvent id="caught" attachedToRef="work">
      <bpmn:errorEventDefinition errorRef="err" camunda:errorCodeVariable="caughtCode"
                                 camunda:errorMessageVariable="caughtMessage" />
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="done" />
    <bpmn:serviceTask id="done" camunda:type="external" camunda:topic="{done_topic}" />
    <bpmn:sequenceFlow id="f3" sourceRef="done" targetRef="end" />
    <bpmn:sequenceFlow id="f4" sourceRef="caught" targetRef="handle" />
    <bpmn:serviceTask id="handle" camunda:type="external" camunda:topic="{handler_topic}" />
    <bpmn:sequenceFlow id="f5" sourceRef="handle" targetRef="end2" />
    <bpmn:endEvent id="end" />
    <bpmn:endEvent id="end2" />
  </bpmn:process>
</bpmn:definitions>
"""


def with_gateway(key: str, topic: str, variable: str) -> str:
    """start → external task ``topic`` → gateway on ``${variable == "ok"}`` → end: a variable nobody sets
    makes Camunda refuse the completion ("Unknown property used in expression")."""
    return HEADER + f"""  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:serviceTask id="work" name="Ask" camunda:type="external" camunda:topic="{topic}" />
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="decide" />
    <bpmn:exclusiveGateway id="decide" default="no" />
    <bpmn:sequenceFlow id="yes" sourceRef="decide" targetRef="approved">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">${{{variable} == "ok"}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="no" sourceRef="decide" targetRef="rejected" />
    <bpmn:endEvent id="approved" />
    <bpmn:endEvent id="rejected" />
  </bpmn:process>
</bpmn:definitions>
"""
