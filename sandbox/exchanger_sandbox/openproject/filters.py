"""The ``filters`` query parameter of API v3 collections: parse the JSON and test a resource.

``[{"status": {"operator": "o", "values": []}}, {"customField1": {"operator": "=", "values": ["x"]}}]``;
filters are ANDed. Each resource is seen as a flat map of filter names to string values (``None``
when unset); the status filter additionally knows whether the status is closed (``o``/``c``).

Date-time filters (``updatedAt``, ``createdAt``) take the date operators of API v3 ("Filters" in the
API docs): ``<>d`` between two ISO 8601 dates or date-times, inclusive, either end blank for "open"
(OpenProject's ``BetweenDateTime``: ``DateTime.parse`` of each non-blank value, ``>=`` and ``<=``),
``=d`` on a date, ``t`` today, ``t-`` N days ago, ``>t-`` less than N days ago, ``<t-`` more than N
days ago. Days are UTC days here (OpenProject uses the API user's time zone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta


class FilterError(ValueError):
    """The filters are not valid JSON or name an unknown filter or operator (400 InvalidQuery)."""


@dataclass(frozen=True)
class Filter:
    name: str
    operator: str
    values: tuple[str, ...]
    bounds: tuple[datetime | None, datetime | None] = (None, None)  # of a date operator, parsed once
    members: frozenset[str] = field(default=frozenset())  # the values as a set: `=` over many ids


OPERATORS = {"=", "!", "*", "!*", "~", "!~", "o", "c"}
DATE_OPERATORS = {"<>d", "=d", "t", "t-", ">t-", "<t-"}


def parse(raw: str, known: set[str], dates: frozenset[str] = frozenset()) -> list[Filter]:
    """Parse the ``filters`` parameter; ``known`` are the filter names this collection supports,
    ``dates`` those of them that are date-times (they take :data:`DATE_OPERATORS` only)."""
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
        if name not in known and name not in dates:
            raise FilterError(f"Filter {name} does not exist.")
        allowed = DATE_OPERATORS if name in dates else OPERATORS
        if not isinstance(spec, dict) or spec.get("operator") not in allowed:
            raise FilterError(f"The operator of filter {name} is not supported.")
        if spec["operator"] in ("o", "c") and name != "status":
            raise FilterError(f"Operator {spec['operator']} only applies to the status filter.")
        values = spec.get("values") or []
        if not isinstance(values, list):
            raise FilterError(f"The values of filter {name} must be an array.")
        strings = tuple(str(v) for v in values)
        bounds = _date_bounds(name, spec["operator"], strings) if name in dates else (None, None)
        parsed.append(Filter(name, spec["operator"], strings, bounds, frozenset(strings)))
    return parsed


def _date_bounds(name: str, operator: str, values: tuple[str, ...]) -> tuple[datetime | None, datetime | None]:
    """The inclusive ``[from, to]`` a date operator means (None: open end); ``FilterError`` if invalid."""
    expected = {"<>d": 2, "=d": 1, "t": 0}.get(operator, 1)
    if len(values) != expected:
        raise FilterError(f"{name} ({operator}) takes {expected} value(s).")
    today = datetime.combine(datetime.now(UTC).date(), time(), UTC)
    day = timedelta(days=1)
    if operator == "<>d":
        lower, upper = (_moment(name, v) if v.strip() else None for v in values)
        if lower is None and upper is None:
            raise FilterError(f"{name} (<>d) needs at least one date.")
        return lower, upper
    if operator == "=d":
        start = datetime.combine(_moment(name, values[0]).date(), time(), UTC)
        return start, start + day - timedelta(microseconds=1)
    if operator == "t":
        return today, today + day - timedelta(microseconds=1)
    try:
        days = int(values[0])
    except ValueError:
        raise FilterError(f"{name} ({operator}) takes a number of days.") from None
    start = today - days * day
    if operator == "t-":
        return start, start + day - timedelta(microseconds=1)
    if operator == ">t-":  # less than N days ago: from that day's start until now
        return start, None
    return None, start - timedelta(microseconds=1)  # <t-: more than N days ago


def _moment(name: str, value: str) -> datetime:
    """An ISO 8601 date (midnight UTC, as ``DateTime.parse`` reads it) or date-time (UTC if no zone)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(value.strip()), time())
        except ValueError:
            raise FilterError(f"{name}: {value!r} is not an ISO 8601 date or date-time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def matches(fields: dict[str, str | None], filters: list[Filter], *, closed: bool = False) -> bool:
    """True when the resource described by ``fields`` passes every filter."""
    return all(_match(fields.get(f.name), f, closed) for f in filters)


def _match(value: str | None, f: Filter, closed: bool) -> bool:
    if f.operator in DATE_OPERATORS:
        if value is None:
            return False
        moment = datetime.fromisoformat(value)
        lower, upper = f.bounds
        return (lower is None or moment >= lower) and (upper is None or moment <= upper)
    if f.operator == "o":
        return not closed
    if f.operator == "c":
        return closed
    if f.operator == "*":
        return value is not None
    if f.operator == "!*":
        return value is None
    if f.operator == "=":
        return value in f.members
    if f.operator == "!":
        return value not in f.members
    contained = value is not None and any(v.lower() in value.lower() for v in f.values)
    return contained if f.operator == "~" else not contained
