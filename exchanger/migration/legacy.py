"""Exchanger.py's message formats → Exchanger's contracts (pure functions, no I/O).

The old tool wrote five kinds of JSON bodies without a schema header (as its source writes them; the
procedure is README.md, "Switching from Exchanger.py"): **T** task messages (and their retry copies), **S** tracking
records, **R** responses, and error records **E1**–**E4**. :func:`classify` names the kind from the
keys a body carries; :func:`convert` turns it into what Exchanger consumes today:

====  ===============================================================================================
T     → :class:`TaskMessage` for ``<system>.queue`` (system by today's routing table)
S     → :class:`SentRecord` for ``<system>.sent.queue``; a stub system's mock record → the task again
      (the old stubs never did the work, so the new handler does it once)
R     → :class:`ResponseMessage` ``complete`` with the variables the old worker completed with
E2    → as the R it holds; with a ``raw_body`` → parked
E3/E4 → the task they hold
E1    → parked: the old worker reported a failure, Camunda holds the truth
====  ===============================================================================================

Anything else, or a body that does not hold what its kind needs, raises :class:`LegacyConversionError`
and is parked with that reason and the original bytes by the caller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exchanger.contracts import (
    SCHEMA_HEADER,
    BpmnMetadata,
    ExternalItem,
    IoParameters,
    ResponseMessage,
    ResponseStatus,
    SentRecord,
    TaskMessage,
)
from exchanger.routing import RoutingTable
from exchanger.variables import TypedValue, to_typed

TASK, RETRY, SENT, RESPONSE = "T", "T-retry", "S", "R"
E1, E2, E3, E4 = "E1", "E2", "E3", "E4"
NEW, UNKNOWN = "new", "unknown"
KINDS = (TASK, RETRY, SENT, RESPONSE, E1, E2, E3, E4, NEW, UNKNOWN)
ERROR_TYPE = "LegacyConversionError"  # error_type of a ParkedRecord made by the migration
RESPONSE_STATUSES = ("completed_by_tracker", "completed")  # other statuses the old worker dropped
TRUTHY = ("true", "1", "y", "yes", "да")  # what the old worker read as true (any case)
YES_TEXT = "ДА"  # the answer value text the old worker mapped to "ok"; every other text was "no"
TRACKED_SYSTEM = "bitrix24"  # the only system whose old S records point at a real work item
BITRIX_DEFAULT_ANSWER_FIELD = "ufResultAnswer_text"


class LegacyConversionError(ValueError):
    """An old message that cannot become a current one; the text is the park reason."""


@dataclass(frozen=True)
class Converted:
    """What to publish for one old message: ``target`` ``task``, ``sent`` or ``response``."""

    kind: str
    task_id: str
    target: str
    message: TaskMessage | SentRecord | ResponseMessage

    @property
    def system(self) -> str:
        if isinstance(self.message, SentRecord):
            return self.message.task.system
        if isinstance(self.message, TaskMessage):
            return self.message.system
        return ""


def message_id(body: bytes) -> str:
    """A stable id of an old body, so that a rerun of the migration publishes the same ids."""
    return "legacy-" + hashlib.sha256(body).hexdigest()[:32]


def classify(body: bytes, headers: dict[str, Any] | None = None) -> str:
    """The kind of an old message (one of :data:`KINDS`) by the keys it carries."""
    if (headers or {}).get(SCHEMA_HEADER):
        return NEW
    try:
        data = json.loads(body)
    except ValueError:
        return UNKNOWN
    if not isinstance(data, dict):
        return UNKNOWN
    if "error_info" in data:
        return E2
    if data.get("type") == "task_error":
        return E1
    if data.get("error_type") == "RETRY_LIMIT_EXCEEDED":
        return E3
    if data.get("error_type") == "ASSIGNEE_ID_ERROR":
        return E4
    if data.get("processing_status") == "success":
        return SENT
    if data.get("processing_status") is not None:
        return RESPONSE
    if "task_id" in data and "topic" in data:
        return RETRY if "retry_count" in data else TASK
    return UNKNOWN


def task_id_of(body: bytes) -> str | None:
    """The Camunda task id an old message is about, when it names one (for inventories and parking)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for candidate in (data.get("task_id"), _dict(data.get("original_message")).get("task_id")):
        if isinstance(candidate, str) and candidate and candidate != "unknown":
            return candidate
    return None


