"""HAL+JSON representations of the fake OpenProject's resources and its error bodies.

Shapes follow OpenProject's API v3 documentation: ``_type``, ``_links`` (only ``href`` matters to
clients, ``{"href": null}`` for an unset link) and ``_embedded`` in full representation.
"""

from __future__ import annotations

import html
from typing import Any

from exchanger_sandbox.http import Response, json_response
from exchanger_sandbox.openproject.state import Named, OpenProjectState, Project, Status, WorkPackage

API = "/api/v3"
HAL_JSON = "application/hal+json"
ERROR_URN = "urn:openproject-org:api:v3:errors:"


def error(status: int, identifier: str, message: str, attribute: str | None = None) -> Response:
    """An API v3 error body, e.g. ``error(409, "UpdateConflict", "...")``."""
    body: dict[str, Any] = {"_type": "Error", "errorIdentifier": ERROR_URN + identifier, "message": message}
    if attribute:
        body["_embedded"] = {"details": {"attribute": attribute}}
    return json_response(status, body, HAL_JSON)


def hal(status: int, payload: dict[str, Any]) -> Response:
    return json_response(status, payload, HAL_JSON)


def link(collection: str, item_id: int | None, title: str | None = None) -> dict[str, Any]:
    if item_id is None:
        return {"href": None}
    result: dict[str, Any] = {"href": f"{API}/{collection}/{item_id}"}
    if title is not None:
        result["title"] = title
    return result


def _user_link(item: Named | None) -> dict[str, Any]:
    return link("users", item.id, item.name) if item else {"href": None}


def formattable(raw: str) -> dict[str, str]:
    rendered = "".join(f"<p>{html.escape(line)}</p>" for line in raw.splitlines() if line.strip())
    return {"format": "markdown", "raw": raw, "html": rendered}


def collection(elements: list[dict[str, Any]], self_href: str, **paging: Any) -> dict[str, Any]:
    """A Collection; ``paging`` adds ``total``/``pageSize``/``offset`` for paginated lists."""
    body: dict[str, Any] = {"_type": "Collection", "total": len(elements), "count": len(elements)}
    body.update(paging)
    body["_embedded"] = {"elements": elements}
    body["_links"] = {"self": {"href": self_href}}
    return body


def status(item: Status) -> dict[str, Any]:
    return {
        "_type": "Status",
        "id": item.id,
        "name": item.name,
        "isClosed": item.is_closed,
        "color": item.color,
        "isDefault": item.is_default,
        "isReadonly": item.is_readonly,
        "excludedFromTotals": False,
        "defaultDoneRatio": item.default_done_ratio,
        "position": item.id,
        "_links": {"self": link("statuses", item.id, item.name)},
    }


def type_(item: Named) -> dict[str, Any]:
    return {
        "_type": "Type",
        "id": item.id,
        "name": item.name,
        "color": "#1A67A3",
        "position": item.id,
        "isDefault": item.is_default,
        "isMilestone": item.name == "Milestone",
        "_links": {"self": link("types", item.id, item.name)},
    }


def priority(item: Named) -> dict[str, Any]:
    return {
        "_type": "Priority",
        "id": item.id,
        "name": item.name,
        "position": item.id,
        "isDefault": item.is_default,
        "isActive": True,
        "_links": {"self": link("priorities", item.id, item.name)},
    }


def user(item: Named) -> dict[str, Any]:
    first, _, last = item.name.partition(" ")
    return {
        "_type": "User",
        "id": item.id,
        "name": item.name,
        "login": item.login,
        "firstName": first,
        "lastName": last,
        "status": "active",
        "_links": {"self": link("users", item.id, item.name)},
    }


def project(item: Project) -> dict[str, Any]:
    return {
        "_type": "Project",
        "id": item.id,
        "identifier": item.identifier,
        "name": item.name,
        "active": True,
        "public": False,
        "_links": {
            "self": link("projects", item.id, item.name),
            "workPackages": {"href": f"{API}/projects/{item.id}/work_packages"},
            "types": {"href": f"{API}/projects/{item.id}/types"},
        },
    }


def schema(state: OpenProjectState, project_id: int, type_id: int) -> dict[str, Any]:
    """A trimmed work package schema: enough to discover the custom fields by name."""
    fields: dict[str, Any] = {
        "subject": {"type": "String", "name": "Subject", "required": True, "writable": True},
        "dueDate": {"type": "Date", "name": "Finish date", "required": False, "writable": True},
    }
    for field in state.custom_fields.values():
        fields[field.key] = {"type": "String", "name": field.name, "required": field.required, "writable": True}
    return {
        "_type": "Schema",
        **fields,
        "_links": {"self": {"href": f"{API}/work_packages/schemas/{project_id}-{type_id}"}},
    }


def work_package(state: OpenProjectState, wp: WorkPackage) -> dict[str, Any]:
    """The full WorkPackage representation, embedded status (with ``isClosed``) included."""
    proj = state.projects[wp.project_id]
    kind = state.types[wp.type_id]
    stat = state.statuses[wp.status_id]
    prio = state.priorities[wp.priority_id]
    author = state.users[wp.author_id]
    assignee = state.users.get(wp.assignee_id) if wp.assignee_id else None
    responsible = state.users.get(wp.responsible_id) if wp.responsible_id else None
    parent = state.work_packages.get(wp.parent_id) if wp.parent_id else None
    self_href = f"{API}/work_packages/{wp.id}"
    embedded: dict[str, Any] = {
        "project": project(proj),
        "type": type_(kind),
        "status": status(stat),
        "priority": priority(prio),
        "author": user(author),
    }
    if assignee:
        embedded["assignee"] = user(assignee)
    if responsible:
        embedded["responsible"] = user(responsible)
    body: dict[str, Any] = {
        "_type": "WorkPackage",
        "id": wp.id,
        "lockVersion": wp.lock_version,
        "subject": wp.subject,
        "description": formattable(wp.description),
        "scheduleManually": False,
        "startDate": wp.start_date,
        "dueDate": wp.due_date,
        "derivedStartDate": None,
        "derivedDueDate": None,
        "estimatedTime": None,
        "derivedEstimatedTime": None,
        "percentageDone": wp.percentage_done,
        "derivedPercentageDone": None,
        "readonly": stat.is_readonly,
        "createdAt": wp.created_at,
        "updatedAt": wp.updated_at,
    }
    for key in state.custom_fields:
        body[key] = wp.custom_values.get(key)
    body["_embedded"] = embedded
    body["_links"] = {
        "self": {"href": self_href, "title": wp.subject},
        "update": {"href": self_href, "method": "patch"},
        "delete": {"href": self_href, "method": "delete"},
        "schema": {"href": f"{API}/work_packages/schemas/{wp.project_id}-{wp.type_id}"},
        "activities": {"href": f"{self_href}/activities"},
        "addComment": {"href": f"{self_href}/activities", "method": "post"},
        "project": link("projects", proj.id, proj.name),
        "type": link("types", kind.id, kind.name),
        "status": link("statuses", stat.id, stat.name),
        "priority": link("priorities", prio.id, prio.name),
        "author": link("users", author.id, author.name),
        "assignee": _user_link(assignee),
        "responsible": _user_link(responsible),
        "parent": link("work_packages", parent.id, parent.subject) if parent else {"href": None},
    }
    return body
