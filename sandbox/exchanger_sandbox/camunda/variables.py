"""Typed variable values (``VariableValueDto``), untyped inference and Camunda's date format.

A value is kept as a :class:`TypedValue`: the REST type name, the value in its wire form (a Date is
its formatted string, Bytes/File base64 text, a typed Object its serialized string) and ``valueInfo``.

Deviation: an *untyped* dict or list becomes an ``Object`` whose
``objectTypeName`` is ``java.util.LinkedHashMap``/``java.util.ArrayList``; it is returned as the JSON
structure when ``deserializeValues=true`` and as a JSON string otherwise (there are no Java bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exchanger.bpmn.errors import InvalidRequestException, ProcessEngineException, RestException
from exchanger.bpmn.timers import local_zone

# Camunda's default serialization format for untyped objects (ProcessEngineConfigurationImpl).
JAVA_SERIALIZED = "application/x-java-serialized-object"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1

_JAVA_TYPES = {
    "Integer": "java.lang.Integer",
    "Long": "java.lang.Long",
    "Short": "java.lang.Short",
    "Double": "java.lang.Double",
    "Boolean": "java.lang.Boolean",
    "Date": "java.util.Date",
    "String": "java.lang.String",
    "Bytes": "[B",
}
KNOWN_TYPES = {"String", "Integer", "Long", "Short", "Double", "Boolean", "Date", "Null", "Bytes", "File", "Object",
               "Json", "Xml"}


@dataclass(frozen=True, slots=True)
class TypedValue:
    type: str
    value: Any
    info: dict[str, Any] = field(default_factory=dict)


NULL = TypedValue("Null", None)


# ---------------------------------------------------------------------------------------------- dates


def format_date(epoch_ms: int | None) -> str | None:
    """``yyyy-MM-dd'T'HH:mm:ss.SSSZ``: ``2015-10-06T16:34:42.000+0200`` (no colon, never ``Z``)."""
    if epoch_ms is None:
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=local_zone())
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}{moment:%z}"


def parse_date(text: str) -> int:
    """Parse Camunda's date format (also accepting ``+02:00`` and ``Z``) to epoch milliseconds."""
    if not isinstance(text, str):
        raise ValueError(f"not a date: {text!r}")
    candidate = text.strip()
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+0000"
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            moment = datetime.strptime(candidate, pattern)
            return int(moment.timestamp() * 1000)
        except ValueError:
            continue
    raise ValueError(f"Cannot parse date '{text}'")


# ------------------------------------------------------------------------------------------ inbound


def _conversion_error(value: Any, type_name: str) -> InvalidRequestException:
    java = _JAVA_TYPES.get(type_name, type_name)
    return InvalidRequestException(400, f"Cannot convert value '{value}' of type '{type_name}' to java type {java}")


