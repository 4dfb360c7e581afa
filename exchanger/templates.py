"""``${variable}`` templates and the variables block, shared by every system that writes text.

Titles, subjects, descriptions, 1C field values and notifications are all written by process
designers as extension properties like ``Approve the onboarding of ${employeeName}``. A placeholder
whose variable does not exist is left as written, so a person sees what is missing instead of a blank.
Dotted names reach into Json variables (``${order.customer.name}``).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from exchanger.contracts import TaskMessage
from exchanger.variables import format_date

_PLACEHOLDER = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")
_MISSING = object()


def lookup(values: dict[str, Any], name: str) -> Any:
    """``values[name]``, following dots into nested dicts; ``_MISSING`` when absent."""
    current: Any = values
    for part in name.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return format_date(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render(template: str, values: dict[str, Any]) -> str:
    """Replace every ``${name}`` with its value as text; unknown names stay as written."""

    def replace(match: re.Match[str]) -> str:
        value = lookup(values, match.group(1))
        return match.group(0) if value is _MISSING else as_text(value)

    return _PLACEHOLDER.sub(replace, template)


def render_value(template: str, values: dict[str, Any]) -> Any:
    """Like :func:`render`, but a template that is exactly one placeholder keeps the value's type
    (``${amount}`` → ``1500.0``, not ``"1500.0"``), which typed targets such as 1C attributes need."""
    match = _PLACEHOLDER.fullmatch(template.strip())
    if match:
        value = lookup(values, match.group(1))
        return template if value is _MISSING else value
    return render(template, values)


def variables_block(task: TaskMessage, names: str | None) -> str:
    """``name: value`` lines for the comma-separated process variables ``names`` (absent ones skipped)."""
    values = task.values()
    lines = []
    for name in (n.strip() for n in (names or "").split(",")):
        if name and lookup(values, name) is not _MISSING:
            lines.append(f"{name}: {as_text(lookup(values, name))}")
    return "\n".join(lines)


def description(task: TaskMessage, variable_names: str | None = None) -> str:
    """The activity documentation followed by the chosen variables: what a person needs to do the work."""
    documentation = render(task.bpmn_metadata.documentation or "", task.values())
    block = variables_block(task, variable_names)
    return "\n\n".join(part for part in (documentation, block) if part)
