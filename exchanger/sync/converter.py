"""StormBPMN diagram → a BPMN model Camunda 7 runs with Exchanger as its only worker.

A pure function: ``convert(body, edges, options, ...)`` takes the diagram's BPMN bytes, its assignee
edges and the output-shaping options, and returns the converted bytes plus a report of every change;
no network, no clock, no state between calls, so the same input gives the same bytes (ids are derived,
never random) and an unchanged diagram is never redeployed. A diagram that cannot be made executable
raises :class:`ConversionError` listing every reason with the element ids.

Steps, in order: remove pools/annotations/groups; bypass intermediate events; strip message/timer
definitions; rewrite tasks into external service tasks; decide yes/no gateways (conditions, the question
task, a synthetic «Выяснить» task where a gateway follows no Bitrix24 task); responsibles and checklists
from the edges; process attributes; drop dangling references and DI; order children per the XSD; write
with fixed namespace prefixes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from exchanger.sync.checklists import element_people

CONVERTER_VERSION = "1"  # part of every fingerprint: a new converter redeploys what it now writes differently

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"bpmn": BPMN, "bpmndi": BPMNDI, "dc": DC, "di": DI, "camunda": CAMUNDA, "xsi": XSI}
B, C = "{" + BPMN + "}", "{" + CAMUNDA + "}"

DEFAULT_TOPIC = "bitrix_create_task"
DEFAULT_TTL_DAYS = 365
DEFAULT_YES = ("да",)
DEFAULT_NO = ("нет",)
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
UNNAMED_PROCESS = "Автоматически сконвертированный процесс"
ASK_PREFIX = "Выяснить: "
ASK_UNNAMED = "условие"

TO_SERVICE = {"task", "userTask", "manualTask", "callActivity"}
IMPLEMENTED = {"serviceTask", "sendTask", "businessRuleTask"}
REFUSED_TASKS = {"scriptTask", "receiveTask"}
GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
DECISIONS = {"exclusiveGateway", "inclusiveGateway"}
EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
ACTIVITIES = TO_SERVICE | IMPLEMENTED | REFUSED_TASKS | {"subProcess", "transaction", "adHocSubProcess"}
FLOW_NODES = ACTIVITIES | GATEWAYS | EVENTS
REMOVED_EVERYWHERE = {"textAnnotation", "group", "association"}
KEPT_TASK_ATTRIBUTES = {"id", "name", "default", C + "asyncBefore", C + "asyncAfter", C + "exclusive"}
KEPT_TASK_CHILDREN = {"documentation", "extensionElements", "incoming", "outgoing", "ioSpecification", "property",
                      "dataInputAssociation", "dataOutputAssociation"}
KEPT_EXTENSIONS = {C + "properties", C + "inputOutput"}
JUEL_RESERVED = {"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "true", "false", "null", "instanceof",
                 "empty", "div", "mod"}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")

# XSD order of children (tBaseElement → tFlowElement → tFlowNode → tActivity / tEvent, tSequenceFlow,
# tProcess); anything not listed keeps its place after the listed ones.
ORDER = {name: rank for rank, name in enumerate([
    "documentation", "extensionElements", "auditing", "monitoring", "categoryValueRef", "incoming", "outgoing",
    "ioSpecification", "property", "dataInputAssociation", "dataOutputAssociation", "dataInput", "dataOutput",
    "inputSet", "outputSet", "resourceRole", "performer", "humanPerformer", "potentialOwner",
    "standardLoopCharacteristics", "multiInstanceLoopCharacteristics", "conditionExpression", "laneSet",
])}
EVENT_DEFINITION_RANK = len(ORDER) + 1  # event definitions close an event
FLOW_ELEMENT_RANK = len(ORDER) + 2  # flow elements follow laneSet in a process


class ConversionError(Exception):
    """The diagram cannot be converted; ``reasons`` name the elements."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Options:
    """Everything that shapes the output; its :meth:`fingerprint` decides whether a diagram is redone."""

    topic: str = DEFAULT_TOPIC
    element_topics: dict[str, str] = field(default_factory=dict)  # element id → topic
    ttl_days: int = DEFAULT_TTL_DAYS
    yes_words: tuple[str, ...] = DEFAULT_YES
    no_words: tuple[str, ...] = DEFAULT_NO
    service_tasks: str = "implement"  # implement | reject: service/send/business-rule tasks without a topic
    keep_timer_catches: bool = False
    assignees: dict[str, str] = field(default_factory=dict)  # Storm assignee id or name → Bitrix24 user id
    require_assignee: bool = False  # an unmapped responsible fails the diagram instead of a warning
    key_policy: str = "process-id"  # process-id | diagram (Process_<uuid>)
    key: str = ""  # an explicit key for this diagram (overrides the policy)

    def fingerprint(self) -> str:
        data = {"converter": CONVERTER_VERSION, **{k: v for k, v in self.__dict__.items()}}
        return json.dumps(data, sort_keys=True, ensure_ascii=False, default=list)


