"""OpenProject handler: one work package per Camunda task (``op_create_task``), or a change to one
(``op_update_task``).

The activity's extension properties say what to create; a process variable of the same name is the
fallback (the property wins), and every property is a ``${variable}`` template:

* ``project`` — id or identifier (then ``OPENPROJECT_DEFAULT_PROJECT``);
* ``subject`` — default the activity name;
* ``type``, ``priority`` — by name; the project's default type when none is named;
* ``assignee`` — login or full name;
* ``dueDate`` (ISO date) or ``dueAfter`` (ISO duration from today, e.g. ``P3D``);
* ``descriptionVariables`` — comma list of variables shown under the activity's documentation;
* ``customFieldN`` — passed through as the work package's custom field (``${x}`` keeps its type).

The external-id custom field (``OPENPROJECT_EXTERNAL_ID_FIELD``) holds the Camunda task id: API v3
has no idempotency key, so every delivery first searches by it (closed work packages included), and a
create that failed ambiguously (timeout) is simply retried through that search. Without the field
enabled for the project and type that search could never find anything, so it is checked through the
schema endpoint, at start for the default project and before the first create in any other.

**op_update_task** changes an existing work package: property ``workPackageId`` (a template), else
variable ``op_work_package_id`` (which the tracker sets when an ``op_create_task`` finishes). It
writes only what the activity's *properties* give — ``subject``, ``status`` (by name), ``priority``,
``assignee``, ``dueDate``/``dueAfter``, ``customFieldN`` — under optimistic locking (the same change
twice does no harm, so a retry is safe), and completes at once with ``op_work_package_id``,
``op_status``, ``op_url`` and ``op_percentage_done``. A work package that no longer exists is the BPMN
error ``OPENPROJECT_DELETED_ERROR_CODE``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from loguru import logger

from exchanger.contracts import ExternalItem, TaskMessage
from exchanger.creator.base import Done, HandlerOutcome
from exchanger.creator.retry_policy import parse_duration_ms
from exchanger.creator.tracked import TrackedHandler
from exchanger.errors import ConfigError, Incident, NotFound, PermanentError, TransientError
from exchanger.systems.openproject import SYSTEM as SPEC
from exchanger.systems.openproject.client import SYSTEM, OpenProjectClient, link
from exchanger.systems.openproject.settings import OpenProjectSettings
from exchanger.templates import description, render, render_value

CREATE_TOPIC, UPDATE_TOPIC = "op_create_task", "op_update_task"
SUBJECT_MAX = 255  # OpenProject refuses longer subjects (422)
_CUSTOM_FIELD = re.compile(r"^customField\d+$")


def work_package_item(client: OpenProjectClient, wp: dict[str, Any]) -> ExternalItem:
    """The sent item of a work package, whether just created or found again."""
    return ExternalItem(system=SYSTEM, id=str(wp["id"]), url=client.work_package_url(wp["id"]),
                        data={"subject": wp.get("subject", "")})


class OpenProjectTaskHandler(TrackedHandler[OpenProjectSettings, OpenProjectClient]):
    spec = SPEC
    settings_class = OpenProjectSettings
    client_factory = OpenProjectClient

    def setup(self) -> None:
        self._checked: set[tuple[int, int]] = set()  # (project, type) schemas known to have the field
        self._check_default_project()

    # --- the external-id field ------------------------------------------------------------------

    def _check_default_project(self) -> None:
        """Fail the start when the external-id field is missing where most tasks go."""
        project = self.settings.default_project
        if not project:
            return
        try:
            found = self.client.project(project)
            self._check_external_id_field(found, self._default_type(found))
        except NotFound:
            raise ConfigError(f"OPENPROJECT_DEFAULT_PROJECT={project}: OpenProject has no such project, or the "
                              f"API user cannot see it") from None
        except Incident as exc:
            raise ConfigError(exc.message) from None
        except TransientError as exc:
            logger.warning("OpenProject unreachable at start ({}); the external-id field is checked before the "
                           "first create instead", exc)

    def _check_external_id_field(self, project: dict[str, Any], kind: dict[str, Any]) -> None:
        """Raise an Incident naming the setting when the field does not exist for this project and type."""
        key = (int(project["id"]), int(kind["id"]))
        if key in self._checked:  # a race only repeats a read
            return
        field = self.settings.external_id_field
        if field not in self.client.work_package_schema(*key):
            raise Incident(
                f"OPENPROJECT_EXTERNAL_ID_FIELD={field}: work packages of type {kind.get('name')!r} in project "
                f"{project.get('identifier')!r} have no such custom field; create a string custom field for the "
                f"Camunda task id, enable it for this type and project, and set its customFieldN here (without "
                f"it a redelivered task would create a second work package)")
        self._checked.add(key)

    def _default_type(self, project: dict[str, Any]) -> dict[str, Any]:
        types = self.client.project_types(project["id"])
        if not types:
            raise Incident(f"OpenProject project {project.get('identifier')!r} has no work package types enabled")
        return next((t for t in types if t.get("isDefault")), types[0])

    # --- the contract -----------------------------------------------------------------------------

    def find_existing(self, task: TaskMessage) -> ExternalItem | None:
        if task.topic_name != CREATE_TOPIC:
            return None  # an update creates nothing to find again
        field = self.settings.external_id_field
        try:
            wp = self.client.find_work_package_by_custom_field(field, task.task_id)
        except PermanentError as exc:
            if exc.code != "InvalidQuery":
                raise
            raise Incident(f"OPENPROJECT_EXTERNAL_ID_FIELD={field}: OpenProject cannot search work packages by it "
                           f"({exc.message}); set it to the customFieldN holding the Camunda task id") from None
        return work_package_item(self.client, wp) if wp else None

    def create(self, task: TaskMessage) -> HandlerOutcome:
        if task.topic_name == UPDATE_TOPIC:
            return self._update(task)
        project = self._project(task)
        kind = self._type(task, project)
        self._check_external_id_field(project, kind)
        wp = self.client.create_work_package(project["id"], self._payload(task, kind))
        logger.info("OpenProject: task {} → work package {} in {}", task.task_id, wp["id"], project.get("identifier"))
        return work_package_item(self.client, wp)

    def _update(self, task: TaskMessage) -> HandlerOutcome:
        wp_id = self._update_target(task)
        changes = self._changes(task)
        try:
            wp = self.client.update_work_package(wp_id, changes) if changes else self.client.get_work_package(wp_id)
        except NotFound:
            return self.deleted(f"OpenProject work package {wp_id} to update does not exist (deleted?)",
                                {"op_work_package_id": wp_id})
        logger.info("OpenProject: work package {} updated for task {}: {}", wp_id, task.task_id,
                    ", ".join([k for k in changes if k != "_links"] + list(changes.get("_links", {}))))
        status = (wp.get("_embedded") or {}).get("status") or {}
        return Done(variables={"op_work_package_id": wp_id, "op_status": status.get("name"),
                               "op_url": self.client.work_package_url(wp_id),
                               "op_percentage_done": wp.get("percentageDone")})

    def _update_target(self, task: TaskMessage) -> int:
        prop = task.prop("workPackageId")
        given = render(prop, task.values()).strip() if prop is not None else task.value("op_work_package_id")
        if given is None or given == "":
            raise Incident("op_update_task needs its work package: property workPackageId or variable "
                           "op_work_package_id")
        try:
            return int(str(given).strip())
        except ValueError:
            raise Incident(f"workPackageId {given!r} is not a work package id (a number)") from None

    def _changes(self, task: TaskMessage) -> dict[str, Any]:
        """The PATCH body of an update: only what the activity's properties give."""
        values = task.values()

        def given(name: str) -> str:
            prop = task.prop(name)
            return render(prop, values).strip() if prop is not None else ""

        changes: dict[str, Any] = {}
        if subject := given("subject"):
            changes["subject"] = subject[:SUBJECT_MAX]
        links: dict[str, Any] = {}
        if status := given("status"):
            links["status"] = link("statuses", self.client.status_by_name(status)["id"])
        links.update(self._people_links(given))
        if task.prop("dueDate") is not None or task.prop("dueAfter") is not None:
            changes["dueDate"] = self._due_date(task)
        changes.update(self._custom_fields(task))
        if links:
            changes["_links"] = links
        return changes

    def _people_links(self, param: Callable[[str], str]) -> dict[str, Any]:
        """``priority`` and ``assignee`` links, from ``param(name)`` (create: property or variable)."""
        links = {}
        if priority := param("priority"):
            links["priority"] = link("priorities", self.client.priority_by_name(priority)["id"])
        if assignee := param("assignee"):
            links["assignee"] = link("users", self.client.user_by_name(assignee)["id"])
        return links

    def _custom_fields(self, task: TaskMessage) -> dict[str, Any]:
        """Every ``customFieldN`` property, rendered (``${x}`` keeps its type); never the external-id field."""
        fields = {}
        for name, template in task.bpmn_metadata.extension_properties.items():
            if _CUSTOM_FIELD.match(name):
                if name == self.settings.external_id_field:
                    raise Incident(f"property {name} is the external-id field (OPENPROJECT_EXTERNAL_ID_FIELD); "
                                   f"Exchanger fills it with the task id, remove the property")
                fields[name] = render_value(template, task.values())
        return fields

    # --- what to create ---------------------------------------------------------------------------

    def _param(self, task: TaskMessage, name: str) -> str:
        """The property ``name`` rendered as a template, else the variable ``name`` as text, else ''."""
        prop = task.prop(name)
        if prop is not None:
            return render(prop, task.values()).strip()
        value = task.value(name)
        return "" if value is None else str(value).strip()

    def _project(self, task: TaskMessage) -> dict[str, Any]:
        identifier = self._param(task, "project") or self.settings.default_project
        if not identifier:
            raise Incident("no OpenProject project for this task: set the extension property or process variable "
                           "'project', or OPENPROJECT_DEFAULT_PROJECT")
        try:
            return self.client.project(identifier)
        except NotFound:
            raise Incident(f"OpenProject has no project {identifier!r}, or the API user cannot see it "
                           f"(property or variable 'project')") from None

    def _type(self, task: TaskMessage, project: dict[str, Any]) -> dict[str, Any]:
        name = self._param(task, "type")
        return self.client.type_by_name(name) if name else self._default_type(project)

    def _payload(self, task: TaskMessage, kind: dict[str, Any]) -> dict[str, Any]:
        subject = self._param(task, "subject") or task.bpmn_metadata.activity_name or f"Camunda task {task.activity_id}"
        payload: dict[str, Any] = {
            "subject": subject[:SUBJECT_MAX],
            "description": {"raw": description(task, self._param(task, "descriptionVariables"))},
        }
        links = {"type": link("types", kind["id"]), **self._people_links(lambda name: self._param(task, name))}
        if due := self._due_date(task):
            payload["dueDate"] = due
        payload.update(self._custom_fields(task))
        payload[self.settings.external_id_field] = task.task_id
        payload["_links"] = links
        return payload

    def _due_date(self, task: TaskMessage) -> str | None:
        """``dueDate`` as YYYY-MM-DD (a Date variable is fine too), else today + ``dueAfter``."""
        value = task.prop("dueDate") or task.value("dueDate")
        if isinstance(value, datetime | date):
            return (value.date() if isinstance(value, datetime) else value).isoformat()
        if value:
            text = render(str(value), task.values()).strip()
            try:
                return date.fromisoformat(text[:10]).isoformat()
            except ValueError:
                raise Incident(f"dueDate {text!r} is not an ISO date such as 2026-12-31") from None
        after = self._param(task, "dueAfter")
        if not after:
            return None
        try:
            delta = timedelta(milliseconds=parse_duration_ms(after))
        except ValueError as exc:
            raise Incident(f"dueAfter: {exc}") from None
        return (datetime.now(UTC) + delta).date().isoformat()
