"""Diagrams a team of analysts would have in StormBPMN: Russian names, pools and lanes, user tasks, named
gateways with «да»/«нет» flows, a timer in the middle, responsibles and checklists in HTML descriptions.

They are modelled as analysts draw them (user tasks, no Camunda attributes, not executable), so that
camunda-sync has real work to do. ``ONBOARDING`` is the one the demo runs end to end.
"""

from __future__ import annotations

from typing import Any

from exchanger_sandbox.stormbpmn.state import Team

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="Definitions_{id}" '
        'targetNamespace="http://stormbpmn.com/schema/bpmn">\n')

CONTRACT = HEAD.format(id="contract") + """\
  <bpmn:collaboration id="Collaboration_contract">
    <bpmn:participant id="Participant_legal" name="Согласование договора" processRef="Process_contract" />
  </bpmn:collaboration>
  <bpmn:process id="Process_contract" isExecutable="false">
    <bpmn:laneSet id="LaneSet_contract">
      <bpmn:lane id="Lane_manager" name="Менеджер">
        <bpmn:flowNodeRef>StartEvent_1</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Activity_prepare</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="Lane_lawyer" name="Юрист">
        <bpmn:flowNodeRef>Activity_check</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Gateway_agreed</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="Lane_director" name="Директор">
        <bpmn:flowNodeRef>Activity_sign</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Event_signed</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Event_rejected</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="StartEvent_1" name="Договор получен" />
    <bpmn:userTask id="Activity_prepare" name="Подготовить пакет документов" />
    <bpmn:userTask id="Activity_check" name="Проверить договор" />
    <bpmn:exclusiveGateway id="Gateway_agreed" name="Договор согласован?" />
    <bpmn:userTask id="Activity_sign" name="Подписать договор" />
    <bpmn:endEvent id="Event_signed" name="Договор подписан" />
    <bpmn:endEvent id="Event_rejected" name="Договор отклонён" />
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_prepare" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_prepare" targetRef="Activity_check" />
    <bpmn:sequenceFlow id="Flow_3" sourceRef="Activity_check" targetRef="Gateway_agreed" />
    <bpmn:sequenceFlow id="Flow_yes" name="Да" sourceRef="Gateway_agreed" targetRef="Activity_sign" />
    <bpmn:sequenceFlow id="Flow_no" name="нет" sourceRef="Gateway_agreed" targetRef="Event_rejected" />
    <bpmn:sequenceFlow id="Flow_4" sourceRef="Activity_sign" targetRef="Event_signed" />
    <bpmn:textAnnotation id="Annotation_1"><bpmn:text>Срок проверки — 3 дня</bpmn:text></bpmn:textAnnotation>
    <bpmn:association id="Association_1" sourceRef="Activity_check" targetRef="Annotation_1" />
  </bpmn:process>
</bpmn:definitions>
"""

VACATION = HEAD.format(id="vacation") + """\
  <bpmn:process id="Process_vacation" isExecutable="false">
    <bpmn:startEvent id="StartEvent_1" name="Нужен отпуск" />
    <bpmn:userTask id="Activity_request" name="Подать заявление на отпуск" />
    <bpmn:intermediateCatchEvent id="Event_wait" name="Два дня на рассмотрение">
      <bpmn:timerEventDefinition />
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="Activity_review" name="Рассмотреть заявление" />
    <bpmn:exclusiveGateway id="Gateway_approved" name="Отпуск одобрен?" />
    <bpmn:manualTask id="Activity_order" name="Оформить приказ" />
    <bpmn:endEvent id="Event_done" name="Отпуск оформлен" />
    <bpmn:endEvent id="Event_refused" name="Отказано" />
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_request" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_request" targetRef="Event_wait" />
    <bpmn:sequenceFlow id="Flow_3" sourceRef="Event_wait" targetRef="Activity_review" />
    <bpmn:sequenceFlow id="Flow_4" sourceRef="Activity_review" targetRef="Gateway_approved" />
    <bpmn:sequenceFlow id="Flow_yes" name="да" sourceRef="Gateway_approved" targetRef="Activity_order" />
    <bpmn:sequenceFlow id="Flow_no" name="Нет." sourceRef="Gateway_approved" targetRef="Event_refused" />
    <bpmn:sequenceFlow id="Flow_5" sourceRef="Activity_order" targetRef="Event_done" />
  </bpmn:process>
</bpmn:definitions>
"""

