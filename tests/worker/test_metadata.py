"""BPMN metadata: the parser on a model using every extension, and the cache's LRU/TTL/single-flight rules."""

from __future__ import annotations

import threading
import time
import traceback

import pytest

from exchanger.camunda.metadata import MetadataCache, MetadataError, parse_definition
from exchanger.errors import TransientError

XML = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="onboarding" name="Onboarding" isExecutable="true">
    <bpmn:extensionElements>
      <camunda:properties><camunda:property name="owner" value="hr" /></camunda:properties>
    </bpmn:extensionElements>
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="create" name="Create the task" camunda:type="external" camunda:topic="bitrix_create_task">
      <bpmn:documentation>  Opens a Bitrix24 task for the manager.  </bpmn:documentation>
      <bpmn:extensionElements>
        <camunda:properties>
          <camunda:property name="responsible" value="42" />
          <camunda:property name="deadline_days" value="3" />
        </camunda:properties>
        <camunda:field name="title" stringValue="Welcome ${name}" />
        <camunda:field name="group"><camunda:string>HR</camunda:string></camunda:field>
        <camunda:field name="who" expression="${manager}" />
        <camunda:field name="when"><camunda:expression>${now()}</camunda:expression></camunda:field>
        <camunda:inputOutput>
          <camunda:inputParameter name="plain">text</camunda:inputParameter>
          <camunda:inputParameter name="expr">${amount * 2}</camunda:inputParameter>
          <camunda:inputParameter name="empty" />
          <camunda:inputParameter name="items">
            <camunda:list><camunda:value>a</camunda:value><camunda:value>${b}</camunda:value></camunda:list>
          </camunda:inputParameter>
          <camunda:inputParameter name="mapping">
            <camunda:map>
              <camunda:entry key="k1">v1</camunda:entry>
              <camunda:entry key="nested"><camunda:list><camunda:value>x</camunda:value></camunda:list></camunda:entry>
            </camunda:map>
          </camunda:inputParameter>
          <camunda:inputParameter name="scripted">
            <camunda:script scriptFormat="groovy">return 1 + 1</camunda:script>
          </camunda:inputParameter>
          <camunda:outputParameter name="result">${taskResult}</camunda:outputParameter>
          <camunda:outputParameter name="fromFile">
            <camunda:script scriptFormat="javascript" resource="classpath://out.js" />
          </camunda:outputParameter>
        </camunda:inputOutput>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:subProcess id="sub">
      <bpmn:sendTask id="notify" camunda:type="external" camunda:topic="send-email.v2" />
    </bpmn:subProcess>
    <bpmn:intermediateThrowEvent id="throw" name="Tell 1C">
      <bpmn:messageEventDefinition camunda:type="external" camunda:topic="1c_create_document" />
    </bpmn:intermediateThrowEvent>
    <bpmn:serviceTask id="java" camunda:class="com.example.Delegate" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
  <bpmn:process id="other" name="Other">
    <bpmn:businessRuleTask id="rule" camunda:type="external" camunda:topic="decide" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_every_external_activity_is_described() -> None:
    activities = parse_definition(XML)
    assert set(activities) == {"create", "notify", "throw", "rule"}
    create = activities["create"]
    assert create.activity_name == "Create the task"
    assert create.activity_type == "serviceTask"
    assert create.topic == "bitrix_create_task"
    assert create.documentation == "Opens a Bitrix24 task for the manager."
    assert create.extension_properties == {"responsible": "42", "deadline_days": "3"}
    assert create.process_name == "Onboarding"
    assert create.process_properties == {"owner": "hr"}  # the process's own, not its activities'


def test_field_injections_keep_strings_plain_and_mark_expressions() -> None:
    fields = parse_definition(XML)["create"].field_injections
    assert fields == {
        "title": "Welcome ${name}",
        "group": "HR",
        "who": {"expression": "${manager}"},
        "when": {"expression": "${now()}"},
    }


def test_io_parameters_text_lists_maps_and_scripts() -> None:
    io = parse_definition(XML)["create"].io_parameters
    assert io.input == {
        "plain": "text",
        "expr": "${amount * 2}",
        "empty": None,
        "items": ["a", "${b}"],
        "mapping": {"k1": "v1", "nested": ["x"]},
        "scripted": {"script_format": "groovy", "script": "return 1 + 1"},
    }
    assert io.output == {
        "result": "${taskResult}",
        "fromFile": {"script_format": "javascript", "resource": "classpath://out.js"},
    }


def test_nested_and_event_activities_and_other_processes() -> None:
    activities = parse_definition(XML)
    assert activities["notify"].topic == "send-email.v2"
    assert activities["notify"].process_name == "Onboarding"
    assert activities["throw"].activity_type == "intermediateThrowEvent"
    assert activities["throw"].topic == "1c_create_document"
    assert activities["rule"].process_name == "Other"
    assert activities["rule"].process_properties == {}


def test_not_bpmn_is_refused() -> None:
    with pytest.raises(MetadataError, match="not well-formed"):
        parse_definition("<oops")
    with pytest.raises(MetadataError, match="not a BPMN"):
        parse_definition("<root/>")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_hits_misses_ttl_and_lru() -> None:
    loads: list[str] = []
    clock = FakeClock()

    def load(definition_id: str) -> str:
        loads.append(definition_id)
        return XML

    cache = MetadataCache(load, size=2, ttl_s=60, clock=clock)
    assert cache.activity("p:1", "create").topic == "bitrix_create_task"
    assert cache.activity("p:1", "notify").topic == "send-email.v2"
    assert cache.activity("p:1", "unknown").topic == ""
    assert loads == ["p:1"]
    cache.definition("p:2")
    cache.definition("p:1")  # p:1 is now the most recent
    cache.definition("p:3")  # evicts p:2
    cache.definition("p:1")
    assert loads == ["p:1", "p:2", "p:3"]
    clock.now += 61
    cache.definition("p:1")
    assert loads == ["p:1", "p:2", "p:3", "p:1"]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.size) == (4, 4, 2)


def test_failures_are_remembered_only_briefly() -> None:
    clock = FakeClock()
    calls = []

    def load(definition_id: str) -> str:
        calls.append(definition_id)
        if len(calls) == 1:
            raise TransientError("engine down")
        return XML

    cache = MetadataCache(load, failure_ttl_s=5, clock=clock)
    for _ in range(3):
        with pytest.raises(TransientError):
            cache.definition("p:1")
    assert len(calls) == 1
    clock.now += 6
    assert "create" in cache.definition("p:1")
    assert cache.stats().failures == 1


def test_a_remembered_failure_does_not_grow_its_traceback() -> None:
    def load(definition_id: str) -> str:
        raise MetadataError("definition XML is not well-formed")

    cache = MetadataCache(load, failure_ttl_s=60)
    lengths = []
    for _ in range(50):
        with pytest.raises(MetadataError) as caught:
            cache.definition("p:1")
        lengths.append(len(traceback.format_exception(caught.value)))
    assert len(set(lengths)) == 1, lengths  # the same short traceback on every pass, not one frame more each time


def test_concurrent_misses_fetch_once_and_other_keys_are_not_blocked() -> None:
    release = threading.Event()
    loads: list[str] = []

    def load(definition_id: str) -> str:
        loads.append(definition_id)
        if definition_id == "slow":
            release.wait(5)
        return XML

    cache = MetadataCache(load)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.definition("slow"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    cache.definition("fast")  # no global lock is held while "slow" is being fetched
    assert time.monotonic() - started < 1
    release.set()
    for thread in threads:
        thread.join(5)
    assert loads.count("slow") == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