def convert(
    body: bytes,
    headers: dict[str, Any] | None,
    *,
    worker_id: str,
    routing: RoutingTable,
    answer_text: Callable[[str], str | None] = lambda enum_id: None,
    item_url: Callable[[str], str] = lambda task_id: "",
) -> Converted:
    """The current message for an old one, or :class:`LegacyConversionError` with the reason.

    ``worker_id``: the id the converted messages carry (the lock's new owner); ``answer_text``: the
    answer field's VALUE text of an enum ID (the old tracker sent raw IDs when it had no mapping);
    ``item_url``: a Bitrix24 task's page.
    """
    kind = classify(body, headers)
    if kind in (NEW, UNKNOWN, E1):
        raise LegacyConversionError(_unconvertible(kind))
    data = json.loads(body)
    if kind in (TASK, RETRY):
        task = task_message(data, worker_id, routing)
        return Converted(kind, task.task_id, "task", task)
    if kind in (E3, E4):
        task = task_message(_dict(data.get("original_message")), worker_id, routing)
        return Converted(kind, task.task_id, "task", task)
    if kind == SENT:
        return _sent(data, worker_id, routing, item_url)
    record = data if kind == RESPONSE else _dict(data.get("original_message"))
    if kind == E2 and "raw_body" in record:
        raise LegacyConversionError("E2 record holds an unparsable response (raw_body); it cannot be applied")
    if record.get("processing_status") not in RESPONSE_STATUSES:
        raise LegacyConversionError(
            f"response with processing_status {record.get('processing_status')!r}: the old worker applied only "
            f"{' and '.join(RESPONSE_STATUSES)}")
    response = response_message(record, worker_id, routing, answer_text, item_url)
    return Converted(kind, response.task_id, "response", response)


def _unconvertible(kind: str) -> str:
    if kind == E1:
        return "E1 record: the old worker's publish failed and it reported a failure; Camunda holds the task"
    if kind == NEW:
        return "already a current message"
    return "not an Exchanger.py message (not JSON, or none of the keys of T, S, R, E1-E4)"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- T ------------------------------------------------------------------------------------------------


def task_message(data: dict[str, Any], worker_id: str, routing: RoutingTable) -> TaskMessage:
    """An old task message (T, or the ``original_message`` of S/R/E3/E4) as a :class:`TaskMessage`."""
    task_id, topic = data.get("task_id"), data.get("topic")
    if not isinstance(task_id, str) or not task_id or not isinstance(topic, str) or not topic:
        raise LegacyConversionError("old task message without task_id or topic")
    if not data.get("process_instance_id"):
        raise LegacyConversionError(f"old task message {task_id} without process_instance_id")
    metadata = _dict(data.get("metadata"))
    activity = _dict(metadata.get("activityInfo"))
    try:
        return TaskMessage(
            task_id=task_id,
            topic_name=topic,
            system=routing.system_for(topic),
            worker_id=worker_id,
            tenant_id=data.get("tenant_id") or None,
            process_instance_id=str(data["process_instance_id"]),
            process_definition_key=str(data.get("process_definition_key") or ""),
            activity_id=str(data.get("activity_id") or activity.get("id") or ""),
            activity_instance_id=str(data.get("activity_instance_id") or ""),
            business_key=data.get("business_key"),
            priority=int(data.get("priority") or 0),
            retries=data.get("retries"),
            created_at=_created_at(data),
            variables=typed_variables(data),
            bpmn_metadata=BpmnMetadata(
                activity_name=str(activity.get("name") or ""),
                activity_type=str(activity.get("type") or ""),
                topic=str(activity.get("topic") or topic),
                extension_properties={str(k): str(v) for k, v in _dict(metadata.get("extensionProperties")).items()},
                field_injections=_dict(metadata.get("fieldInjections")),
                io_parameters=IoParameters(input=_dict(metadata.get("inputParameters")),
                                           output=_dict(metadata.get("outputParameters"))),
                process_properties={str(k): str(v) for k, v in _dict(metadata.get("processProperties")).items()},
            ),
        )
    except (ValueError, TypeError) as exc:
        raise LegacyConversionError(f"old task message {task_id} does not fit the task contract: {exc}") from None


def _created_at(data: dict[str, Any]) -> datetime:
    """``created_time`` (``2025-03-03T10:15:30.123+0300``), else the publish ``timestamp`` (ms)."""
    text = data.get("created_time")
    if isinstance(text, str) and text:
        for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
            try:
                return datetime.strptime(text, pattern)
            except ValueError:
                continue
    stamp = data.get("timestamp")
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp / 1000 if stamp > 10**11 else stamp, UTC)
    return datetime.now(UTC)


def typed_variables(data: dict[str, Any]) -> dict[str, TypedValue]:
    """Typed values from ``process_variables``; flattened ``variables`` not there get an inferred type."""
    typed: dict[str, TypedValue] = {}
    for name, value in _dict(data.get("process_variables")).items():
        if isinstance(value, dict) and "type" in value:
            typed[name] = {"value": value.get("value"), "type": value["type"],
                           **({"valueInfo": value["valueInfo"]} if value.get("valueInfo") else {})}
    for name, value in _dict(data.get("variables")).items():
        if name not in typed:
            try:
                typed[name] = to_typed(value)
            except TypeError:
                typed[name] = to_typed(str(value))
    return typed


