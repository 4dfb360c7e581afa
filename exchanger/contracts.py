"""The message contracts every daemon reads and writes, as pydantic models.

A message body is the model's JSON (UTF-8); its schema name and version travel in the
``x-exchanger-schema`` header (e.g. ``exchanger.task/1``) so that a consumer can refuse what it does
not understand before parsing. Variables are Camunda-typed (``{"value", "type"}``, see
:mod:`exchanger.variables`), exactly what Camunda sends and accepts.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticSerializationError

from exchanger.errors import ContractError as ContractError  # defined with the other errors; importable here too
from exchanger.secrets import mask
from exchanger.variables import TypedValue, from_typed, from_typed_map

SCHEMA_HEADER = "x-exchanger-schema"
# Nesting levels one variable's value may have. Every daemon parses messages with pydantic's JSON
# parser, which refuses documents nested deeper than 200 levels (and serialises no deeper than ~250):
# a deeper Object passed on by the worker would be refused by task-creator, with the task locked for
# a year. One limit, checked where a message is built, well below both (a sent record nests the
# task one level deeper).
MAX_VALUE_DEPTH = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def value_depth(value: Any, limit: int = MAX_VALUE_DEPTH) -> int:
    """Nesting depth of a JSON-like value (a scalar is 0), counted without recursion up to ``limit + 1``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            pending.extend((child, depth) for child in item)
    return deepest


def check_variables(variables: dict[str, TypedValue]) -> dict[str, TypedValue]:
    """Refuse a variable nested deeper than :data:`MAX_VALUE_DEPTH` (see there why)."""
    for name, typed in variables.items():
        if value_depth(typed.get("value")) > MAX_VALUE_DEPTH:
            raise ValueError(f"variable {name!r} is nested deeper than {MAX_VALUE_DEPTH} levels, "
                             "more than every daemon can pass on")
    return variables


# Camunda ids (UUIDs, numbers, "key:version:uuid" definition ids) and what a company's id generator may
# make: letters, digits and _ . : - — never a "/", "?", "#" or a dot segment that would move a URL.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,255}")


def check_id(value: str) -> str:
    """An id that goes into a URL path; the clients escape every segment as well (two nets)."""
    if value and (not ID_PATTERN.fullmatch(value) or value in (".", "..")):
        raise ValueError(f"{value[:100]!r} is not an id (letters, digits and _ . : - only)")
    return value


def mask_secrets(text: str | None) -> str | None:
    """Texts that reach Camunda (incident messages) or the parking lot never carry a known secret."""
    return None if text is None else mask(text)


class Contract(BaseModel):
    """Base of every message: knows its schema name, encodes to bytes, decodes with a clear error."""

    model_config = ConfigDict(extra="ignore")
    SCHEMA: ClassVar[str]

    def to_bytes(self) -> bytes:
        try:
            return self.model_dump_json(exclude_none=True).encode("utf-8")
        except PydanticSerializationError as exc:
            raise ContractError(f"cannot encode a {self.SCHEMA} message: {exc}") from None

    @classmethod
    def from_bytes(cls, body: bytes, headers: dict[str, Any] | None = None) -> Self:
        """Parse and validate ``body``; raise :class:`ContractError` naming the problem."""
        schema = (headers or {}).get(SCHEMA_HEADER)
        if schema is not None and schema != cls.SCHEMA:
            raise ContractError(f"expected schema {cls.SCHEMA}, got {schema}")
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
            )
            raise ContractError(f"not a valid {cls.SCHEMA} message: {problems}") from None


class IoParameters(BaseModel):
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] = Field(default_factory=dict)


class BpmnMetadata(BaseModel):
    """What the BPMN model says about the activity (extension properties, fields, I/O) and its process."""

    activity_name: str = ""
    activity_type: str = ""
    documentation: str = ""
    topic: str = ""
    extension_properties: dict[str, str] = Field(default_factory=dict)
    field_injections: dict[str, Any] = Field(default_factory=dict)
    io_parameters: IoParameters = Field(default_factory=IoParameters)
    process_name: str = ""
    process_properties: dict[str, str] = Field(default_factory=dict)


