"""BPMN metadata of external activities, parsed from a definition's XML and cached per definition id.

What a consumer needs besides the variables lives in the model: the activity's name, documentation,
``camunda:properties``, field injections and input/output parameters, and the process's own name and
properties. :func:`parse_definition` reads all of it once per definition with lxml;
:class:`MetadataCache` keeps the result by definition id (LRU size + TTL), fetches each definition
once however many threads miss at the same time (single flight, no global lock held during HTTP),
and remembers a failure only briefly so that a hiccup does not hide a model for long.

Shapes, chosen so that the common case is a plain value:

* field injection: a string field → its text; an expression → ``{"expression": "${...}"}``;
* I/O parameter: text (expressions stay text) → ``str``; empty → ``None``; ``camunda:list`` → ``list``;
  ``camunda:map`` → ``dict``; ``camunda:script`` → ``{"script": source, "script_format": fmt}`` (or
  ``"resource"`` instead of ``"script"``), never evaluated here.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from exchanger.contracts import BpmnMetadata, IoParameters

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
_B = "{" + BPMN_NS + "}"
_C = "{" + CAMUNDA_NS + "}"

DEFAULT_CACHE_SIZE = 500  # definitions kept; one entry holds every activity of one deployed version
DEFAULT_TTL_S = 3600.0  # a definition id never changes its XML; the TTL only bounds memory of old versions
DEFAULT_FAILURE_TTL_S = 5.0  # a failed fetch is not retried for this long (no storm), then tried again


class MetadataError(ValueError):
    """The definition XML cannot be read as BPMN."""


def _local(element: Any) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _children(element: Any) -> list[Any]:
    return [child for child in element if isinstance(child.tag, str)]


def _extension(element: Any) -> Any:
    return element.find(_B + "extensionElements")


def _properties(element: Any) -> dict[str, str]:
    extensions = _extension(element)
    if extensions is None:
        return {}
    return {prop.get("name", ""): prop.get("value", "")
            for props in extensions.findall(_C + "properties") for prop in props.findall(_C + "property")}


def _field_injections(extensions: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field in extensions.findall(_C + "field"):
        name = field.get("name", "")
        if field.get("expression") is not None:
            fields[name] = {"expression": field.get("expression")}
        elif field.get("stringValue") is not None:
            fields[name] = field.get("stringValue")
        for child in _children(field):
            if _local(child) == "expression":
                fields[name] = {"expression": child.text or ""}
            elif _local(child) == "string":
                fields[name] = child.text or ""
    return fields


def _parameter(element: Any) -> Any:
    children = _children(element)
    if not children:
        text = element.text
        return None if text is None or text.strip() == "" else text
    child = children[0]
    kind = _local(child)
    if kind == "list":
        return [_parameter(item) for item in _children(child)]
    if kind == "map":
        return {entry.get("key", ""): _parameter(entry) for entry in child.findall(_C + "entry")}
    if kind == "script":
        script: dict[str, Any] = {"script_format": child.get("scriptFormat", "")}
        if child.get("resource"):
            script["resource"] = child.get("resource")
        else:
            script["script"] = child.text or ""
        return script
    return etree.tostring(child, encoding="unicode")  # an element we do not know: kept verbatim


def _io_parameters(extensions: Any) -> IoParameters:
    io = extensions.find(_C + "inputOutput")
    if io is None:
        return IoParameters()
    return IoParameters(
        input={p.get("name", ""): _parameter(p) for p in io.findall(_C + "inputParameter")},
        output={p.get("name", ""): _parameter(p) for p in io.findall(_C + "outputParameter")},
    )


def _external_topic(element: Any) -> str | None:
    """The topic when ``element`` is an external activity (on the task, or on its message definition)."""
    for holder in (element, element.find(_B + "messageEventDefinition")):
        if holder is not None and holder.get(_C + "type") == "external":
            return holder.get(_C + "topic", "")
    return None


def parse_definition(xml: str | bytes) -> dict[str, BpmnMetadata]:
    """Activity id → metadata, for every external activity of every process in the XML."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"definition XML is not well-formed: {exc}") from None
    if root.tag != _B + "definitions":
        raise MetadataError(f"not a BPMN 2.0 definitions document (root {root.tag})")
    result: dict[str, BpmnMetadata] = {}
    for process in root.iter(_B + "process"):
        process_name = process.get("name") or ""
        process_properties = _properties(process)
        for element in process.iter():
            if not isinstance(element.tag, str) or element is process or _local(element) == "messageEventDefinition":
                continue
            topic = _external_topic(element)
            if topic is None:
                continue
            extensions = _extension(element)
            documentation = element.find(_B + "documentation")
            result[element.get("id", "")] = BpmnMetadata(
                activity_name=element.get("name") or "",
                activity_type=_local(element),
                documentation=(documentation.text or "").strip() if documentation is not None else "",
                topic=topic,
                extension_properties=_properties(element),
                field_injections=_field_injections(extensions) if extensions is not None else {},
                io_parameters=_io_parameters(extensions) if extensions is not None else IoParameters(),
                process_name=process_name,
                process_properties=process_properties,
            )
    return result