# --- S ------------------------------------------------------------------------------------------------


def _sent(data: dict[str, Any], worker_id: str, routing: RoutingTable,
          item_url: Callable[[str], str]) -> Converted:
    task = task_message(_dict(data.get("original_message")), worker_id, routing)
    item_id = str(_dict(_dict(_dict(data.get("response_data")).get("result")).get("task")).get("id") or "")
    if task.system != TRACKED_SYSTEM or not item_id or item_id.startswith("mock-"):
        # the old OpenProject/1C/python stubs only pretended: nothing exists to track, the work is still to do
        return Converted(SENT, task.task_id, "task", task)
    processed_at = data.get("processed_at")
    created = datetime.fromtimestamp(processed_at, UTC) if isinstance(processed_at, int | float) else task.created_at
    item = ExternalItem(system=TRACKED_SYSTEM, id=item_id, url=item_url(item_id), created_at=created, data={
        "activity_id": task.activity_id,
        "result_expected": result_expected(task),
        "xml_id": f"{task.process_instance_id}:{task.activity_id}",
    })
    return Converted(SENT, task.task_id, "sent", SentRecord(task=task, item=item))


def result_expected(task: TaskMessage) -> bool:
    """An answer is expected: the old property ``UF_RESULT_EXPECTED`` (what the old tool wrote to the task's
    own field) or today's ``resultExpected``."""
    old = task.prop("UF_RESULT_EXPECTED") or ""
    new = task.prop("resultExpected") or ""
    return old.strip().lower() in TRUTHY or new.strip().lower() in ("true", "1", "yes")


# --- R ------------------------------------------------------------------------------------------------


def response_message(
    record: dict[str, Any],
    worker_id: str,
    routing: RoutingTable,
    answer_text: Callable[[str], str | None],
    item_url: Callable[[str], str],
) -> ResponseMessage:
    """An old response as ``complete`` with the variables the old worker sent (without its snapshot)."""
    task = task_message(_dict(record.get("original_message")), worker_id, routing)
    result = _dict(_dict(record.get("response_data")).get("result"))
    bitrix_task = _dict(result.get("task"))
    variables: dict[str, Any] = {}
    for name in ("id", "title", "status"):
        if bitrix_task.get(name) is not None:
            variables[f"bitrix_task_{name}"] = str(bitrix_task[name])
    variables.update(questionnaire_variables(task.activity_id, _dict(result.get("questionnaires"))))
    if task.activity_id and str(bitrix_task.get("ufResultExpected") or "").strip().lower() in TRUTHY:
        variables[task.activity_id] = answer(bitrix_task.get(BITRIX_DEFAULT_ANSWER_FIELD), answer_text, task.task_id)
    item_id = str(bitrix_task.get("id") or "")
    item = ExternalItem(system=task.system, id=item_id, url=item_url(item_id)) if item_id else None
    return ResponseMessage(
        task_id=task.task_id, process_instance_id=task.process_instance_id, worker_id=worker_id,
        tenant_id=task.tenant_id, topic_name=task.topic_name, status=ResponseStatus.COMPLETE,
        variables={name: to_typed(value) for name, value in variables.items()}, item=item,
        task_created_at=task.created_at,
    )


def answer(value: Any, answer_text: Callable[[str], str | None], task_id: str) -> str:
    """``"ok"`` for «ДА», ``"no"`` otherwise, as the old worker decided; a raw enum ID is resolved first,
    and an ID the portal does not know is refused (never a silent "no")."""
    text = "" if value is None else str(value).strip()
    if text.isdigit():
        resolved = answer_text(text)
        if resolved is None:
            raise LegacyConversionError(f"response for task {task_id}: answer enum ID {text} is unknown on the "
                                        f"portal; resolve it by hand")
        text = resolved.strip()
    return "ok" if text.upper() == YES_TEXT else "no"


def questionnaire_variables(activity_id: str, questionnaires: dict[str, Any]) -> dict[str, Any]:
    """``<activity>_<QUESTIONNAIRE>_<QUESTION>`` per answered question, typed by the question's ``TYPE``."""
    variables: dict[str, Any] = {}
    items = questionnaires.get("items")
    for questionnaire in items if isinstance(items, list) else []:
        code = _dict(questionnaire).get("CODE")
        for question in _dict(questionnaire).get("questions") or []:
            question = _dict(question)
            if not code or not question.get("CODE"):
                continue
            variables[f"{activity_id}_{code}_{question['CODE']}"] = _question_value(question)
    return variables


def _question_value(question: dict[str, Any]) -> Any:
    kind = str(question.get("TYPE") or "").lower()
    value = question.get("answer")
    if kind == "boolean":
        return str(value or "").strip().lower() in TRUTHY
    if value is None or value == "":
        return None
    if kind == "integer":
        text = str(value).strip()
        return int(text) if text.lstrip("-").isdigit() else text
    return str(value)
