"""BPMN 2.0 XML (lxml) → an immutable process model for the token engine.

Only the subset the sandbox executes is accepted; any other element is refused with Camunda's
``ParseException`` (400) whose ``details`` name the element, its line and column, so a model that
would misbehave here is never deployed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from exchanger.bpmn import timers
from exchanger.bpmn.errors import ParseException
from exchanger.bpmn.juel import Expression, JuelSyntaxError, compile_expression

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
_B = "{" + BPMN_NS + "}"
_C = "{" + CAMUNDA_NS + "}"

EXTERNAL_TASKS = {"serviceTask", "sendTask", "businessRuleTask"}
PASS_THROUGH = {"task", "manualTask"}  # Camunda 7 runs them as pass-through activities
GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway"}
FLOW_NODES = EXTERNAL_TASKS | PASS_THROUGH | GATEWAYS | {
    "startEvent", "endEvent", "intermediateThrowEvent", "intermediateCatchEvent", "subProcess", "boundaryEvent",
    "callActivity", "receiveTask"}
BOUNDARY_HOSTS = EXTERNAL_TASKS | PASS_THROUGH | {"subProcess", "callActivity", "receiveTask",
                                                  "intermediateThrowEvent", "endEvent"}
# Elements that carry no behaviour and are accepted anywhere inside a process (incoming/outgoing are
# Camunda Modeler's copies of the sequence flows' references).
HARMLESS = {"documentation", "extensionElements", "laneSet", "textAnnotation", "association", "group",
            "dataObject", "dataObjectReference", "dataStoreReference", "sequenceFlow", "property",
            "ioSpecification", "incoming", "outgoing", "dataInputAssociation", "dataOutputAssociation"}
EVENT_DEFINITIONS = {"errorEventDefinition", "terminateEventDefinition", "messageEventDefinition",
                     "timerEventDefinition", "signalEventDefinition", "escalationEventDefinition",
                     "conditionalEventDefinition", "compensateEventDefinition", "linkEventDefinition",
                     "cancelEventDefinition"}
# Elements refused with the real reason: what they would need that the sandbox does not have.
OUT_OF_SCOPE = {
    "userTask": "user tasks need a tasklist and forms; model the work as an external task",
    "scriptTask": "scripts run inside a Java engine; model the work as an external task",
    "complexGateway": "complex gateways are not implemented by the sandbox",
    "transaction": "transaction subprocesses (compensation) are not implemented by the sandbox",
    "adHocSubProcess": "ad-hoc subprocesses are not implemented by the sandbox",
}
JAVA_ATTRIBUTES = ("class", "delegateExpression", "expression")
_HISTORY_TTL_DAYS = re.compile(r"^P(\d+)D$")


@dataclass(frozen=True)
class Param:
    """A ``camunda:inputParameter``/``outputParameter`` value: text/expression, list or map."""

    kind: str  # "value" | "list" | "map" | "null"
    expression: Expression | None = None
    items: tuple[Param, ...] = ()
    entries: tuple[tuple[str, Param], ...] = ()


@dataclass(frozen=True)
class MultiInstance:
    """``multiInstanceLoopCharacteristics``: how many inner instances, in which order, when to stop."""

    sequential: bool
    collection: Expression | None = None  # an expression, or a variable name as in camunda:collection="list"
    collection_variable: str | None = None
    element_variable: str | None = None
    cardinality: Expression | None = None
    completion: Expression | None = None


@dataclass(frozen=True)
class Mapping:
    """A ``camunda:in``/``camunda:out`` of a call activity: all variables, one variable, or an expression."""

    all: bool = False
    source: str | None = None
    expression: Expression | None = None
    target: str | None = None
    local: bool = False


@dataclass
class Flow:
    id: str
    source: str
    target: str
    condition: Expression | None = None


@dataclass
class Activity:
    """One flow node. ``kind`` is the BPMN tag; ``event`` the event definition (none/error/...)."""

    id: str
    kind: str
    name: str | None
    scope_id: str  # the process or subprocess containing it
    event: str = "none"  # none | error | terminate | message | timer | conditional | signal
    external: bool = False
    topic: Expression | None = None
    priority: Expression | None = None
    properties: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str | None] = field(default_factory=dict)
    inputs: list[tuple[str, Param]] = field(default_factory=list)
    outputs: list[tuple[str, Param]] = field(default_factory=list)
    error_code: str | None = None  # error end event / error boundary: None = catch all
    error_code_variable: str | None = None
    error_message_variable: str | None = None
    error_definitions: list[tuple[str | None, Expression]] = field(default_factory=list)  # camunda:errorEventDef.
    timer: tuple[str, Expression] | None = None  # ("duration"|"date"|"cycle", expression)
    condition: Expression | None = None  # conditional events
    condition_variable: str | None = None  # camunda:variableName: only changes of this variable count
    event_name: str | None = None  # the message or signal name a message/signal event or receive task uses
    loop: MultiInstance | None = None
    called_element: Expression | None = None
    called_version: Expression | None = None  # camunda:calledElementBinding="version"
    in_mappings: list[Mapping] = field(default_factory=list)
    out_mappings: list[Mapping] = field(default_factory=list)
    business_key: Expression | None = None  # camunda:in businessKey="..."
    attached_to: str | None = None
    cancel_activity: bool = True
    default_flow: str | None = None
    documentation: str | None = None
    incoming: list[Flow] = field(default_factory=list)
    outgoing: list[Flow] = field(default_factory=list)
    boundaries: list[str] = field(default_factory=list)  # boundary events attached to this activity
    start_event: str | None = None  # for subProcess: its none start event


@dataclass
class ProcessModel:
    """One executable ``bpmn:process``."""

    key: str
    name: str | None
    version_tag: str | None
    history_ttl: int | None
    startable: bool
    task_priority: Expression | None
    documentation: str | None
    activities: dict[str, Activity]
    start_event: str  # the none start event, or the only start event ("" if none can be started by hand)
    timer_starts: list[str] = field(default_factory=list)
    message_starts: dict[str, str] = field(default_factory=dict)  # message name -> start event id
    signal_starts: dict[str, str] = field(default_factory=dict)  # signal name -> start event id
    reachable: dict[str, frozenset[str]] = field(default_factory=dict)

    def can_reach(self, source: str, target: str) -> bool:
        """Whether a token at ``source`` may still arrive at ``target`` (inclusive join semantics)."""
        return target in self.reachable.get(source, frozenset())


class _Errors:
    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.items: list[dict[str, Any]] = []

    def add(self, message: str, element: Any = None, element_id: str | None = None) -> None:
        line = getattr(element, "sourceline", None) or 0
        element_id = element_id or (element.get("id") if element is not None else None)
        self.items.append({"message": message, "line": line, "column": 0, "mainElementId": element_id,
                           "elementIds": [element_id] if element_id else []})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        lines = "".join(
            f"\n* {item['message']} | resource {self.resource} | line {item['line']} | column {item['column']}"
            for item in self.items
        )
        raise ParseException(
            f"ENGINE-09005 Could not parse BPMN process. Errors: {lines}",
            {self.resource: {"errors": self.items, "warnings": []}},
        )


def _local(element: Any) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _ns(element: Any) -> str | None:
    tag = element.tag
    return etree.QName(tag).namespace if isinstance(tag, str) else None


class _Parser:
    def __init__(self, resource: str, root: Any) -> None:
        self.errors = _Errors(resource)
        self.root = root
        self.refused: set[str] = set()  # ids of unsupported elements (flows to them are not reported again)
        self.error_codes: dict[str, str | None] = {}
        for error in root.iter(_B + "error"):
            self.error_codes[error.get("id", "")] = error.get("errorCode")

    # ---------------------------------------------------------------------------------- helpers

    def expression(self, text: str | None, element: Any) -> Expression | None:
        if text is None:
            return None
        try:
            return compile_expression(text)
        except JuelSyntaxError as exc:
            self.errors.add(f"Invalid expression '{text}': {exc}", element)
            return None

    def extension(self, element: Any, name: str) -> Any:
        extensions = element.find(_B + "extensionElements")
        return extensions.find(_C + name) if extensions is not None else None

    def param(self, element: Any) -> Param:
        children = [child for child in element if isinstance(child.tag, str)]
        if not children:
            text = element.text
            if text is None or text == "":
                return Param("null")
            return Param("value", expression=self.expression(text.strip() if "${" in text else text, element))
        child = children[0]
        name = _local(child)
        if name == "list":
            return Param("list", items=tuple(self.param(item) for item in child if isinstance(item.tag, str)))
        if name == "map":
            entries = tuple((entry.get("key", ""), self.param(entry)) for entry in child.findall(_C + "entry"))
            return Param("map", entries=entries)
        self.errors.add(f"Unsupported element '{name}' in an input/output parameter", child,
                        element.getparent().getparent().getparent().get("id"))
        return Param("null")

    # ------------------------------------------------------------------------------- processes

    def processes(self) -> list[ProcessModel]:
        if _local(self.root) != "definitions" or _ns(self.root) != BPMN_NS:
            self.errors.add("The root element is not a BPMN 2.0 'definitions' element", self.root)
            return []
        models = []
        for process in self.root.findall(_B + "process"):
            if process.get("isExecutable", "true").lower() != "true":
                continue
            models.append(self.process(process))
        return models

    def process(self, element: Any) -> ProcessModel:
        key = element.get("id")
        if not key:
            self.errors.add("Process has no id", element)
        self.listeners(element, key)
        activities: dict[str, Activity] = {}
        start = self.scope(element, key or "", activities)
        starts = [a for a in activities.values() if a.kind == "startEvent" and a.scope_id == (key or "")]
        model = ProcessModel(
            key=key or "",
            name=element.get("name"),
            version_tag=element.get(_C + "versionTag"),
            history_ttl=self.history_ttl(element),
            startable=element.get(_C + "isStartableInTasklist", "true").lower() == "true",
            task_priority=self.expression(element.get(_C + "taskPriority"), element),
            documentation=self.documentation(element),
            activities=activities,
            start_event=start or (starts[0].id if len(starts) == 1 else ""),
            timer_starts=[a.id for a in starts if a.event == "timer"],
            message_starts={a.event_name: a.id for a in starts if a.event == "message" and a.event_name},
            signal_starts={a.event_name: a.id for a in starts if a.event == "signal" and a.event_name},
        )
        model.reachable = _reachability(activities)
        return model

    def history_ttl(self, element: Any) -> int | None:
        """``camunda:historyTimeToLive`` as Camunda reads it: days as a number or ``P<n>D``."""
        ttl = (element.get(_C + "historyTimeToLive") or "").strip()
        if not ttl:
            return None
        match = _HISTORY_TTL_DAYS.match(ttl)
        if ttl.isdigit() or match:
            return int(match.group(1) if match else ttl)
        self.errors.add(f"Cannot parse historyTimeToLive: '{ttl}' is neither a number of days nor P<n>D", element)
        return None

    def documentation(self, element: Any) -> str | None:
        doc = element.find(_B + "documentation")
        return doc.text if doc is not None else None

    def refuse(self, element: Any, message: str, element_id: str | None = None) -> None:
        """Report an element the sandbox cannot run; flows and boundary events touching it stay quiet."""
        self.errors.add(message, element, element_id)
        self.refused.add(element_id or element.get("id", ""))

    def scope(self, element: Any, scope_id: str, activities: dict[str, Activity]) -> str | None:
        """Parse the children of a process or subprocess; returns its none start event id."""
        flows: list[tuple[Any, Flow]] = []
        start: str | None = None
        is_process = _local(element) == "process"
        for child in element:
            if not isinstance(child.tag, str) or _ns(child) != BPMN_NS:
                continue
            name = _local(child)
            if name == "sequenceFlow":
                condition_element = child.find(_B + "conditionExpression")
                condition = None
                if condition_element is not None and (condition_element.text or "").strip():
                    if condition_element.get("language"):
                        self.errors.add("Script conditions are not supported", child)
                    condition = self.expression(condition_element.text.strip(), child)
                flow = Flow(child.get("id", ""), child.get("sourceRef", ""), child.get("targetRef", ""), condition)
                flows.append((child, flow))
            elif name in FLOW_NODES:
                activity = self.activity(child, name, scope_id, activities)
                if activity is None:
                    continue
                if activity.id in activities:
                    self.errors.add(f"Duplicate id '{activity.id}'", child)
                activities[activity.id] = activity
                if name == "startEvent" and activity.event == "none":
                    if start is not None:
                        self.errors.add("Only one none start event per scope is supported", child)
                    start = activity.id
                elif name == "startEvent" and not is_process:
                    self.refuse(child, f"Unsupported element 'startEvent' with a {activity.event} definition "
                                       "inside a subprocess (only a none start event starts a subprocess)")
            elif name in ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics") and not is_process:
                if name == "standardLoopCharacteristics":
                    self.errors.add("Unsupported element 'standardLoopCharacteristics' (loops): use "
                                    "multiInstanceLoopCharacteristics", child, scope_id)
            elif name in OUT_OF_SCOPE:
                self.refuse(child, f"Unsupported element '{name}': {OUT_OF_SCOPE[name]}")
            elif name not in HARMLESS:
                self.refuse(child, f"Unsupported element '{name}'")
        if start is None and not (is_process and any(
                a.kind == "startEvent" and a.scope_id == scope_id for a in activities.values())):
            self.errors.add("A process or subprocess needs a none start event", element)
        for child, flow in flows:
            source, target = activities.get(flow.source), activities.get(flow.target)
            if source is None or target is None or source.scope_id != scope_id or target.scope_id != scope_id:
                if {flow.source, flow.target} & self.refused:
                    continue  # already reported as unsupported
                self.errors.add(f"Sequence flow '{flow.id}' refers to an unknown source or target", child)
                continue
            source.outgoing.append(flow)
            target.incoming.append(flow)
        for activity in [a for a in activities.values() if a.scope_id == scope_id and a.kind == "boundaryEvent"]:
            if activity.attached_to in self.refused or activity.id in self.refused:
                continue  # the host (or the event itself) is already reported
            host = activities.get(activity.attached_to or "")
            if host is None:
                self.errors.add(f"Boundary event '{activity.id}' is attached to '{activity.attached_to}', which is "
                                "not an activity of this process", None, activity.id)
                continue
            if host.scope_id != scope_id:
                self.errors.add(f"Boundary event '{activity.id}' is not in the same scope as '{host.id}'", None,
                                activity.id)
                continue
            if host.kind not in BOUNDARY_HOSTS:
                self.errors.add(f"Boundary events are not supported on '{host.kind}'", None, activity.id)
            host.boundaries.append(activity.id)
        for activity in activities.values():
            if activity.scope_id == scope_id and activity.kind == "eventBasedGateway":
                for flow in activity.outgoing:
                    target = activities[flow.target]
                    if not (target.kind == "intermediateCatchEvent" or target.kind == "receiveTask") \
                            or len(target.incoming) != 1:
                        self.errors.add(f"Event-based gateway '{activity.id}': '{target.id}' must be an intermediate "
                                        "catch event or receive task reached only from the gateway", None, activity.id)
            if activity.scope_id == scope_id and activity.kind in ("exclusiveGateway", "inclusiveGateway"):
                if activity.default_flow and activity.default_flow not in {f.id for f in activity.outgoing}:
                    self.errors.add(f"Default flow '{activity.default_flow}' is not an outgoing flow", None,
                                    activity.id)
        return start

    def activity(self, element: Any, kind: str, scope_id: str, activities: dict[str, Activity]) -> Activity | None:
        activity_id = element.get("id")
        if not activity_id:
            self.errors.add(f"Element '{kind}' has no id", element)
            return None
        activity = Activity(id=activity_id, kind=kind, name=element.get("name"), scope_id=scope_id,
                            documentation=self.documentation(element), default_flow=element.get("default"))
        definitions = [child for child in element if isinstance(child.tag, str) and _local(child) in EVENT_DEFINITIONS]
        if kind != "subProcess":  # a subprocess's children are its scope, parsed by scope()
            for child in element:
                name = _local(child)
                if isinstance(child.tag, str) and _ns(child) == BPMN_NS and name not in EVENT_DEFINITIONS \
                        and name not in HARMLESS | {"multiInstanceLoopCharacteristics"}:
                    self.errors.add(f"Unsupported element '{name}' in '{activity_id}'", child, activity_id)
        loop = element.find(_B + "multiInstanceLoopCharacteristics")
        if loop is not None:
            activity.loop = self.multi_instance(loop, activity_id)
        if len(definitions) > 1:
            self.errors.add("Only one event definition per event is supported", element)
        definition = definitions[0] if definitions else None
        definition_name = _local(definition) if definition is not None else None
        if definition_name in ("escalationEventDefinition", "compensateEventDefinition", "linkEventDefinition",
                               "cancelEventDefinition"):
            self.refuse(element, f"Unsupported element '{definition_name}' in '{kind}' (the sandbox runs error, "
                                 "timer, message, signal, conditional and terminate events)", activity_id)
            return activity
        self.extensions(element, activity)
        self.listeners(element, activity_id)

        if kind == "startEvent":
            self.forms(element, activity_id)
            if definition_name == "timerEventDefinition":
                activity.event = "timer"
                activity.timer = self.timer(definition, activity_id)
            elif definition_name == "messageEventDefinition":
                activity.event = "message"
                activity.event_name = self.message_name(definition, activity_id)
            elif definition_name == "signalEventDefinition":
                activity.event = "signal"
                activity.event_name = self.signal_name(definition, activity_id)
            elif definition is not None:
                self.refuse(definition, f"Unsupported element '{definition_name}' in a start event", activity_id)
        elif kind == "endEvent":
            if definition_name == "errorEventDefinition" and definition is not None:
                activity.event = "error"
                activity.error_code = self.error_codes.get(definition.get("errorRef", ""))
            elif definition_name == "terminateEventDefinition":
                activity.event = "terminate"
            elif definition_name == "signalEventDefinition":
                activity.event = "signal"
                activity.event_name = self.signal_name(definition, activity_id)
            elif definition_name == "messageEventDefinition":
                activity.event = "message"
                self.external(element, definition, activity)
            elif definition is not None:
                self.refuse(definition, f"Unsupported element '{definition_name}' in an end event", activity_id)
        elif kind == "intermediateThrowEvent":
            if definition_name == "messageEventDefinition":
                activity.event = "message"
                self.external(element, definition, activity)
            elif definition_name == "signalEventDefinition":
                activity.event = "signal"
                activity.event_name = self.signal_name(definition, activity_id)
            elif definition is not None:
                self.refuse(definition, f"Unsupported element '{definition_name}' in '{kind}'", activity_id)
        elif kind == "intermediateCatchEvent":
            self.catch_event(element, definition, definition_name, activity)
        elif kind in EXTERNAL_TASKS:
            self.external(element, element, activity)
        elif kind == "receiveTask":
            activity.event = "message"
            activity.event_name = self.message_name(element, activity_id)
        elif kind == "callActivity":
            self.call_activity(element, activity)
        elif kind == "boundaryEvent":
            activity.attached_to = element.get("attachedToRef")
            activity.cancel_activity = element.get("cancelActivity", "true").lower() == "true"
            if definition_name == "errorEventDefinition" and definition is not None:
                activity.event = "error"
                error_ref = definition.get("errorRef")
                activity.error_code = self.error_codes.get(error_ref) if error_ref else None
                activity.error_code_variable = definition.get(_C + "errorCodeVariable")
                activity.error_message_variable = definition.get(_C + "errorMessageVariable")
                if not activity.cancel_activity:
                    self.errors.add("An error boundary event is always interrupting (cancelActivity=\"false\")",
                                    element)
            elif definition_name in ("timerEventDefinition", "conditionalEventDefinition", "messageEventDefinition",
                                     "signalEventDefinition"):
                self.catch_event(element, definition, definition_name, activity)
            else:
                self.refuse(definition if definition is not None else element,
                            f"Unsupported element '{definition_name or 'boundaryEvent'}' on a boundary event",
                            activity_id)
        elif kind == "subProcess":
            if element.get("triggeredByEvent", "false").lower() == "true":
                self.refuse(element, "Unsupported element 'subProcess' (event subprocess)")
                return activity
            activity.start_event = self.scope(element, activity_id, activities)
        return activity

    def catch_event(self, element: Any, definition: Any, definition_name: str | None, activity: Activity) -> None:
        """Timer, conditional or message definition of an intermediate catch or boundary event."""
        if definition_name == "timerEventDefinition":
            activity.event = "timer"
            activity.timer = self.timer(definition, activity.id)  # a cycle here fires once, as in Camunda
        elif definition_name == "conditionalEventDefinition":
            activity.event = "conditional"
            condition = definition.find(_B + "condition")
            if condition is None or not (condition.text or "").strip():
                self.errors.add("Conditional event must contain an expression for evaluation", definition,
                                activity.id)
            elif condition.get("language"):
                self.refuse(definition, "Script conditions are not supported", activity.id)
            else:
                activity.condition = self.expression(condition.text.strip(), condition)
            activity.condition_variable = definition.get(_C + "variableName")
        elif definition_name == "messageEventDefinition":
            activity.event = "message"
            activity.event_name = self.message_name(definition, activity.id)
        elif definition_name == "signalEventDefinition":
            activity.event = "signal"
            activity.event_name = self.signal_name(definition, activity.id)
        else:
            self.refuse(element, f"Unsupported element '{activity.kind}' without a timer, message, signal or "
                                 "conditional definition", activity.id)

    def message_name(self, holder: Any, activity_id: str) -> str | None:
        return self._referenced_name(holder, activity_id, "message")

    def signal_name(self, holder: Any, activity_id: str) -> str | None:
        return self._referenced_name(holder, activity_id, "signal")

    def _referenced_name(self, holder: Any, activity_id: str, what: str) -> str | None:
        """The name of the ``bpmn:message``/``bpmn:signal`` that ``messageRef``/``signalRef`` points at."""
        ref = holder.get(f"{what}Ref")
        for element in self.root.iter(_B + what):
            if ref and element.get("id") == ref and element.get("name"):
                return str(element.get("name"))
        self.errors.add(f"Cannot find the {what} '{ref}' (a bpmn:{what} with a name) of '{activity_id}'", holder,
                        activity_id)
        return None

    def multi_instance(self, loop: Any, activity_id: str) -> MultiInstance:
        collection_text = loop.get(_C + "collection")
        collection, collection_variable = None, None
        if collection_text and ("${" in collection_text or "#{" in collection_text):
            collection = self.expression(collection_text, loop)
        elif collection_text:
            collection_variable = collection_text
        cardinality = loop.find(_B + "loopCardinality")
        completion = loop.find(_B + "completionCondition")
        result = MultiInstance(
            sequential=loop.get("isSequential", "false").lower() == "true",
            collection=collection, collection_variable=collection_variable,
            element_variable=loop.get(_C + "elementVariable"),
            cardinality=self.expression((cardinality.text or "").strip(), cardinality)
            if cardinality is not None and (cardinality.text or "").strip() else None,
            completion=self.expression((completion.text or "").strip(), completion)
            if completion is not None and (completion.text or "").strip() else None)
        if result.cardinality is None and not collection_text:
            self.errors.add("Either loopCardinality or collection must been set", loop, activity_id)
        return result

    def call_activity(self, element: Any, activity: Activity) -> None:
        if element.get(_C + "caseRef"):
            self.refuse(element, "Unsupported element 'callActivity' calling a case (camunda:caseRef): CMMN is not "
                                 "supported", activity.id)
            return
        called = element.get("calledElement")
        if not called:
            self.errors.add("Missing attribute 'calledElement'", element, activity.id)
            return
        activity.called_element = self.expression(called, element)
        binding = element.get(_C + "calledElementBinding", "latest")
        if binding == "version":
            activity.called_version = self.expression(element.get(_C + "calledElementVersion", ""), element)
        elif binding != "latest":
            self.errors.add(f"Unsupported camunda:calledElementBinding '{binding}' (latest and version are "
                            "supported)", element, activity.id)
        extensions = element.find(_B + "extensionElements")
        for name, target in (("in", activity.in_mappings), ("out", activity.out_mappings)):
            for mapping in extensions.findall(_C + name) if extensions is not None else []:
                if name == "in" and mapping.get("businessKey") is not None:
                    activity.business_key = self.expression(mapping.get("businessKey"), mapping)
                    continue
                expression = mapping.get("sourceExpression")
                target.append(Mapping(
                    all=mapping.get("variables") == "all", source=mapping.get("source"),
                    expression=self.expression(expression, mapping) if expression else None,
                    target=mapping.get("target") or mapping.get("source"),
                    local=mapping.get("local", "false").lower() == "true"))

    def forms(self, element: Any, activity_id: str) -> None:
        form = element.get(_C + "formKey") or element.get(_C + "formRef") or self.extension(element, "formData")
        if form is not None:
            self.refuse(element, "Unsupported start form (camunda:formKey/formRef/formData): the sandbox has no "
                                 "tasklist; start instances through the REST API with variables", activity_id)

    def listeners(self, element: Any, element_id: str | None) -> None:
        """Execution and task listeners run Java classes, expressions or scripts inside the engine."""
        extensions = element.find(_B + "extensionElements")
        for name in ("executionListener", "taskListener"):
            listener = extensions.find(_C + name) if extensions is not None else None
            if listener is not None:
                self.errors.add(f"Unsupported element '{name}' on '{element_id}': listeners run Java or scripts "
                                "inside the engine", listener, element_id)

    def timer(self, definition: Any, activity_id: str) -> tuple[str, Expression] | None:
        for name, kind in (("timeDuration", "duration"), ("timeDate", "date"), ("timeCycle", "cycle")):
            child = definition.find(_B + name)
            if child is not None and (child.text or "").strip():
                expression = self.expression(child.text.strip(), child)
                if expression is not None and expression.is_literal:
                    try:
                        timers.check(kind, expression.source)
                    except ValueError as exc:
                        self.errors.add(str(exc), child, activity_id)
                return (kind, expression) if expression is not None else None
        self.errors.add("Timer needs a timeDuration, timeDate or timeCycle", definition, activity_id)
        return None

    def external(self, element: Any, holder: Any, activity: Activity) -> None:
        """``camunda:type="external"`` + ``camunda:topic`` (on the task, or on a message definition)."""
        task_type = holder.get(_C + "type") or element.get(_C + "type")
        topic = holder.get(_C + "topic") or element.get(_C + "topic")
        if task_type != "external":
            what = activity.kind if holder is element else f"{activity.kind} with a messageEventDefinition"
            java = [name for name in JAVA_ATTRIBUTES if holder.get(_C + name) or element.get(_C + name)]
            cause = (f"camunda:{java[0]} runs Java inside the engine" if java
                     else f"camunda:type=\"{task_type}\" is not supported" if task_type
                     else "no implementation is given")
            self.refuse(element, f"Unsupported element '{what}': {cause}; only camunda:type=\"external\" with a "
                                 "camunda:topic is supported", activity.id)
            return
        if not topic:
            self.errors.add("External tasks must specify a 'topic' attribute in the camunda namespace", element)
            return
        activity.external = True
        activity.topic = self.expression(topic, element)
        activity.priority = self.expression(element.get(_C + "taskPriority") or holder.get(_C + "taskPriority"),
                                            element)

    def extensions(self, element: Any, activity: Activity) -> None:
        properties = self.extension(element, "properties")
        if properties is not None:
            for prop in properties.findall(_C + "property"):
                activity.properties[prop.get("name", "")] = prop.get("value", "")
        extensions = element.find(_B + "extensionElements")
        if extensions is None:
            return
        for field_element in extensions.findall(_C + "field"):
            value = field_element.get("stringValue") or field_element.get("expression")
            for child in field_element:
                if _local(child) in ("string", "expression"):
                    value = child.text
            activity.fields[field_element.get("name", "")] = value
        io = extensions.find(_C + "inputOutput")
        if io is not None:
            for parameter in io.findall(_C + "inputParameter"):
                activity.inputs.append((parameter.get("name", ""), self.param(parameter)))
            for parameter in io.findall(_C + "outputParameter"):
                activity.outputs.append((parameter.get("name", ""), self.param(parameter)))
        for definition in extensions.findall(_C + "errorEventDefinition"):
            expression = self.expression(definition.get("expression"), definition)
            if expression is not None:
                code = self.error_codes.get(definition.get("errorRef", ""))
                activity.error_definitions.append((code, expression))


def _reachability(activities: dict[str, Activity]) -> dict[str, frozenset[str]]:
    """For each node, the nodes a token there may still reach (sequence flows and boundary events)."""
    successors: dict[str, set[str]] = {a.id: {f.target for f in a.outgoing} for a in activities.values()}
    for activity in activities.values():
        successors[activity.id].update(activity.boundaries)
    result: dict[str, frozenset[str]] = {}
    for start in activities:
        seen: set[str] = set()
        stack = list(successors[start])
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(successors.get(node, ()))
        result[start] = frozenset(seen)
    return result


def parse(resource: str, data: bytes) -> list[ProcessModel]:
    """All executable processes in one resource; raises :class:`ParseException` listing every problem."""
    errors = _Errors(resource)
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        errors.items.append({"message": f"XML is not well-formed: {exc.msg}", "line": exc.lineno or 0,
                             "column": exc.offset or 0, "mainElementId": None, "elementIds": []})
        errors.raise_if_any()
        raise AssertionError("unreachable") from exc
    parser_state = _Parser(resource, root)
    models = parser_state.processes()
    parser_state.errors.raise_if_any()
    return models
