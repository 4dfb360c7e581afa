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

from exchanger.sandbox.camunda.errors import ParseException
from exchanger.sandbox.camunda.juel import Expression, JuelSyntaxError, compile_expression
from exchanger.sandbox.camunda.variables import parse_date_iso

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
_B = "{" + BPMN_NS + "}"
_C = "{" + CAMUNDA_NS + "}"

EXTERNAL_TASKS = {"serviceTask", "sendTask", "businessRuleTask"}
GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway"}
FLOW_NODES = EXTERNAL_TASKS | GATEWAYS | {"startEvent", "endEvent", "intermediateThrowEvent",
                                          "intermediateCatchEvent", "subProcess", "boundaryEvent"}
# Elements that carry no behaviour and are accepted anywhere inside a process.
HARMLESS = {"documentation", "extensionElements", "laneSet", "textAnnotation", "association", "group",
            "dataObject", "dataObjectReference", "dataStoreReference", "sequenceFlow", "property",
            "ioSpecification"}
EVENT_DEFINITIONS = {"errorEventDefinition", "terminateEventDefinition", "messageEventDefinition",
                     "timerEventDefinition", "signalEventDefinition", "escalationEventDefinition",
                     "conditionalEventDefinition", "compensateEventDefinition", "linkEventDefinition",
                     "cancelEventDefinition"}
_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                       r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


@dataclass(frozen=True)
class Param:
    """A ``camunda:inputParameter``/``outputParameter`` value: text/expression, list or map."""

    kind: str  # "value" | "list" | "map" | "null"
    expression: Expression | None = None
    items: tuple[Param, ...] = ()
    entries: tuple[tuple[str, Param], ...] = ()


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
    event: str = "none"  # none | error | terminate | message | timer
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
    timer: tuple[str, Expression] | None = None  # ("duration"|"date", expression)
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
    start_event: str
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


