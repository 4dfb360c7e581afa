"""The converter against cases T1–T10, as golden files.

Each input ``golden/<case>.bpmn`` converts to exactly ``golden/<case>.out.bpmn``, converts to the same
bytes again, and deploys on the bundled engine. The assertions next to each case say *why* the golden
output is right, so a regenerated file (``GOLDEN_REGEN=1``) is checked, not trusted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from lxml import etree

from exchanger.sync.checklists import element_people, parse_checklists
from exchanger.sync.converter import B, C, ConversionError, Options, convert
from exchanger.sync.validate import validate

GOLDEN = Path(__file__).parent / "golden"
OPTIONS = Options(assignees={"15298311": "42"})
DIAGRAM = {"diagram_id": "6b547a8f-0c1d-4e2f-9a0b-1c2d3e4f5a6b", "diagram_name": "Диаграмма"}
CASES = ["t1_tasks", "t3_intermediate", "t4_yes_no", "t5_existing_condition", "t6_chained", "t7_pool",
         "t8_no_pool", "t9_assignee"]


def edges_for(case: str) -> list[dict]:
    path = GOLDEN / f"{case.split('_')[0]}_edges.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def converted(case: str, options: Options = OPTIONS) -> bytes:
    body = (GOLDEN / f"{case}.bpmn").read_bytes()
    return convert(body, edges_for(case), options, **DIAGRAM).xml


def tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def element(xml: bytes, element_id: str) -> etree._Element:
    return next(e for e in tree(xml).iter() if e.get("id") == element_id)


def props(xml: bytes, element_id: str) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in element(xml, element_id).iter(C + "property")}


def condition(xml: bytes, flow_id: str) -> list[str]:
    return [c.text for c in element(xml, flow_id).findall(B + "conditionExpression")]


@pytest.mark.parametrize("case", CASES)
def test_golden_output_is_stable_and_deploys(case: str) -> None:
    xml = converted(case)
    expected = GOLDEN / f"{case}.out.bpmn"
    if os.environ.get("GOLDEN_REGEN"):
        expected.write_bytes(xml)
    assert xml == expected.read_bytes()
    assert converted(case) == xml  # byte-identical on reconversion: no random ids, no timestamps
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions')
    validate(f"{case}.bpmn", xml, ["Process_1"])
    process = tree(xml).find(B + "process")
    assert (process.get("isExecutable"), process.get(C + "historyTimeToLive")) == ("true", "365")


def test_t1_t2_tasks_become_clean_external_tasks() -> None:
    xml = converted("t1_tasks")
    task = element(xml, "A")
    assert etree.QName(task).localname == "serviceTask" and task.get("name") == "Проверить"
    assert (task.get(C + "type"), task.get(C + "topic")) == ("external", "bitrix_create_task")
    assert task.get(C + "assignee") is None and task.find(B + "potentialOwner") is None
    assert [etree.QName(c).localname for c in task] == ["documentation", "incoming", "outgoing"]  # XSD order
    assert element(xml, "C").get("calledElement") is None
    assert element(xml, "S").get(C + "type") == "external"
    with pytest.raises(ConversionError, match="S «Сервис»: a serviceTask without an external topic"):
        converted("t1_tasks", Options(service_tasks="reject"))


def test_t3_intermediate_events_are_bypassed() -> None:
    xml = converted("t3_intermediate")
    ids = {e.get("id") for e in tree(xml).iter()}
    assert not {"Ev", "F2", "Ev_di", "F2_di"} & ids
    assert element(xml, "F1").get("targetRef") == "B"
    assert [e.text for e in element(xml, "B").findall(B + "incoming")] == ["F1"]
    last = element(xml, "F1_di").findall("{http://www.omg.org/spec/DD/20100524/DI}waypoint")[-1]
    assert (last.get("x"), last.get("y")) == ("350", "140")  # B's left-middle
    assert [r.text for r in tree(xml).iter(B + "flowNodeRef")] == ["A", "B"]  # Ev left its lane
    assert etree.QName(element(xml, "Notify")).localname == "endEvent"  # no outgoing flow: an end
    assert element(xml, "Start").find(B + "timerEventDefinition") is None


def test_t4_yes_no_conditions_and_the_question() -> None:
    xml = converted("t4_yes_no")
    assert condition(xml, "Fy") == ['${A == "ok"}'] and condition(xml, "Fn") == ['${A != "ok"}']
    assert props(xml, "A") == {"resultExpected": "true", "resultQuestion": "Согласовано?"}
    assert element(xml, "Gateway_1").get("default") is None  # the default got a condition
    expression = element(xml, "Fy").find(B + "conditionExpression")
    assert expression.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "bpmn:tFormalExpression"
    assert expression.get("language") is None
    unnamed = (GOLDEN / "t4_yes_no.bpmn").read_bytes().replace(' name="Согласовано?"'.encode(), b"")
    assert props(convert(unnamed, [], OPTIONS).xml, "A") == {"resultExpected": "true"}


def test_t5_an_existing_condition_is_kept_alone() -> None:
    xml = converted("t5_existing_condition")
    assert condition(xml, "Fn") == ["${x}"]
    body = (GOLDEN / "t5_existing_condition.bpmn").read_bytes()
    report = convert(body, [], OPTIONS).report
    assert any(line.startswith("warning: Fn") for line in report)


def test_t6_a_gateway_after_a_gateway_gets_a_derived_question_task() -> None:
    xml = converted("t6_chained")
    ask = element(xml, "Ask_F2")
    assert (ask.get("name"), ask.get(C + "topic")) == ("Выяснить: условие", "bitrix_create_task")
    assert element(xml, "F2").get("targetRef") == "Ask_F2"
    assert (element(xml, "F2_ask").get("sourceRef"), element(xml, "F2_ask").get("targetRef")) == ("Ask_F2",
                                                                                                 "Gateway_2")
    assert condition(xml, "F2") == ['${A == "ok"}'] and condition(xml, "F5") == ['${A != "ok"}']
    assert condition(xml, "F3") == ['${Ask_F2 == "ok"}'] and condition(xml, "F4") == ['${Ask_F2 != "ok"}']
    assert props(xml, "A")["resultQuestion"] == "Первый?"
    bounds = element(xml, "Ask_F2_di").find("{http://www.omg.org/spec/DD/20100524/DC}Bounds")
    assert (bounds.get("x"), bounds.get("y")) == ("470", "100")  # s.x + 120, (s.y + t.y)/2 − 40


def test_t7_pools_go_and_the_process_takes_the_pool_name() -> None:
    xml = converted("t7_pool")
    ids = {e.get("id") for e in tree(xml).iter()}
    assert not {"Co", "P", "Note", "Assoc", "P_di", "Note_di", "Assoc_di"} & ids
    assert tree(xml).find(B + "process").get("name") == "Закупка"
    plane = next(tree(xml).iter("{http://www.omg.org/spec/BPMN/20100524/DI}BPMNPlane"))
    assert plane.get("bpmnElement") == "Process_1"


def test_t8_a_pool_less_process_is_executable_and_named_after_the_diagram() -> None:
    xml = converted("t8_no_pool", Options(ttl_days=30))
    process = tree(xml).find(B + "process")
    assert (process.get("name"), process.get(C + "historyTimeToLive")) == ("Диаграмма", "30")
    assert props(xml, "Process_1") == {"stormDiagramId": DIAGRAM["diagram_id"]}


def test_t9_assignee_mapped_and_checklists_parsed() -> None:
    xml = converted("t9_assignee")
    a = props(xml, "A")
    assert (a["assigneeId"], a["assigneeName"]) == ("42", "Юрист")  # the first HUMAN edge, mapped
    assert json.loads(a["checklist"]) == [{"title": "Документы", "items": ["Паспорт", "СНИЛС"]}]
    b = props(xml, "B")
    assert "assigneeId" not in b and json.loads(b["checklist"]) == [{"title": "Проверка", "items": ["Акт", "Счёт"]}]
    with pytest.raises(ConversionError, match="B «Проверить акт»: responsible Кладовщик has no Bitrix24 user"):
        converted("t9_assignee", Options(assignees={"15298311": "42"}, require_assignee=True))


def test_t10_stray_labels_and_a_non_interrupting_timer_are_named() -> None:
    with pytest.raises(ConversionError) as caught:
        converted("t10_stray_labels")
    reasons = caught.value.reasons
    assert "Gateway_1 «Одобрено?»: Flow_3 «Да, согласовано», Flow_4 «Отклонено» carry no yes/no word and no " \
           "condition" in reasons
    assert any(r.startswith("Late: only error and interrupting timer") for r in reasons)


@pytest.mark.parametrize(("change", "message"), [
    (('<bpmn:exclusiveGateway id="Gateway_1" name="Согласовано?" default="Fn" />',
      '<bpmn:parallelGateway id="Gateway_1" name="Согласовано?" />'), "yes/no flows leave a parallelGateway"),
    (('<bpmn:userTask id="A" name="Согласовать договор" />', '<bpmn:scriptTask id="A" name="Скрипт" />'),
     "A «Скрипт»: a scriptTask has no executable meaning"),
    (('<bpmn:startEvent id="Start" />', ""), "leads from Start to A, which does not exist"),
    (('name=" Нет! "', 'name="Позже"'), "Gateway_1 «Согласовано?»: Fz carry no yes/no word"),
])
def test_bad_diagrams_are_refused_with_the_element(change: tuple[str, str], message: str) -> None:
    body = (GOLDEN / "t4_yes_no.bpmn").read_text(encoding="utf-8").replace(
        "</bpmn:process>", '<bpmn:sequenceFlow id="Fz" sourceRef="Gateway_1" targetRef="End" /></bpmn:process>')
    assert change[0] in body
    with pytest.raises(ConversionError, match=re.escape(message)):
        convert(body.replace(*change).encode(), [], OPTIONS)


def test_custom_words_topic_and_key_policy() -> None:
    body = (GOLDEN / "t4_yes_no.bpmn").read_bytes().replace("да".encode(), b"yes").replace(" Нет! ".encode(), b"no")
    options = Options(yes_words=("yes",), no_words=("no",), topic="b24_task", key_policy="diagram",
                      element_topics={"Sign": "python_sign"})
    result = convert(body, [], options, **DIAGRAM)
    assert result.process_keys == ["Process_6b547a8f_0c1d_4e2f_9a0b_1c2d3e4f5a6b"]
    assert element(result.xml, "A").get(C + "topic") == "b24_task"
    assert element(result.xml, "Sign").get(C + "topic") == "python_sign"
    assert condition(result.xml, "Fy") == ['${A == "ok"}']
    validate("x.bpmn", result.xml, result.process_keys)


def test_no_state_leaks_between_conversions() -> None:
    first = converted("t8_no_pool")
    converted("t6_chained")
    converted("t7_pool")
    assert converted("t8_no_pool") == first


def test_checklist_kinds() -> None:
    html_kind = ("<p>ЧЕКЛИСТ: Документы</p><p>&nbsp;</p><ul><li>Паспорт</li><li>x</li></ul>"
                 "<p>** Второй</p><ul><li>Акт</li></ul>")
    assert parse_checklists(html_kind) == [("Документы", ["Паспорт"]), ("Второй", ["Акт"])]
    escaped = "&lt;p&gt;CHECKLIST: Docs&lt;/p&gt;&lt;ul&gt;&lt;li&gt;Passport&lt;/li&gt;&lt;/ul&gt;"
    assert parse_checklists(escaped) == [("Docs", ["Passport"])]
    assert parse_checklists("@ Проверка\n- Акт\n* Счёт\nИтог\n- не пункт") == [("Проверка", ["Акт", "Счёт"])]
    assert parse_checklists("<p>ЧЕКЛИСТ: Пустой</p><p>текст</p>") == []
    many = "ЧЕКЛИСТ: Много\n" + "\n".join(f"• пункт {n}" for n in range(30))
    assert len(parse_checklists(many)[0][1]) == 20
    edges = [{"assigneeEdgeId": 1, "elementId": "A", "assigneeType": "HUMAN", "assigneeId": 5,
              "description": "ЧЕКЛИСТ: Дубль\n• a1\n• a2"},
             {"assigneeEdgeId": 2, "elementId": "A", "description": "ЧЕКЛИСТ: Дубль\n• b1\n• b2"}]
    assert element_people(edges, "A").checklists == [("Дубль", ["a1", "a2"])]  # the first title wins


def test_two_pools_make_two_processes_each_with_its_plane_and_metadata() -> None:
    body = (GOLDEN / "t11_two_pools.bpmn").read_bytes()
    options = Options(key_policy="diagram")
    result = convert(body, [], options, **DIAGRAM)
    assert convert(body, [], options, **DIAGRAM).xml == result.xml
    base = "Process_6b547a8f_0c1d_4e2f_9a0b_1c2d3e4f5a6b"
    assert result.process_keys == [f"{base}_Process_buyer", f"{base}_Process_vendor"]
    validate("t11.bpmn", result.xml, result.process_keys)
    processes = tree(result.xml).findall(B + "process")
    assert [p.get("name") for p in processes] == ["Закупщик", "Поставщик"]
    for process in processes:
        own = process.find(B + "extensionElements").iter(C + "property")
        assert {p.get("name"): p.get("value") for p in own} == {"stormDiagramId": DIAGRAM["diagram_id"]}
    planes = {p.get("bpmnElement"): [s.get("bpmnElement") for s in p]
              for p in tree(result.xml).iter("{http://www.omg.org/spec/BPMN/20100524/DI}BPMNPlane")}
    assert planes == {f"{base}_Process_buyer": ["Order"], f"{base}_Process_vendor": ["Ship"]}
    assert element(result.xml, "S2").find(B + "messageEventDefinition") is None  # a none start now
    assert condition(result.xml, "F3") == ['${Order == "ok"}']
