"""The ``filters`` query parameter of API v3 collections: parse the JSON and test a resource.

``[{"status": {"operator": "o", "values": []}}, {"customField1": {"operator": "=", "values": ["x"]}}]``;
filters are ANDed. Each resource is seen as a flat map of filter names to string values (``None``
when unset); the status filter additionally knows whether the status is closed (``o``/``c``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class FilterError(ValueError):
    """The filters are not valid JSON or name an unknown filter or operator (400 InvalidQuery)."""


@dataclass(frozen=True)
class Filter:
    name: str
    operator: str
    values: tuple[str, ...]


OPERATORS = {"=", "!", "*", "!*", "~", "!~", "o", "c"}


def parse(raw: str, known: set[str]) -> list[Filter]:
    """Parse the ``filters`` parameter; ``known`` are the filter names this collection supports."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise FilterError(f"Filters are not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise FilterError("Filters must be a JSON array.")
    parsed: list[Filter] = []
    for item in data:
        if not isinstance(item, dict) or len(item) != 1:
            raise FilterError("Each filter must be an object with one key.")
        ((name, spec),) = item.items()
        if name not in known:
            raise FilterError(f"Filter {name} does not exist.")
        if not isinstance(spec, dict) or spec.get("operator") not in OPERATORS:
            raise FilterError(f"The operator of filter {name} is not supported.")
        if spec["operator"] in ("o", "c") and name != "status":
            raise FilterError(f"Operator {spec['operator']} only applies to the status filter.")
        values = spec.get("values") or []
        if not isinstance(values, list):
            raise FilterError(f"The values of filter {name} must be an array.")
        parsed.append(Filter(name, spec["operator"], tuple(str(v) for v in values)))
    return parsed


def matches(fields: dict[str, str | None], filters: list[Filter], *, closed: bool = False) -> bool:
    """True when the resource described by ``fields`` passes every filter."""
    return all(_match(fields.get(f.name), f, closed) for f in filters)


def _match(value: str | None, f: Filter, closed: bool) -> bool:
    if f.operator == "o":
        return not closed
    if f.operator == "c":
        return closed
    if f.operator == "*":
        return value is not None
    if f.operator == "!*":
        return value is None
    if f.operator == "=":
        return value in f.values
    if f.operator == "!":
        return value not in f.values
    contained = value is not None and any(v.lower() in value.lower() for v in f.values)
    return contained if f.operator == "~" else not contained
