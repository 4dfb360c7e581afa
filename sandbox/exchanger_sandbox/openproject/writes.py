"""Validation and application of a work package body (POST create and PATCH update).

Mirrors the API's rules that clients run into: only writable properties, ``_links`` addressed by
``href``, a non-blank subject, and the 422 identifiers OpenProject uses for each kind of mistake.
Unknown properties are ignored, as OpenProject's representer ignores them.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from exchanger_sandbox.http import Response
from exchanger_sandbox.openproject import hal
from exchanger_sandbox.openproject.state import OpenProjectState, WorkPackage

READ_ONLY = {
    "id", "createdAt", "updatedAt", "derivedStartDate", "derivedDueDate", "derivedEstimatedTime",
    "derivedPercentageDone", "readonly",
}
# link name → (collection in the href, attribute of WorkPackage, may be unset)
LINKS = {
    "project": ("projects", "project_id", False),
    "type": ("types", "type_id", False),
    "status": ("statuses", "status_id", False),
    "priority": ("priorities", "priority_id", False),
    "assignee": ("users", "assignee_id", True),
    "responsible": ("users", "responsible_id", True),
    "parent": ("work_packages", "parent_id", True),
}
_HREF = re.compile(r"^(?:https?://[^/]+)?/api/v3/(?P<collection>\w+)/(?P<id>\d+)$")


def apply_body(state: OpenProjectState, wp: WorkPackage, body: Any) -> Response | None:
    """Apply ``body`` to ``wp`` in place; return the error response instead when it is invalid.

    The caller works on a copy, so a rejected body leaves the stored work package unchanged.
    """
    if not isinstance(body, dict):
        return hal.error(400, "InvalidRequestBody", "The request body was not a single JSON object.")
    for key in body:
        if key in READ_ONLY:
            return hal.error(422, "PropertyIsReadOnly", f"{key} was attempted to be written but is not writable.", key)
    if "subject" in body:
        if not isinstance(body["subject"], str) or not body["subject"].strip():
            return hal.error(422, "PropertyConstraintViolation", "Subject can't be blank.", "subject")
        wp.subject = body["subject"]
    if "description" in body:
        description = body["description"]
        if description is not None and not (isinstance(description, dict) and isinstance(description.get("raw"), str)):
            message = "description must be an object with a raw text."
            return hal.error(422, "PropertyFormatError", message, "description")
        wp.description = description["raw"] if description else ""
    for key, attribute in (("startDate", "start_date"), ("dueDate", "due_date")):
        if key in body:
            if body[key] is not None and not _is_date(body[key]):
                return hal.error(422, "PropertyFormatError", f"{key} is not a valid date (YYYY-MM-DD).", key)
            setattr(wp, attribute, body[key])
    if "percentageDone" in body:
        value = body["percentageDone"]
        if value is not None and not (isinstance(value, int) and 0 <= value <= 100):
            message = "% Complete must be between 0 and 100."
            return hal.error(422, "PropertyConstraintViolation", message, "percentageDone")
        wp.percentage_done = value
    for key in state.custom_fields:
        if key in body:
            value = body[key]
            wp.custom_values[key] = None if value is None else str(value)
    return _apply_links(state, wp, body.get("_links") or {})


def _apply_links(state: OpenProjectState, wp: WorkPackage, links: Any) -> Response | None:
    if not isinstance(links, dict):
        return hal.error(400, "InvalidRequestBody", "_links must be an object.")
    for name, (collection, attribute, optional) in LINKS.items():
        if name not in links:
            continue
        href = (links[name] or {}).get("href") if isinstance(links[name], dict) else None
        label = name.capitalize()
        if href is None:
            if not optional:
                return hal.error(422, "PropertyConstraintViolation", f"{label} can't be blank.", name)
            setattr(wp, attribute, None)
            continue
        match = _HREF.match(str(href))
        if match is None or match["collection"] != collection:
            message = f"For property '{name}' a link like '/api/v3/{collection}/:id' is expected, got '{href}'."
            return hal.error(422, "ResourceTypeMismatch", message, name)
        item_id = int(match["id"])
        if not _exists(state, collection, item_id) or (name == "parent" and item_id == wp.id):
            return hal.error(422, "PropertyConstraintViolation", f"{label} is invalid.", name)
        setattr(wp, attribute, item_id)
    return None


def _exists(state: OpenProjectState, collection: str, item_id: int) -> bool:
    if collection == "projects":
        project = state.projects.get(item_id)
        return project is not None and project.visible
    table: dict[int, Any] = {  # type: ignore[assignment]  # the collections' item types differ
        "types": state.types,
        "statuses": state.statuses,
        "priorities": state.priorities,
        "users": state.users,
        "work_packages": state.work_packages,
    }[collection]
    return item_id in table


def _is_date(value: Any) -> bool:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return False
    return len(str(value)) == 10
