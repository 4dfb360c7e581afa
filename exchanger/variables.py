"""Typed Camunda variables ⇄ Python values, shared by every daemon and the message contracts.

Camunda's ``VariableValueDto`` is ``{"value": ..., "type": ...}``. Going out, Python values get the
type Camunda would infer and that survives the round trip: ``bool`` → Boolean, ``int`` → Integer or
Long by range, ``float`` → Double, ``str`` → String, ``None`` → Null, ``datetime``/``date`` → Date
(``yyyy-MM-dd'T'HH:mm:ss.SSSZ``), ``dict``/``list`` → Json (serialised, as the REST API expects),
``bytes`` → Bytes (base64). Coming in, each type is decoded back to the same Python value.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, time
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # Java int; beyond it Camunda needs Long
CAMUNDA_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"  # with milliseconds, see format_date

TypedValue = dict[str, Any]


def format_date(value: datetime | date) -> str:
    """Camunda's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``, e.g. ``2026-11-22T10:00:00.000+0000``; naive = UTC."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}" + value.strftime("%z")


def parse_date(text: str) -> datetime:
    """Camunda's Date format, or any ISO 8601 date/time (``Z`` allowed); naive results are UTC."""
    candidate = text.strip()
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        parsed = datetime.strptime(candidate, CAMUNDA_DATE_FORMAT)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_typed(value: Any) -> TypedValue:
    """The ``{"value", "type"}`` Camunda stores for a Python value."""
    if value is None:
        return {"value": None, "type": "Null"}
    if isinstance(value, bool):
        return {"value": value, "type": "Boolean"}
    if isinstance(value, int):
        return {"value": value, "type": "Integer" if INT_MIN <= value <= INT_MAX else "Long"}
    if isinstance(value, float):
        return {"value": value, "type": "Double"}
    if isinstance(value, str):
        return {"value": value, "type": "String"}
    if isinstance(value, datetime | date):
        return {"value": format_date(value), "type": "Date"}
    if isinstance(value, dict | list | tuple):
        return {"value": json.dumps(value, ensure_ascii=False, default=_json_default), "type": "Json"}
    if isinstance(value, bytes | bytearray):
        return {"value": base64.b64encode(bytes(value)).decode("ascii"), "type": "Bytes"}
    raise TypeError(f"cannot send a {type(value).__name__} to Camunda; use str, number, bool, date, dict or list")


def from_typed(typed: TypedValue) -> Any:
    """The Python value of a Camunda ``VariableValueDto`` (unknown types: the raw value)."""
    kind = (typed.get("type") or "").lower()
    value = typed.get("value")
    if value is None:
        return None
    if kind == "date":
        return parse_date(value)
    if kind == "json" and isinstance(value, str):
        return json.loads(value)
    if kind in ("integer", "long", "short"):
        return int(value)
    if kind == "double":
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind in ("bytes", "file") and isinstance(value, str):
        return base64.b64decode(value)
    return value


def to_typed_map(values: dict[str, Any]) -> dict[str, TypedValue]:
    return {name: to_typed(value) for name, value in values.items()}


def from_typed_map(variables: dict[str, TypedValue]) -> dict[str, Any]:
    return {name: from_typed(typed) for name, typed in variables.items()}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return format_date(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