class TaskMessage(Contract):
    """camunda-worker → ``<system>.queue``: one locked external task and everything needed to do it."""

    SCHEMA: ClassVar[str] = "exchanger.task/1"

    task_id: str
    topic_name: str
    system: str
    worker_id: str
    tenant_id: str | None = None
    process_instance_id: str
    process_definition_id: str = ""
    process_definition_key: str = ""
    activity_id: str = ""
    activity_instance_id: str = ""
    business_key: str | None = None
    priority: int = 0
    retries: int | None = None
    created_at: datetime = Field(default_factory=utcnow)  # when the worker fetched it
    published_at: datetime | None = None
    variables: dict[str, TypedValue] = Field(default_factory=dict)
    bpmn_metadata: BpmnMetadata = Field(default_factory=BpmnMetadata)

    _depth = field_validator("variables")(check_variables)
    _ids = field_validator("task_id", "process_instance_id", "process_definition_id")(check_id)

    def value(self, name: str, default: Any = None) -> Any:
        """A process variable as a Python value."""
        typed = self.variables.get(name)
        return default if typed is None else from_typed(typed)

    def values(self) -> dict[str, Any]:
        return from_typed_map(self.variables)

    def prop(self, name: str, default: str | None = None) -> str | None:
        """An extension property of the activity."""
        return self.bpmn_metadata.extension_properties.get(name, default)


class ExternalItem(BaseModel):
    """The work item created for a task in an external system."""

    system: str
    id: str
    url: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)  # system-specific facts the tracker needs


class SentRecord(Contract):
    """handler → ``<system>.sent.queue``: a created work item to watch until it is done."""

    SCHEMA: ClassVar[str] = "exchanger.sent/1"

    task: TaskMessage
    item: ExternalItem
    checks: int = 0
    last_checked_at: datetime | None = None
    failed_checks: int = 0  # checks in a row that raised something other than a transient error


class ItemEvent(Contract):
    """event receiver or change sweep → ``<system>.events.queue``: this item changed, look at it now.

    Carries only the item id: the consumer reads the item's state from the system itself (an event's
    own fields are never trusted for the outcome), so a forged or stale event can at most cause a read.
    """

    SCHEMA: ClassVar[str] = "exchanger.item-event/1"

    system: str
    item_id: str
    source: str = "event"  # "event" (pushed by the system) or "sweep" (found by a change sweep)
    received_at: datetime = Field(default_factory=utcnow)

    _ids = field_validator("item_id")(check_id)


class ResponseStatus(StrEnum):
    COMPLETE = "complete"
    FAILURE = "failure"
    BPMN_ERROR = "bpmn_error"


class ResponseMessage(Contract):
    """tracker or handler → ``camunda.responses.queue``: how the task ended."""

    SCHEMA: ClassVar[str] = "exchanger.response/1"

    task_id: str
    process_instance_id: str = ""
    worker_id: str
    tenant_id: str | None = None
    topic_name: str = ""
    status: ResponseStatus
    variables: dict[str, TypedValue] = Field(default_factory=dict)
    local_variables: dict[str, TypedValue] = Field(default_factory=dict)
    error_message: str | None = None
    error_details: str | None = None
    error_code: str | None = None
    retries: int | None = None
    retry_timeout_ms: int | None = None
    item: ExternalItem | None = None
    task_created_at: datetime | None = None
    handled_at: datetime = Field(default_factory=utcnow)

    _depth = field_validator("variables", "local_variables")(check_variables)
    _ids = field_validator("task_id", "process_instance_id")(check_id)
    _masked = field_validator("error_message", "error_details")(mask_secrets)


class ParkedRecord(Contract):
    """Anything that could not be processed, kept with its reason in ``errors.camunda_tasks.queue``."""

    SCHEMA: ClassVar[str] = "exchanger.parked/1"

    reason: str
    error_type: str
    source_queue: str
    attempts: int = 1
    parked_at: datetime = Field(default_factory=utcnow)
    body_text: str | None = None  # the original body when it is UTF-8
    body_base64: str | None = None  # otherwise
    headers: dict[str, Any] = Field(default_factory=dict)
    task_id: str | None = None

    _masked = field_validator("reason")(mask_secrets)

    @classmethod
    def for_body(cls, body: bytes, **fields: Any) -> ParkedRecord:
        try:
            return cls(body_text=body.decode("utf-8"), **fields)
        except UnicodeDecodeError:
            return cls(body_base64=base64.b64encode(body).decode("ascii"), **fields)

    def original_body(self) -> bytes:
        if self.body_text is not None:
            return self.body_text.encode("utf-8")
        return base64.b64decode(self.body_base64 or "")