@dataclass
class Conversion:
    xml: bytes
    process_keys: list[str]
    report: list[str]


def normalise_word(text: str | None) -> str:
    """Trim, case-fold, collapse spaces, drop trailing ``.!?``: «Да!» and « да » both read «да»."""
    return re.sub(r"\s+", " ", (text or "")).strip().casefold().rstrip(".!?").strip()


def local(element: Any) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def convert(body: bytes, edges: list[dict[str, Any]] | None = None, options: Options = Options(), *,
            diagram_id: str = "", diagram_name: str = "") -> Conversion:
    """The converted model of one diagram; raises :class:`ConversionError` when it cannot run."""
    return _Converter(body, edges or [], options, diagram_id, diagram_name).run()


class _Converter:
    def __init__(self, body: bytes, edges: list[dict[str, Any]], options: Options, diagram_id: str,
                 diagram_name: str) -> None:
        self.edges = edges
        self.options = options
        self.diagram_id = diagram_id
        self.diagram_name = diagram_name
        self.report: list[str] = []
        self.errors: list[str] = []
        self.removed: set[str] = set()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True,
                                 remove_pis=True, huge_tree=False)
        try:
            self.root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as exc:
            raise ConversionError([f"not well-formed XML: {exc.msg}"]) from None
        if local(self.root) != "definitions" or etree.QName(self.root).namespace != BPMN:
            raise ConversionError(["the root element is not a BPMN 2.0 definitions element"])

    # --- helpers ------------------------------------------------------------------------------------

    def fail(self, message: str) -> None:
        self.errors.append(message)

    def label(self, element: Any) -> str:
        name = element.get("name")
        return f"{element.get('id')} «{name}»" if name else str(element.get("id"))

    def by_id(self) -> dict[str, Any]:
        return {e.get("id"): e for e in self.root.iter() if isinstance(e.tag, str) and e.get("id")}

    def processes(self) -> list[Any]:
        found: list[Any] = self.root.findall(B + "process")
        return found

    def flows(self, scope: Any) -> list[Any]:
        found: list[Any] = scope.findall(B + "sequenceFlow")
        return found

    def remove(self, element: Any) -> None:
        if element.get("id"):
            self.removed.add(element.get("id"))
        element.getparent().remove(element)

    def scopes(self) -> list[Any]:
        return [e for e in self.root.iter(B + "process", B + "subProcess")]

    # --- the pipeline -------------------------------------------------------------------------------

    def run(self) -> Conversion:
        pool_names = self.remove_pools()
        if not any(self.nodes(p) for p in self.processes()):
            raise ConversionError(["the diagram has no process with flow nodes"])
        self.bypass_intermediate_events()
        self.strip_definitions()
        self.rewrite_tasks()
        self.decide_gateways()
        self.assign_people()
        keys = self.shape_processes(pool_names)
        self.drop_dangling()
        self.check_structure()
        if self.errors:
            raise ConversionError(self.errors)
        self.fix_planes(keys)
        self.order_children()
        return Conversion(self.serialise(), keys, self.report)

    def nodes(self, scope: Any) -> list[Any]:
        return [e for e in scope if isinstance(e.tag, str) and local(e) in FLOW_NODES]

    def remove_pools(self) -> dict[str, str]:
        """Collaborations, annotations, groups and associations go; returns process id → pool name."""
        names: dict[str, str] = {}
        for collaboration in self.root.findall(B + "collaboration"):
            for participant in collaboration.findall(B + "participant"):
                if participant.get("processRef") and participant.get("name"):
                    names.setdefault(participant.get("processRef"), participant.get("name"))
            for element in collaboration.iter():
                if isinstance(element.tag, str) and element.get("id"):
                    self.removed.add(element.get("id"))
            self.remove(collaboration)
            self.report.append(f"removed collaboration {collaboration.get('id')} (pools, message flows)")
        for element in [e for e in self.root.iter() if isinstance(e.tag, str) and local(e) in REMOVED_EVERYWHERE]:
            self.remove(element)
        return names

    def bypass_intermediate_events(self) -> None:
        for scope in self.scopes():
            for event in [e for e in scope if isinstance(e.tag, str)
                          and local(e) in ("intermediateCatchEvent", "intermediateThrowEvent")]:
                if self.options.keep_timer_catches and self.valid_timer_catch(event):
                    continue
                flows = self.flows(scope)
                incoming = [f for f in flows if f.get("targetRef") == event.get("id")]
                outgoing = [f for f in flows if f.get("sourceRef") == event.get("id")]
                if len(outgoing) == 1:
                    target = outgoing[0].get("targetRef")
                    for flow in incoming:
                        flow.set("targetRef", target)
                        self.move_last_waypoint(flow.get("id"), target)
                    self.remove(outgoing[0])
                    self.remove(event)
                    self.report.append(f"removed {self.label(event)}: {', '.join(f.get('id') for f in incoming)} "
                                       f"now lead to {target}")
                elif not outgoing and incoming:
                    event.tag = B + "endEvent"
                    for child in list(event):
                        if local(child).endswith("EventDefinition"):
                            event.remove(child)
                    self.report.append(f"{self.label(event)} has no outgoing flow: now a none end event")
                else:
                    self.fail(f"{self.label(event)}: an intermediate event with {len(incoming)} incoming and "
                              f"{len(outgoing)} outgoing flows cannot be bypassed")

    def valid_timer_catch(self, event: Any) -> bool:
        timer = event.find(B + "timerEventDefinition")
        if local(event) != "intermediateCatchEvent" or timer is None:
            return False
        duration, date = timer.find(B + "timeDuration"), timer.find(B + "timeDate")
        if duration is not None and DURATION.match((duration.text or "").strip()):
            return True
        return date is not None and bool((date.text or "").strip())

    def strip_definitions(self) -> None:
        for event in [e for e in self.root.iter() if isinstance(e.tag, str) and local(e) in EVENTS]:
            kind = local(event)
            definitions = [c for c in event if isinstance(c.tag, str) and local(c).endswith("EventDefinition")]
            for definition in definitions:
                what = local(definition)
                if kind == "boundaryEvent":
                    if what == "errorEventDefinition":
                        continue
                    if what == "timerEventDefinition" and event.get("cancelActivity", "true") != "false":
                        duration = definition.find(B + "timeDuration")
                        if duration is not None and DURATION.match((duration.text or "").strip()):
                            continue
                    self.fail(f"{self.label(event)}: only error and interrupting timer (with a valid duration) "
                              f"boundary events can run, not {what}")
                elif kind == "intermediateCatchEvent" and what == "timerEventDefinition":
                    continue  # kept on purpose (keep_timer_catches)
                elif kind == "endEvent" and what in ("errorEventDefinition", "terminateEventDefinition"):
                    continue
                elif what in ("messageEventDefinition", "timerEventDefinition", "signalEventDefinition",
                              "conditionalEventDefinition", "escalationEventDefinition"):
                    event.remove(definition)
                    self.report.append(f"{self.label(event)}: {what} removed (a none {kind} now)")
                else:
                    self.fail(f"{self.label(event)}: {kind} with {what} has no executable meaning here")

    def topic_for(self, element: Any) -> str:
        return self.options.element_topics.get(element.get("id"), self.options.topic)

    def rewrite_tasks(self) -> None:
        for element in [e for e in self.root.iter() if isinstance(e.tag, str) and local(e) in ACTIVITIES]:
            kind = local(element)
            if kind in REFUSED_TASKS:
                self.fail(f"{self.label(element)}: a {kind} has no executable meaning for Exchanger")
            elif kind in ("transaction", "adHocSubProcess"):
                self.fail(f"{self.label(element)}: a {kind} is not supported")
            elif kind in TO_SERVICE:
                element.tag = B + "serviceTask"
                for name in list(element.attrib):
                    if name not in KEPT_TASK_ATTRIBUTES:
                        del element.attrib[name]
                for child in list(element):
                    if not isinstance(child.tag, str) or local(child) not in KEPT_TASK_CHILDREN:
                        element.remove(child)
                    elif local(child) == "extensionElements":
                        for extension in list(child):
                            if extension.tag not in KEPT_EXTENSIONS:
                                child.remove(extension)
                self.make_external(element)
                self.report.append(f"{self.label(element)}: {kind} → external task {self.topic_for(element)}")
            elif kind in IMPLEMENTED:
                if element.get(C + "type") == "external" and element.get(C + "topic"):
                    continue
                if self.options.service_tasks == "reject":
                    self.fail(f"{self.label(element)}: a {kind} without an external topic")
                    continue
                for name in (C + "class", C + "expression", C + "delegateExpression", C + "resultVariable"):
                    element.attrib.pop(name, None)
                self.make_external(element)
                self.report.append(f"{self.label(element)}: {kind} implemented as external task "
                                   f"{self.topic_for(element)}")

    def make_external(self, element: Any) -> None:
        element.set(C + "type", "external")
        element.set(C + "topic", self.topic_for(element))

    # --- gateways ---------------------------------------------------------------------------------------

    def answer(self, flow: Any) -> str | None:
        word = normalise_word(flow.get("name"))
        if word in {normalise_word(w) for w in self.options.yes_words}:
            return "yes"
        if word in {normalise_word(w) for w in self.options.no_words}:
            return "no"
        return None

    def decide_gateways(self) -> None:
        questions: dict[str, str | None] = {}  # question task id → its question
        for scope in self.scopes():
            for gateway in [e for e in scope if isinstance(e.tag, str) and local(e) in GATEWAYS]:
                flows = self.flows(scope)
                outgoing = [f for f in flows if f.get("sourceRef") == gateway.get("id")]
                answers = {f.get("id"): self.answer(f) for f in outgoing}
                if not any(answers.values()):
                    continue
                if local(gateway) not in DECISIONS:
                    self.fail(f"{self.label(gateway)}: yes/no flows leave a {local(gateway)}")
                    continue
                incoming = [f for f in flows if f.get("targetRef") == gateway.get("id")]
                if len(incoming) != 1:
                    self.fail(f"{self.label(gateway)}: a yes/no gateway needs exactly one incoming flow (the "
                              f"question task before it), it has {len(incoming)}")
                    continue
                question = self.question_task(scope, gateway, incoming[0])
                if question is None:
                    continue
                task_id = question.get("id")
                text = gateway.get("name") or None
                if task_id in questions and questions[task_id] != text:
                    self.fail(f"{task_id} would ask two different questions ({questions[task_id]!r}, {text!r})")
                    continue
                questions[task_id] = text
                properties = {"resultExpected": "true"}
                if text:
                    properties["resultQuestion"] = text
                set_properties(question, properties)
                for flow in outgoing:
                    self.condition(gateway, flow, task_id, answers[flow.get("id")])
                if gateway.get("default") and gateway.get("default") in {
                        f.get("id") for f in outgoing if f.find(B + "conditionExpression") is not None}:
                    self.report.append(f"{self.label(gateway)}: default {gateway.get('default')} removed (it "
                                       f"has a condition now)")
                    del gateway.attrib["default"]

    def question_task(self, scope: Any, gateway: Any, flow: Any) -> Any | None:
        """The Bitrix24 task right before ``gateway``, or a synthetic «Выяснить» task inserted on ``flow``."""
        source = self.by_id().get(flow.get("sourceRef"))
        if source is not None and local(source) == "serviceTask" and source.get(C + "topic") == self.options.topic:
            if not IDENTIFIER.match(source.get("id")) or source.get("id").lower() in JUEL_RESERVED:
                self.fail(f"{self.label(source)}: its id names the answer variable and must be an identifier "
                          f"([A-Za-z_][A-Za-z0-9_]*, not a JUEL keyword)")
                return None
            return source
        task_id, flow_id = f"Ask_{flow.get('id')}", f"{flow.get('id')}_ask"
        if task_id in self.by_id() or flow_id in self.by_id() or not IDENTIFIER.match(task_id):
            self.fail(f"{self.label(gateway)}: the question task {task_id} or flow {flow_id} cannot be added "
                      f"(id taken or not an identifier)")
            return None
        name = ASK_PREFIX + (gateway.get("name") or ASK_UNNAMED)
        task = etree.Element(B + "serviceTask", {"id": task_id, "name": name})
        task.set(C + "type", "external")
        task.set(C + "topic", self.options.topic)
        scope.append(task)
        new_flow = etree.Element(B + "sequenceFlow", {"id": flow_id, "sourceRef": task_id,
                                                       "targetRef": gateway.get("id")})
        scope.append(new_flow)
        flow.set("targetRef", task_id)
        self.add_ask_shapes(flow, task_id, flow_id, gateway)
        self.report.append(f"{self.label(gateway)}: added the question task {task_id} «{name}» on "
                           f"{flow.get('id')}")
        return task

    def condition(self, gateway: Any, flow: Any, task_id: str, answer: str | None) -> None:
        existing = flow.find(B + "conditionExpression")
        if answer is None:
            return
        if existing is not None and (existing.text or "").strip():
            self.report.append(f"warning: {self.label(flow)} keeps its condition {existing.text.strip()!r}")
            return
        if existing is not None:
            flow.remove(existing)
        operator = "==" if answer == "yes" else "!="
        expression = etree.SubElement(flow, B + "conditionExpression")
        expression.set("{" + XSI + "}type", "bpmn:tFormalExpression")
        expression.text = f'${{{task_id} {operator} "ok"}}'
        self.report.append(f"{self.label(flow)}: condition {expression.text}")

    # --- people -------------------------------------------------------------------------------------------

    def assign_people(self) -> None:
        for task in self.root.iter(B + "serviceTask"):
            if task.get(C + "topic") != self.options.topic:
                continue
            people = element_people(self.edges, task.get("id"))
            self.report.extend(people.notes)
            properties: dict[str, str] = {}
            if people.storm_assignee_id or people.assignee_name:
                mapped = self.options.assignees.get(people.storm_assignee_id or "") or self.options.assignees.get(
                    people.assignee_name or "")
                if mapped:
                    properties["assigneeId"] = str(mapped)
                elif self.options.require_assignee:
                    self.fail(f"{self.label(task)}: responsible {people.assignee_name or people.storm_assignee_id} "
                              f"has no Bitrix24 user in the mapping")
                else:
                    self.report.append(f"warning: {self.label(task)}: responsible "
                                       f"{people.assignee_name or people.storm_assignee_id} has no Bitrix24 user "
                                       f"in the mapping; the default responsible gets the task")
                if people.assignee_name:
                    properties["assigneeName"] = people.assignee_name
            if people.checklists:
                properties["checklist"] = json.dumps([{"title": t, "items": i} for t, i in people.checklists],
                                                     ensure_ascii=False, separators=(",", ":"))
            if properties:
                set_properties(task, properties)

    # --- processes ----------------------------------------------------------------------------------------

    def shape_processes(self, pool_names: dict[str, str]) -> list[str]:
        executable = [p for p in self.processes() if self.nodes(p)]
        keys: list[str] = []
        for process in executable:
            old_id = process.get("id")
            key = self.key_for(old_id, len(executable))
            if key != old_id:
                process.set("id", key)
                for shape in self.root.iter("{" + BPMNDI + "}BPMNPlane"):
                    if shape.get("bpmnElement") == old_id:
                        shape.set("bpmnElement", key)
            if not IDENTIFIER.match(key.replace("-", "_").replace(".", "_")):
                self.fail(f"process key {key!r} is not a valid id")
            keys.append(key)
            name = pool_names.get(old_id) or process.get("name") or (
                UNNAMED_PROCESS if pool_names else (self.diagram_name or UNNAMED_PROCESS))
            process.set("name", name)
            process.set("isExecutable", "true")
            process.set(C + "historyTimeToLive", str(self.options.ttl_days))
            if self.diagram_id:
                set_properties(process, {"stormDiagramId": self.diagram_id})
        for process in self.processes():
            if process not in executable:
                process.set("isExecutable", "false")
        return keys

    def key_for(self, process_id: str, count: int) -> str:
        if self.options.key:
            return self.options.key if count == 1 else f"{self.options.key}_{process_id}"
        if self.options.key_policy == "diagram" and self.diagram_id:
            base = "Process_" + re.sub(r"[^A-Za-z0-9_]", "_", self.diagram_id)
            return base if count == 1 else f"{base}_{process_id}"
        return process_id

    # --- references ---------------------------------------------------------------------------------------

    def drop_dangling(self) -> None:
        ids = self.by_id()
        for scope in self.scopes():
            flows = self.flows(scope)
            for flow in flows:
                if flow.get("sourceRef") not in ids or flow.get("targetRef") not in ids:
                    self.fail(f"{self.label(flow)} leads from {flow.get('sourceRef')} to {flow.get('targetRef')}, "
                              f"which does not exist")
            for node in self.nodes(scope):
                for child in node.findall(B + "incoming") + node.findall(B + "outgoing"):
                    node.remove(child)
                incoming = [f.get("id") for f in flows if f.get("targetRef") == node.get("id")]
                outgoing = [f.get("id") for f in flows if f.get("sourceRef") == node.get("id")]
                for tag, refs in (("incoming", incoming), ("outgoing", outgoing)):
                    for ref in refs:
                        etree.SubElement(node, B + tag).text = ref
                if node.get("default") and node.get("default") not in outgoing:
                    del node.attrib["default"]
        ids = self.by_id()
        for ref in list(self.root.iter(B + "flowNodeRef")):
            if (ref.text or "").strip() not in ids:
                ref.getparent().remove(ref)
        for di in [e for e in self.root.iter("{" + BPMNDI + "}BPMNShape", "{" + BPMNDI + "}BPMNEdge")]:
            if di.get("bpmnElement") not in ids:
                di.getparent().remove(di)

    def check_structure(self) -> None:
        """Camunda's rules the engine would refuse later, named here: starts and gateway conditions."""
        for scope in self.scopes():
            starts = [e for e in scope.findall(B + "startEvent")]
            if len(starts) != 1:
                self.fail(f"{self.label(scope)}: needs exactly one start event, has {len(starts)}")
            flows = self.flows(scope)
            for gateway in [e for e in scope if isinstance(e.tag, str) and local(e) in DECISIONS]:
                outgoing = [f for f in flows if f.get("sourceRef") == gateway.get("id")]
                if len(outgoing) < 2:
                    continue
                default = gateway.get("default")
                bare = [f for f in outgoing if f.find(B + "conditionExpression") is None and f.get("id") != default]
                if default and len(bare) > 0 or not default and len(bare) > 1:
                    names = ", ".join(self.label(f) for f in bare)
                    self.fail(f"{self.label(gateway)}: {names} carry no yes/no word and no condition")

    # --- DI -----------------------------------------------------------------------------------------------

    def shapes(self) -> dict[str, Any]:
        return {s.get("bpmnElement"): s for s in self.root.iter("{" + BPMNDI + "}BPMNShape")}

    def edge(self, flow_id: str) -> Any | None:
        return next((e for e in self.root.iter("{" + BPMNDI + "}BPMNEdge") if e.get("bpmnElement") == flow_id),
                    None)

    @staticmethod
    def bounds(shape: Any) -> tuple[float, float, float, float] | None:
        found = shape.find("{" + DC + "}Bounds") if shape is not None else None
        if found is None:
            return None
        return tuple(float(found.get(k, "0")) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]

    def move_last_waypoint(self, flow_id: str, target_id: str) -> None:
        edge, bounds = self.edge(flow_id), self.bounds(self.shapes().get(target_id))
        points = edge.findall("{" + DI + "}waypoint") if edge is not None else []
        if points and bounds:
            points[-1].set("x", fmt(bounds[0]))
            points[-1].set("y", fmt(bounds[1] + (bounds[3] or 80) / 2))

    def add_ask_shapes(self, flow: Any, task_id: str, flow_id: str, gateway: Any) -> None:
        shapes = self.shapes()
        source, target = self.bounds(shapes.get(flow.get("sourceRef"))), self.bounds(shapes.get(gateway.get("id")))
        plane = next(self.root.iter("{" + BPMNDI + "}BPMNPlane"), None)
        if source is None or target is None or plane is None:
            return
        sx, sy = source[0] + source[2], source[1] + source[3] / 2
        tx, ty = target[0], target[1] + target[3] / 2
        if any(abs(v) > 10_000 for v in (sx, sy, tx, ty)):
            sx, sy, tx, ty = 1000.0, 500.0, 1200.0, 500.0
        if sx + 340 <= tx:
            x = sx + 120
        elif tx - sx > 140:
            x = (sx + tx) / 2 - 50
        else:
            x = sx + 20
        y = (sy + ty) / 2 - 40
        x, y = (v if v >= 0 else 50.0 for v in (x, y))
        shape = etree.SubElement(plane, "{" + BPMNDI + "}BPMNShape", {"id": f"{task_id}_di", "bpmnElement": task_id})
        etree.SubElement(shape, "{" + DC + "}Bounds", {"x": fmt(x), "y": fmt(y), "width": "100", "height": "80"})
        edge = etree.SubElement(plane, "{" + BPMNDI + "}BPMNEdge", {"id": f"{flow_id}_di", "bpmnElement": flow_id})
        etree.SubElement(edge, "{" + DI + "}waypoint", {"x": fmt(x + 100), "y": fmt(y + 40)})
        etree.SubElement(edge, "{" + DI + "}waypoint", {"x": fmt(tx), "y": fmt(ty)})
        old = self.edge(flow.get("id"))
        points = old.findall("{" + DI + "}waypoint") if old is not None else []
        if points:
            points[-1].set("x", fmt(x))
            points[-1].set("y", fmt(y + 40))

    def fix_planes(self, keys: list[str]) -> None:
        """One ``BPMNDiagram`` per process, each holding the shapes of its own elements."""
        planes = list(self.root.iter("{" + BPMNDI + "}BPMNPlane"))
        if not planes or not keys:
            return
        first = planes[0]
        if first.get("bpmnElement") not in keys:
            first.set("bpmnElement", keys[0])
        owner = {}
        for process in self.processes():
            for element in process.iter():
                if isinstance(element.tag, str) and element.get("id"):
                    owner[element.get("id")] = process.get("id")
        planned = {p.get("bpmnElement"): p for p in planes}
        for key in keys:
            if key in planned:
                continue
            diagram = etree.SubElement(self.root, "{" + BPMNDI + "}BPMNDiagram", {"id": f"BPMNDiagram_{key}"})
            planned[key] = etree.SubElement(diagram, "{" + BPMNDI + "}BPMNPlane",
                                            {"id": f"BPMNPlane_{key}", "bpmnElement": key})
        for plane in planes:
            for di in list(plane):
                home = owner.get(di.get("bpmnElement") or "")
                if home in planned and planned[home] is not plane:
                    planned[home].append(di)

    # --- output ---------------------------------------------------------------------------------------------

    def order_children(self) -> None:
        for element in self.root.iter():
            if not isinstance(element.tag, str) or etree.QName(element).namespace != BPMN or len(element) < 2:
                continue
            children = list(element)
            ranked = sorted(children, key=lambda c: rank(c))
            if ranked != children:
                for child in children:
                    element.remove(child)
                element.extend(ranked)

    def serialise(self) -> bytes:
        """Rebuild the tree under the fixed prefixes (input prefixes vary by tool) and write UTF-8 bytes."""
        extra = {p: u for p, u in (self.root.nsmap or {}).items() if p and u not in NSMAP.values() and p not in NSMAP}
        root = etree.Element(self.root.tag, nsmap={**NSMAP, **extra})
        copy_into(self.root, root)
        body: bytes = etree.tostring(root, encoding="UTF-8")
        return XML_DECLARATION + body + b"\n"