def parse_duration_ms(text: str) -> int:
    """ISO 8601 duration (``PT5M``, ``P1DT2H``, ``P2W``) in milliseconds (a month = 30 days, a year = 365)."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"Invalid ISO 8601 duration '{text}'")
    years, months, weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total_s = ((years * 365 + months * 30 + weeks * 7 + days) * 86400 + hours * 3600 + minutes * 60 + seconds)
    return int(total_s * 1000)


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
        activities: dict[str, Activity] = {}
        start = self.scope(element, key or "", activities)
        ttl = element.get(_C + "historyTimeToLive")
        model = ProcessModel(
            key=key or "",
            name=element.get("name"),
            version_tag=element.get(_C + "versionTag"),
            history_ttl=int(ttl) if ttl and ttl.isdigit() else None,
            startable=element.get(_C + "isStartableInTasklist", "true").lower() == "true",
            task_priority=self.expression(element.get(_C + "taskPriority"), element),
            documentation=self.documentation(element),
            activities=activities,
            start_event=start or "",
        )
        model.reachable = _reachability(activities)
        return model

    def documentation(self, element: Any) -> str | None:
        doc = element.find(_B + "documentation")
        return doc.text if doc is not None else None

    def scope(self, element: Any, scope_id: str, activities: dict[str, Activity]) -> str | None:
        """Parse the children of a process or subprocess; returns its none start event id."""
        flows: list[tuple[Any, Flow]] = []
        start: str | None = None
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
                if name == "startEvent":
                    if start is not None:
                        self.errors.add("Only one none start event per scope is supported", child)
                    start = activity.id
            elif name not in HARMLESS:
                self.errors.add(f"Unsupported element '{name}'", child)
                self.refused.add(child.get("id", ""))
        if start is None:
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
            host = activities.get(activity.attached_to or "")
            if host is None or host.scope_id != scope_id:
                self.errors.add(f"Boundary event '{activity.id}' is attached to an unknown activity", None,
                                activity.id)
                continue
            if host.kind not in EXTERNAL_TASKS | {"subProcess", "intermediateThrowEvent", "endEvent"}:
                self.errors.add(f"Boundary events are not supported on '{host.kind}'", None, activity.id)
            host.boundaries.append(activity.id)
        for activity in activities.values():
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
        for child in element:
            if isinstance(child.tag, str) and _ns(child) == BPMN_NS and _local(child) not in EVENT_DEFINITIONS \
                    and _local(child) not in HARMLESS | {"incoming", "outgoing", "multiInstanceLoopCharacteristics"} \
                    and kind != "subProcess":
                self.errors.add(f"Unsupported element '{_local(child)}'", child, activity_id)
            if isinstance(child.tag, str) and _local(child) in ("multiInstanceLoopCharacteristics",
                                                                 "standardLoopCharacteristics"):
                self.errors.add(f"Unsupported element '{_local(child)}'", child, activity_id)
        if len(definitions) > 1:
            self.errors.add("Only one event definition per event is supported", element)
        definition = definitions[0] if definitions else None
        definition_name = _local(definition) if definition is not None else None
        if definition_name in ("signalEventDefinition", "escalationEventDefinition", "conditionalEventDefinition",
                               "compensateEventDefinition", "linkEventDefinition", "cancelEventDefinition"):
            self.errors.add(f"Unsupported element '{definition_name}' in '{kind}'", definition, activity_id)
            return activity
        self.extensions(element, activity)

        if kind == "startEvent":
            if definition is not None:
                self.errors.add(f"Unsupported element '{definition_name}' in a start event", definition, activity_id)
        elif kind == "endEvent":
            if definition_name == "errorEventDefinition":
                activity.event = "error"
                activity.error_code = self.error_codes.get(definition.get("errorRef", ""))
            elif definition_name == "terminateEventDefinition":
                activity.event = "terminate"
            elif definition_name == "messageEventDefinition":
                activity.event = "message"
                self.external(element, definition, activity)
            elif definition is not None:
                self.errors.add(f"Unsupported element '{definition_name}' in an end event", definition, activity_id)
        elif kind == "intermediateThrowEvent":
            if definition_name == "messageEventDefinition":
                activity.event = "message"
                self.external(element, definition, activity)
            elif definition is not None:
                self.errors.add(f"Unsupported element '{definition_name}' in '{kind}'", definition, activity_id)
        elif kind == "intermediateCatchEvent":
            if definition_name != "timerEventDefinition":
                self.errors.add(f"Unsupported element '{kind}' without a timer definition", element)
            else:
                activity.event = "timer"
                activity.timer = self.timer(definition, activity_id)
        elif kind in EXTERNAL_TASKS:
            self.external(element, element, activity)
        elif kind == "boundaryEvent":
            activity.attached_to = element.get("attachedToRef")
            activity.cancel_activity = element.get("cancelActivity", "true").lower() == "true"
            if definition_name == "errorEventDefinition":
                activity.event = "error"
                error_ref = definition.get("errorRef")
                activity.error_code = self.error_codes.get(error_ref) if error_ref else None
                activity.error_code_variable = definition.get(_C + "errorCodeVariable")
                activity.error_message_variable = definition.get(_C + "errorMessageVariable")
            elif definition_name == "timerEventDefinition":
                activity.event = "timer"
                activity.timer = self.timer(definition, activity_id)
                if not activity.cancel_activity:
                    self.errors.add("Unsupported element 'boundaryEvent' (non-interrupting timer)", element)
            else:
                self.errors.add(f"Unsupported element '{definition_name or 'boundaryEvent'}' on a boundary event",
                                definition if definition is not None else element, activity_id)
        elif kind == "subProcess":
            if element.get("triggeredByEvent", "false").lower() == "true":
                self.errors.add("Unsupported element 'subProcess' (event subprocess)", element)
                return activity
            activity.start_event = self.scope(element, activity_id, activities)
        return activity

    def timer(self, definition: Any, activity_id: str) -> tuple[str, Expression] | None:
        for name, kind in (("timeDuration", "duration"), ("timeDate", "date")):
            child = definition.find(_B + name)
            if child is not None and (child.text or "").strip():
                expression = self.expression(child.text.strip(), child)
                if expression is not None and expression.is_literal:
                    try:
                        if kind == "duration":
                            parse_duration_ms(expression.source)
                        else:
                            parse_date_iso(expression.source)
                    except ValueError as exc:
                        self.errors.add(str(exc), child, activity_id)
                return (kind, expression) if expression is not None else None
        self.errors.add("Unsupported timer definition (only timeDuration and timeDate are supported)", definition,
                        activity_id)
        return None

    def external(self, element: Any, holder: Any, activity: Activity) -> None:
        """``camunda:type="external"`` + ``camunda:topic`` (on the task, or on a message definition)."""
        task_type = holder.get(_C + "type") or element.get(_C + "type")
        topic = holder.get(_C + "topic") or element.get(_C + "topic")
        if task_type != "external":
            what = activity.kind if holder is element else f"{activity.kind} with a messageEventDefinition"
            self.errors.add(f"Unsupported element '{what}': only camunda:type=\"external\" is supported", element)
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