ONBOARDING = HEAD.format(id="onboarding") + """\
  <bpmn:collaboration id="Collaboration_onboarding">
    <bpmn:participant id="Participant_hr" name="Приём сотрудника" processRef="storm_onboarding" />
  </bpmn:collaboration>
  <bpmn:process id="storm_onboarding" isExecutable="false">
    <bpmn:laneSet id="LaneSet_onboarding">
      <bpmn:lane id="Lane_hr" name="HR">
        <bpmn:flowNodeRef>StartEvent_1</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Activity_documents</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="Lane_head" name="Руководитель">
        <bpmn:flowNodeRef>Gateway_hire</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Activity_workplace</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="StartEvent_1" name="Кандидат принял оффер" />
    <bpmn:userTask id="Activity_documents" name="Собрать документы сотрудника" />
    <bpmn:exclusiveGateway id="Gateway_hire" name="Документы в порядке?" />
    <bpmn:userTask id="Activity_workplace" name="Подготовить рабочее место" />
    <bpmn:endEvent id="Event_hired" name="Сотрудник принят" />
    <bpmn:endEvent id="Event_stopped" name="Приём остановлен" />
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_documents" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_documents" targetRef="Gateway_hire" />
    <bpmn:sequenceFlow id="Flow_yes" name="да" sourceRef="Gateway_hire" targetRef="Activity_workplace" />
    <bpmn:sequenceFlow id="Flow_no" name="нет" sourceRef="Gateway_hire" targetRef="Event_stopped" />
    <bpmn:sequenceFlow id="Flow_3" sourceRef="Activity_workplace" targetRef="Event_hired" />
  </bpmn:process>
</bpmn:definitions>
"""

CHECKLIST_HTML = "<p>ЧЕКЛИСТ: Документы</p><ul><li>Паспорт</li><li>СНИЛС</li><li>ИНН</li></ul>"

SEED: list[tuple[str, str, str, list[dict[str, Any]]]] = [  # (source id, name, body, assignee edges)
    ("contract-approval", "Согласование договора", CONTRACT, [
        {"assigneeEdgeId": 1, "assigneeId": 15298311, "assigneeName": "Юрист", "assigneeType": "HUMAN",
         "elementId": "Activity_check", "elementName": "Проверить договор", "duration": 900, "color": "#4caf50",
         "description": "<p>ЧЕКЛИСТ: Проверка</p><ul><li>Реквизиты сторон</li><li>Сроки и штрафы</li></ul>"},
        {"assigneeEdgeId": 2, "assigneeId": 15298312, "assigneeName": "Директор", "assigneeType": "HUMAN",
         "elementId": "Activity_sign", "elementName": "Подписать договор", "duration": 600, "color": "#2196f3",
         "description": ""},
    ]),
    ("vacation", "Отпуск сотрудника", VACATION, []),
    ("onboarding", "Приём сотрудника", ONBOARDING, [
        {"assigneeEdgeId": 1, "assigneeId": 15298313, "assigneeName": "Специалист HR", "assigneeType": "HUMAN",
         "elementId": "Activity_documents", "elementName": "Собрать документы сотрудника", "duration": 900,
         "color": "#ff9800", "description": CHECKLIST_HTML},
    ]),
]


def seed(team: Team) -> None:
    """Upload the seed diagrams as an analyst would, then attach their assignee edges."""
    for source_id, name, body, edges in SEED:
        storm_id, _ = team.upload({"id": source_id, "name": name, "xml": body})
        team.diagrams[storm_id].edges = [dict(edge) for edge in edges]
        team.diagrams[storm_id].status = "DONE"