def rank(child: Any) -> int:
    if not isinstance(child.tag, str):
        return FLOW_ELEMENT_RANK
    name = local(child)
    if name.endswith("EventDefinition"):
        return EVENT_DEFINITION_RANK
    return ORDER.get(name, FLOW_ELEMENT_RANK)


def copy_into(source: Any, target: Any) -> None:
    for name, value in source.attrib.items():
        target.set(name, value)
    target.text = source.text
    for child in source:
        if not isinstance(child.tag, str):
            continue
        copy = etree.SubElement(target, child.tag)
        copy_into(child, copy)
        copy.tail = child.tail
    if local(source) == "conditionExpression" and source.get("{" + XSI + "}type"):
        target.set("{" + XSI + "}type", "bpmn:tFormalExpression")


def fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def set_properties(element: Any, values: dict[str, str]) -> None:
    """Set ``camunda:property`` entries (replacing same-named ones), keeping the others' order."""
    extensions = element.find(B + "extensionElements")
    if extensions is None:
        extensions = etree.Element(B + "extensionElements")
        documentation = element.find(B + "documentation")
        element.insert(0 if documentation is None else element.index(documentation) + 1, extensions)
    properties = extensions.find(C + "properties")
    if properties is None:
        properties = etree.SubElement(extensions, C + "properties")
    existing = {p.get("name"): p for p in properties.findall(C + "property")}
    for name, value in values.items():
        prop = existing.get(name)
        if prop is None:
            prop = etree.SubElement(properties, C + "property", {"name": name})
        prop.set("value", value)