def infer(value: Any) -> TypedValue:
    """Type of an untyped value, as Jackson + the engine infer it."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return TypedValue("Boolean", value)
    if isinstance(value, int):
        if INT32_MIN <= value <= INT32_MAX:
            return TypedValue("Integer", value)
        return TypedValue("Long", value)
    if isinstance(value, float):
        return TypedValue("Double", value)
    if isinstance(value, str):
        return TypedValue("String", value)
    if isinstance(value, dict | list):
        type_name = "java.util.LinkedHashMap" if isinstance(value, dict) else "java.util.ArrayList"
        return TypedValue("Object", value, {"objectTypeName": type_name, "serializationDataFormat": JAVA_SERIALIZED})
    return TypedValue("String", str(value))


def _integral(value: Any, type_name: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise _conversion_error(value, type_name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise _conversion_error(value, type_name) from None
    if not isinstance(value, int) or not low <= value <= high:
        raise _conversion_error(value, type_name)
    return value


def from_dto(name: str, dto: Any) -> TypedValue:
    """One ``VariableValueDto`` from a request body to a :class:`TypedValue` (raises Camunda's errors)."""
    if not isinstance(dto, dict):
        raise InvalidRequestException(400, f"Cannot set variable '{name}': expected an object with a 'value'")
    value = dto.get("value")
    type_name = dto.get("type")
    info = dto.get("valueInfo") or {}
    if not isinstance(info, dict):
        raise InvalidRequestException(400, "valueInfo must be an object")
    if type_name is None:
        typed = infer(value)
        return TypedValue(typed.type, typed.value, {**typed.info, **info}) if info else typed
    type_name = str(type_name)
    canonical = type_name[:1].upper() + type_name[1:]
    if canonical not in KNOWN_TYPES:
        raise RestException(400, f"Unsupported value type '{type_name}'")
    if value is None:
        return TypedValue(canonical, None, info)
    if canonical == "String":
        if isinstance(value, dict | list):
            raise _conversion_error(value, canonical)
        return TypedValue("String", value if isinstance(value, str) else json.dumps(value), info)
    if canonical == "Integer":
        return TypedValue("Integer", _integral(value, canonical, INT32_MIN, INT32_MAX), info)
    if canonical == "Long":
        return TypedValue("Long", _integral(value, canonical, INT64_MIN, INT64_MAX), info)
    if canonical == "Short":
        return TypedValue("Short", _integral(value, canonical, INT16_MIN, INT16_MAX), info)
    if canonical == "Double":
        if isinstance(value, bool):
            raise _conversion_error(value, canonical)
        try:
            return TypedValue("Double", float(value), info)
        except (TypeError, ValueError):
            raise _conversion_error(value, canonical) from None
    if canonical == "Boolean":
        if isinstance(value, bool):
            return TypedValue("Boolean", value, info)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return TypedValue("Boolean", value.lower() == "true", info)
        raise _conversion_error(value, canonical)
    if canonical == "Date":
        try:
            return TypedValue("Date", format_date(parse_date(value)), info)
        except ValueError:
            raise _conversion_error(value, canonical) from None
    if canonical in ("Bytes", "File"):
        if not isinstance(value, str):
            raise _conversion_error(value, canonical)
        return TypedValue(canonical, value, info)
    if canonical == "Object":
        if not isinstance(value, str):
            raise InvalidRequestException(
                400, "Must provide 'null' or String value for value of SerializableValue type 'Object'."
            )
        if info.get("serializationDataFormat", JAVA_SERIALIZED) == JAVA_SERIALIZED:
            raise ProcessEngineException(
                f"ENGINE-17007 Cannot set variable with name {name}. Java serialization format is prohibited"
            )
        return TypedValue("Object", value, info)
    # Json / Xml: the serialized text
    return TypedValue(canonical, value if isinstance(value, str) else json.dumps(value), info)


def from_dto_map(dtos: Any) -> dict[str, TypedValue]:
    """A ``{name: VariableValueDto}`` map (``None`` = no variables)."""
    if not dtos:
        return {}
    if not isinstance(dtos, dict):
        raise InvalidRequestException(400, "variables must be an object")
    return {name: from_dto(name, dto) for name, dto in dtos.items()}


# ----------------------------------------------------------------------------------------- outbound


def to_dto(typed: TypedValue, deserialize: bool = True) -> dict[str, Any]:
    """The wire form; ``valueInfo`` is never omitted, a File's value is."""
    value = typed.value
    if typed.type == "File":
        value = None
    elif typed.type == "Object" and value is not None:
        if isinstance(value, dict | list):
            value = value if deserialize else json.dumps(value)
        elif deserialize and typed.info.get("serializationDataFormat") == "application/json":
            try:
                value = json.loads(value)
            except ValueError:
                pass
    return {"type": typed.type, "value": value, "valueInfo": typed.info}


def to_python(typed: TypedValue) -> Any:
    """The value an expression sees (an Object or Json holding JSON is its structure)."""
    if typed.type in ("Object", "Json") and isinstance(typed.value, str):
        if typed.type == "Json" or typed.info.get("serializationDataFormat") == "application/json":
            try:
                return json.loads(typed.value)
            except ValueError:
                return typed.value
    return typed.value


def encode(typed: TypedValue) -> tuple[str, str, str]:
    """Columns for the store: type, JSON of the value, JSON of the value info."""
    return typed.type, json.dumps(typed.value), json.dumps(typed.info)


def decode(type_name: str, value_json: str, info_json: str) -> TypedValue:
    return TypedValue(type_name, json.loads(value_json), json.loads(info_json))
