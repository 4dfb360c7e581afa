"""The fake OpenProject's data: reference data as on a fresh instance, plus the work packages.

Ids of statuses and priorities are those of OpenProject's default seed data, so that payloads
written against the fake look like payloads written against a real instance.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

API_KEY = "opapi-sandbox-0f3c9a7e5b1d"  # the one valid token of the fake (Basic apikey:<token>)
EXTERNAL_ID_FIELD = "customField1"  # the string custom field holding the Camunda task id
DEFAULT_PROJECT = "exchanger"  # identifier of the project daemons create work packages in


@dataclass
class Status:
    id: int
    name: str
    is_closed: bool = False
    is_default: bool = False
    is_readonly: bool = False
    default_done_ratio: int = 0
    color: str = "#1A67A3"


@dataclass
class Named:
    """A type, priority or user: all the fake needs of them is an id and a name."""

    id: int
    name: str
    login: str = ""
    is_default: bool = False


@dataclass
class Project:
    id: int
    identifier: str
    name: str
    visible: bool = True  # False: the API user is no member (404, as OpenProject hides it)
    can_add_work_packages: bool = True  # False: member without the permission (403)


@dataclass
class CustomField:
    key: str  # customFieldN
    name: str
    required: bool = False


@dataclass
class WorkPackage:
    id: int
    project_id: int
    type_id: int
    status_id: int
    priority_id: int
    author_id: int
    subject: str
    description: str = ""
    start_date: str | None = None
    due_date: str | None = None
    assignee_id: int | None = None
    responsible_id: int | None = None
    parent_id: int | None = None
    percentage_done: int | None = None
    lock_version: int = 0
    custom_values: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    comments: list[dict[str, Any]] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class OpenProjectState:
    """Everything the fake knows; every access goes through ``lock`` (the server is threaded)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.statuses = {
                s.id: s
                for s in [
                    Status(1, "New", is_default=True),
                    Status(2, "In progress", default_done_ratio=50),
                    Status(3, "Resolved", default_done_ratio=90),
                    Status(4, "Feedback"),
                    Status(5, "Closed", is_closed=True, default_done_ratio=100),
                    Status(6, "Rejected", is_closed=True, is_readonly=True),
                ]
            }
            self.types = {t.id: t for t in [Named(1, "Task", is_default=True), Named(2, "Milestone"), Named(3, "Bug")]}
            self.priorities = {
                p.id: p
                for p in [
                    Named(7, "Low"), Named(8, "Normal", is_default=True), Named(9, "High"), Named(10, "Immediate"),
                ]
            }
            self.users = {
                u.id: u
                for u in [
                    Named(4, "Exchanger Bot", login="exchanger"),
                    Named(5, "Anna Petrova", login="apetrova"),
                    Named(6, "Ivan Sidorov", login="isidorov"),
                ]
            }
            self.api_user_id = 4
            self.projects = {
                p.id: p
                for p in [
                    Project(1, DEFAULT_PROJECT, "Exchanger processes"),
                    Project(2, "finance", "Finance"),
                    Project(3, "secret", "Board only", visible=False),
                    Project(4, "archive", "Archive", can_add_work_packages=False),
                    Project(5, "onboarding", "Employee onboarding"),
                ]
            }
            self.custom_fields = {
                c.key: c
                for c in [CustomField(EXTERNAL_ID_FIELD, "External task ID"), CustomField("customField2", "Department")]
            }
            self.work_packages: dict[int, WorkPackage] = {}
            self.next_id = 1

    def project(self, key: str) -> Project | None:
        """A visible project by numeric id or identifier, as the API accepts either."""
        for project in self.projects.values():
            if project.visible and (str(project.id) == key or project.identifier == key):
                return project
        return None

    def default(self, table: dict[int, Any]) -> Any:
        return next(item for item in table.values() if item.is_default)

    def stats(self) -> dict[str, Any]:
        """Work packages per external task id, so that tests can count duplicates."""
        with self.lock:
            per_external_id: dict[str, int] = {}
            for wp in self.work_packages.values():
                value = wp.custom_values.get(EXTERNAL_ID_FIELD)
                if value:
                    per_external_id[str(value)] = per_external_id.get(str(value), 0) + 1
            return {
                "work_packages": len(self.work_packages),
                "by_external_id": per_external_id,
                "duplicates": {key: count for key, count in per_external_id.items() if count > 1},
            }