def _fresh(error: BaseException) -> BaseException:
    """A copy of a remembered error without its traceback: raising the same object again and again
    would chain one more traceback onto it each time (a log line growing with every pass)."""
    try:
        copy_ = copy.copy(error)
    except Exception:  # noqa: BLE001 - an error class that cannot be rebuilt from its args
        copy_ = MetadataError(f"{type(error).__name__}: {error}")
    copy_.__traceback__ = copy_.__cause__ = copy_.__context__ = None
    copy_.__suppress_context__ = True
    return copy_


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0  # lookups that had to fetch (or wait for a fetch already running)
    failures: int = 0  # fetches or parses that failed
    size: int = 0


class _Flight:
    """One fetch in progress; late arrivals for the same key wait on it instead of fetching again."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, BpmnMetadata] | None = None
        self.error: BaseException | None = None


class MetadataCache:
    """Definition id → parsed metadata, with LRU ``size``, ``ttl_s`` and a short ``failure_ttl_s``.

    ``load(definition_id)`` returns the definition XML (``CamundaClient.process_definition_xml``).
    """

    def __init__(
        self,
        load: Callable[[str], str],
        *,
        size: int = DEFAULT_CACHE_SIZE,
        ttl_s: float = DEFAULT_TTL_S,
        failure_ttl_s: float = DEFAULT_FAILURE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.size = size
        self.ttl_s = ttl_s
        self.failure_ttl_s = failure_ttl_s
        self._clock = clock
        self._lock = threading.Lock()  # guards the dicts only; never held while fetching
        self._entries: OrderedDict[str, tuple[float, dict[str, BpmnMetadata] | BaseException]] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._stats = CacheStats()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._stats.hits, self._stats.misses, self._stats.failures, len(self._entries))

    def activity(self, definition_id: str, activity_id: str) -> BpmnMetadata:
        """The metadata of one activity; an activity the model does not describe gets empty metadata."""
        return self.definition(definition_id).get(activity_id) or BpmnMetadata()

    def definition(self, definition_id: str) -> dict[str, BpmnMetadata]:
        """Every external activity of the definition; raises the fetch's error (remembered briefly)."""
        with self._lock:
            entry = self._entries.get(definition_id)
            if entry is not None and entry[0] > self._clock():
                self._entries.move_to_end(definition_id)
                self._stats.hits += 1
                value = entry[1]
                if isinstance(value, BaseException):
                    raise _fresh(value)
                return value
            self._stats.misses += 1
            flight = self._flights.get(definition_id)
            leader = flight is None
            if flight is None:
                flight = self._flights[definition_id] = _Flight()
        if leader:
            self._fetch(definition_id, flight)
        else:
            flight.done.wait()
        if flight.error is not None:
            raise _fresh(flight.error)
        assert flight.result is not None
        return flight.result

    def _fetch(self, definition_id: str, flight: _Flight) -> None:
        try:
            flight.result = parse_definition(self._load(definition_id))
            value: dict[str, BpmnMetadata] | BaseException = flight.result
            expires = self._clock() + self.ttl_s
        except Exception as exc:  # noqa: BLE001 - handed to every waiter and remembered briefly, not swallowed
            flight.error = exc
            value, expires = exc, self._clock() + self.failure_ttl_s
        with self._lock:
            if flight.error is not None:
                self._stats.failures += 1
            self._entries[definition_id] = (expires, value)
            self._entries.move_to_end(definition_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            del self._flights[definition_id]
        flight.done.set()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
