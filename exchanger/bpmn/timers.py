"""Timer arithmetic as Camunda 7 does it: ISO 8601 durations, dates and cycles, and Quartz cron.

A ``timeCycle`` is either ISO 8601 repeating intervals (``R3/PT10M``, ``R/PT1H``,
``R2/2024-01-15T12:00:00Z/PT1H``) or a Quartz cron expression as Camunda 7 accepts it
(``sec min hour day-of-month month day-of-week [year]``, e.g. ``0/5 0/1 * 1/1 * ?``), evaluated in UTC.
Pure functions: the engine stores a timer's next due time and how many repeats are left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                       r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_REPEAT = re.compile(r"^R(\d*)$")
_MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_DAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
# Quartz fields: (name, lowest, highest, names)
QuartzField = tuple[str, int, int, dict[str, int]]
_FIELDS: tuple[QuartzField, ...] = (
    ("seconds", 0, 59, {}), ("minutes", 0, 59, {}), ("hours", 0, 23, {}), ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day-of-week", 1, 7, _DAYS), ("year", 1970, 2199, {}))
_SEARCH_LIMIT = 500_000  # steps of the next-fire search (a few years at worst)


def parse_duration_ms(text: str) -> int:
    """ISO 8601 duration (``PT5M``, ``P1DT2H``, ``P2W``) in milliseconds (a month = 30 days, a year = 365)."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"Invalid ISO 8601 duration '{text}'")
    years, months, weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total_s = ((years * 365 + months * 30 + weeks * 7 + days) * 86400 + hours * 3600 + minutes * 60 + seconds)
    return int(total_s * 1000)


class Cron:
    """A Quartz cron expression (no ``L``, ``W`` or ``#``: those are refused by name)."""

    def __init__(self, text: str) -> None:
        parts = text.split()
        if len(parts) not in (6, 7):
            raise ValueError(f"Invalid cron expression '{text}': expected 6 or 7 fields, got {len(parts)}")
        self.text = text
        sets = [_cron_field(part, *spec, text) for part, spec in zip(parts, _FIELDS, strict=False)]
        self.seconds, self.minutes, self.hours, self.days, self.months, self.weekdays = sets[:6]
        self.years = sets[6] if len(parts) == 7 else None
        day_of_month, day_of_week = parts[3], parts[5]
        if (day_of_month == "?") == (day_of_week == "?"):
            raise ValueError(f"Invalid cron expression '{text}': exactly one of day-of-month and day-of-week "
                             "must be '?'")
        self.by_weekday = day_of_month == "?"

    def _day_matches(self, moment: datetime) -> bool:
        if self.by_weekday:
            return (moment.isoweekday() % 7) + 1 in self.weekdays  # Quartz: 1 = Sunday
        return moment.day in self.days

    def next_after(self, after_ms: int) -> int:
        """The first fire time strictly after ``after_ms``."""
        moment = datetime.fromtimestamp(after_ms // 1000 + 1, UTC)
        for _ in range(_SEARCH_LIMIT):
            if self.years is not None and moment.year not in self.years:
                if moment.year > max(self.years):
                    break
                moment = datetime(moment.year + 1, 1, 1, tzinfo=UTC)
            elif moment.month not in self.months:
                moment = _next_month(moment)
            elif not self._day_matches(moment):
                moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
            elif moment.hour not in self.hours:
                moment = moment.replace(minute=0, second=0) + timedelta(hours=1)
            elif moment.minute not in self.minutes:
                moment = moment.replace(second=0) + timedelta(minutes=1)
            elif moment.second not in self.seconds:
                moment += timedelta(seconds=1)
            else:
                return int(moment.timestamp() * 1000)
        raise ValueError(f"Cron expression '{self.text}' never fires after {after_ms}")


def _next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _cron_value(token: str, names: dict[str, int], text: str) -> int:
    token = token.upper()
    if token in names:
        return names[token]
    if not token.isdigit():
        raise ValueError(f"Invalid cron expression '{text}': unsupported value '{token}' (L, W and # are not "
                         "supported)")
    return int(token)


def _cron_field(part: str, name: str, low: int, high: int, names: dict[str, int], text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if not step_text.isdigit() and step_text:
            raise ValueError(f"Invalid cron expression '{text}': bad step in '{item}'")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _cron_value(first, names, text), _cron_value(last, names, text)
        else:
            start = _cron_value(base, names, text)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"Invalid cron expression '{text}': {name} value out of range in '{item}'")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cycle:
    """A parsed ``timeCycle``: ``repeats`` None = forever."""

    repeats: int | None
    period_ms: int = 0
    start_ms: int | None = None
    cron: Cron | None = None

    def first_due(self, now_ms: int) -> int:
        if self.cron is not None:
            return self.cron.next_after(now_ms)
        if self.start_ms is not None:
            return self.start_ms
        return now_ms + self.period_ms

    def next_due(self, due_ms: int, now_ms: int) -> int:
        """The firing after the one due at ``due_ms``: an interval counts from that due time; a cron
        expression from now, so a sandbox that was down does not fire every missed slot."""
        if self.cron is not None:
            return self.cron.next_after(max(due_ms, now_ms))
        return due_ms + self.period_ms


def parse_cycle(text: str) -> Cycle:
    """``R[n]/[start/]duration`` or a cron expression; raises ``ValueError`` naming the problem."""
    text = text.strip()
    if not text.startswith("R"):
        return Cycle(repeats=None, cron=Cron(text))
    parts = text.split("/")
    match = _REPEAT.match(parts[0])
    if match is None or len(parts) not in (2, 3):
        raise ValueError(f"Invalid time cycle '{text}'")
    repeats = int(match.group(1)) if match.group(1) else None
    start = parse_date_iso(parts[1]) if len(parts) == 3 else None
    period = parse_duration_ms(parts[-1])
    if period <= 0:
        raise ValueError(f"Invalid time cycle '{text}': the period must be positive")
    return Cycle(repeats=repeats, period_ms=period, start_ms=start)


def check(kind: str, text: str) -> None:
    """Raise ``ValueError`` if a literal timer value cannot be used (checked at deployment)."""
    if kind == "duration":
        parse_duration_ms(text)
    elif kind == "date":
        parse_date_iso(text)
    else:
        parse_cycle(text)


def first_due(kind: str, text: str, now_ms: int) -> tuple[int, str | None, int | None]:
    """When a timer armed now first fires, with the cycle text to re-arm it and the repeats left after
    that first firing (None = forever) — ``(due, None, None)`` for a one-shot timer."""
    if kind == "duration":
        return now_ms + parse_duration_ms(text), None, None
    if kind == "date":
        return parse_date_iso(text), None, None
    cycle = parse_cycle(text)
    remaining = None if cycle.repeats is None else cycle.repeats - 1
    return cycle.first_due(now_ms), text, remaining


def local_zone() -> timezone:
    """The server's time zone (Camunda formats dates in it)."""
    offset = datetime.now().astimezone().utcoffset()
    return timezone(offset) if offset is not None else UTC


def parse_date_iso(text: str) -> int:
    """An ISO 8601 date-time (a timer's ``timeDate``); no offset means the server's zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"Invalid ISO 8601 date '{text}'") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_zone())
    return int(moment.timestamp() * 1000)
