"""OData v3 pieces of the fake 1C: error bodies, resource paths, ``$filter``, value checks, JSON shapes.

Error codes are 1C's own (§17.4.10 of the developer guide): 4 bad property value, 6 bad URL,
8 entity type not found, 9 entity not found, 14 query options parse error, 15 key already exists,
16 property cannot be assigned, 20 access rights, -1 business error (HTTP 500).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from exchanger_sandbox.http import Response, json_response
from exchanger_sandbox.onec.state import BOOLEAN, DATETIME, GUID, NUMBER, ROWS, STRING

_RESOURCE = re.compile(r"^(?P<entity>[^\W\d]\w*)(?:\(guid'(?P<key>[0-9a-fA-F-]{36})'\))?$")
_CLAUSE = re.compile(
    r"\s*(?P<prop>\w+)\s+(?P<op>eq|ne)\s+"
    r"(?P<literal>guid'[0-9a-fA-F-]{36}'|datetime'[^']*'|'(?:[^']|'')*'|true|false|-?\d+(?:\.\d+)?)"
    r"\s*(?:(?P<more>and|or)\s+|$)"
)
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


class ODataError(Exception):
    """Raised by the helpers below; the server turns it into an ``odata.error`` response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return error(self.status, self.code, self.message)


def error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}})


@dataclass(frozen=True)
class Resource:
    entity: str
    key: str | None  # Ref_Key when the path addresses one object


def parse_resource(segment: str) -> Resource:
    """``Document_X`` or ``Document_X(guid'…')``, URL-decoded (names are usually Cyrillic)."""
    match = _RESOURCE.match(unquote(segment))
    if match is None:
        raise ODataError(400, "6", f"Неверный URL: {unquote(segment)}")
    key = match["key"].lower() if match["key"] else None
    return Resource(match["entity"], key)


@dataclass(frozen=True)
class Clause:
    prop: str
    equal: bool
    value: Any


def parse_filter(text: str, properties: dict[str, str]) -> list[list[Clause]]:
    """``A eq 'x' and B ne guid'…' or A eq 'y'``: the subset of ``$filter`` integrations use to look things
    up (and to read several objects in one request), as alternatives (``or``) of clauses that all hold
    (``and`` binds tighter, as in OData)."""
    alternatives: list[list[Clause]] = [[]]
    position = 0
    while position < len(text):
        match = _CLAUSE.match(text, position)
        if match is None:
            raise ODataError(400, "14", f"Ошибка разбора параметров запроса: $filter={text}")
        if match["prop"] not in properties:
            raise ODataError(400, "10", f"Свойство не найдено: {match['prop']}")
        alternatives[-1].append(Clause(match["prop"], match["op"] == "eq", _literal(match["literal"])))
        position = match.end()
        if not match["more"]:
            break
        if match["more"] == "or":
            alternatives.append([])
    if position < len(text) or not all(alternatives):
        raise ODataError(400, "14", f"Ошибка разбора параметров запроса: $filter={text}")
    return alternatives


def _literal(token: str) -> Any:
    if token.startswith("guid'"):
        return token[5:-1].lower()
    if token.startswith("datetime'"):
        return token[9:-1]
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token in ("true", "false"):
        return token == "true"
    return float(token)


def matches(record: dict[str, Any], alternatives: list[list[Clause]]) -> bool:
    def equal(value: Any, wanted: Any) -> bool:
        if isinstance(wanted, float) and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) == wanted
        return value == wanted

    return any(all(equal(record.get(c.prop), c.value) == c.equal for c in clauses) for clauses in alternatives)


def keys_only(alternatives: list[list[Clause]]) -> set[str] | None:
    """The keys of a filter that is nothing but ``Ref_Key eq guid'…'`` alternatives, else None."""
    if all(len(c) == 1 and c[0].prop == "Ref_Key" and c[0].equal for c in alternatives):
        return {str(c[0].value) for c in alternatives}
    return None


def check_value(name: str, edm: str, value: Any) -> Any:
    """The value as stored, or ``ODataError`` code 4 when it does not fit the property's type."""
    ok = {
        STRING: isinstance(value, str),
        GUID: isinstance(value, str) and _is_guid(value),
        NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
        BOOLEAN: isinstance(value, bool),
        DATETIME: isinstance(value, str) and bool(_DATETIME.match(value)),
        ROWS: isinstance(value, list) and all(isinstance(row, dict) for row in value),
    }[edm]
    if not ok:
        raise ODataError(400, "4", f"Неверное значение свойства '{name}': {value!r}")
    return value.lower() if edm == GUID else value


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def select(record: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Apply ``$select`` (comma-separated names; ``*`` or nothing = all)."""
    if not fields or fields.strip() in ("*", "**"):
        return dict(record)
    wanted = [name.strip() for name in fields.split(",") if name.strip()]
    return {name: record[name] for name in wanted if name in record}


def wants_json(query: dict[str, list[str]], headers: dict[str, str]) -> bool:
    requested = (query.get("$format") or [""])[0]
    return "json" in requested or "application/json" in headers.get("accept", "")


def entity_body(metadata_url: str, entity: str, record: dict[str, Any]) -> dict[str, Any]:
    """One object as 1C answers a GET by key, POST or PATCH (minimal metadata)."""
    return {"odata.metadata": f"{metadata_url}#{entity}/@Element", **record}


def collection_body(metadata_url: str, entity: str, records: list[dict[str, Any]], count: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"odata.metadata": f"{metadata_url}#{entity}"}
    if count is not None:
        body["odata.count"] = str(count)
    body["value"] = records
    return body
