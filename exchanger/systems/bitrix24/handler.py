"""Bitrix24 handler: a process step becomes a task for a person (``bitrix_create_task``), or changes one
(``bitrix_update_task``).

**bitrix_create_task** builds ``tasks.task.add`` fields from the activity's extension properties and the
process variables. Properties are ``${variable}`` templates; where a property and a variable can both
give a value, the property wins:

=================  ===========================================================================================
``TITLE``          property ``TITLE``; default the activity name
``DESCRIPTION``    property ``DESCRIPTION``; default the activity documentation plus the variables named in
                   ``descriptionVariables`` (comma list)
``RESPONSIBLE_ID`` property ``RESPONSIBLE_ID``, ``assigneeId`` or ``responsibleId``, then variable ``assigneeId``
                   or ``responsibleId``; default ``BITRIX_DEFAULT_RESPONSIBLE_ID``
``CREATED_BY``     property ``CREATED_BY``, then variable ``startedBy`` (ignored unless a user id); default
                   ``BITRIX_DEFAULT_CREATED_BY``, else the webhook's user
``DEADLINE``       property ``DEADLINE``, then variable ``deadline`` (Camunda Date or ISO date), then property
                   ``deadlineAfter`` (ISO duration from now, e.g. ``P3D``); sent as ``YYYY-MM-DDThh:mm:ss±hh:mm``
``PRIORITY``       property (``0``/``1``/``2`` or ``low``/``medium``/``high``)
``GROUP_ID``,      properties
``PARENT_ID``
``AUDITORS``,      properties, comma lists (or a template of one list variable)
``ACCOMPLICES``,
``TAGS``
``UF_*``           every ``UF_*`` property is passed through
=================  ===========================================================================================

A yes/no question: property ``resultExpected`` = ``true`` sets ``UF_RESULT_EXPECTED`` and
``UF_RESULT_QUESTION`` (property ``resultQuestion``, default the title); the tracker then sets the
variable named after the activity id to ``"ok"`` or ``"no"``. Models the old Exchanger.py tool deployed
spell these ``UF_RESULT_EXPECTED`` (true/1/y/yes/да) and ``UF_RESULT_QUESTION``; both spellings are read.
Exchanger also writes the Camunda task id into ``BITRIX_EXTERNAL_ID_FIELD`` (the idempotency key) and
``XML_ID`` = ``<process instance id>:<activity id>`` (the marker later activities of the instance find
this task by).

After the task: property ``checklist`` (JSON: a list of strings, or of ``{"title": ..., "items": [...]}``
groups; strings go to a group named ``Checklist``; the old tool's ``checklists`` with ``{"name", "items"}``
groups is read too) becomes checklists, one ``batch`` per group; property
``dependsOn`` (comma list of activity ids) links the tasks of those activities in the same process
instance to this one, finish→start. A redelivered task is found by its external id, and whatever of
these two steps is missing is done then (rows are matched by title, an existing link is kept).

**bitrix_update_task** changes an existing task: property ``TASK_ID``, else the task of the activity in
property ``taskActivity`` (same instance), else variable ``bitrix_task_id``. It writes only the fields
the activity's *properties* give (the table above, no defaults, no process variables but through
templates) and completes at once with ``bitrix_task_id``, ``bitrix_task_url`` and ``bitrix_task_status``.

At start the handler checks the task user fields it needs (``ConfigError`` with how to create the
missing ones). An unreachable portal does not stop the start: the check runs again before the next
message, which is retried later (``TransientError``) until it passes.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger

from exchanger.contracts import ExternalItem, TaskMessage
from exchanger.creator.base import Done, HandlerOutcome
from exchanger.creator.retry_policy import parse_duration_ms
from exchanger.creator.tracked import TrackedHandler
from exchanger.errors import AuthError, ConfigError, Incident, NotFound, TransientError
from exchanger.systems.bitrix24 import SYSTEM as SPEC
from exchanger.systems.bitrix24.client import BATCH_LIMIT, Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger.templates import description, render, render_value
from exchanger.variables import parse_date

SYSTEM = "bitrix24"
CREATE_TOPIC = "bitrix_create_task"
UPDATE_TOPIC = "bitrix_update_task"
RESPONSIBLE_PROPERTIES = ("RESPONSIBLE_ID", "assigneeId", "responsibleId")
RESPONSIBLE_VARIABLES = ("assigneeId", "responsibleId")
PLAIN_PROPERTIES = ("PRIORITY", "GROUP_ID", "PARENT_ID")
LIST_PROPERTIES = ("AUDITORS", "ACCOMPLICES", "TAGS")
PRIORITIES = {"low": "0", "medium": "1", "normal": "1", "high": "2"}
TRUE_TEXTS = ("true", "1", "y", "yes", "да")  # the old tool's truthy spellings of UF_RESULT_EXPECTED too
QUESTION_PROPERTIES = ("resultQuestion", "UF_RESULT_QUESTION")  # new spelling first, then the old tool's
EXPECTED_PROPERTIES = ("resultExpected", "UF_RESULT_EXPECTED")
CHECKLIST_PROPERTIES = ("checklist", "checklists")
DEFAULT_CHECKLIST = "Checklist"  # group name for checklist items given as plain strings
CHECKLIST_ITEMS_PER_GROUP = BATCH_LIMIT - 1  # one batch per group: the group row and its items


def marker(process_instance_id: str, activity_id: str) -> str:
    """The ``XML_ID`` of the task created for ``activity_id`` in a process instance."""
    return f"{process_instance_id}:{activity_id}"


def comma_list(value: Any) -> list[str]:
    """``"1, 2"`` or ``[1, 2]`` → ``["1", "2"]``."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def numeric_id(value: Any, source: str) -> int:
    """A Bitrix24 id (user, task) given by the process; anything else is the designer's mistake."""
    text = str(value).strip()
    if not text.isdigit():
        raise Incident(f"{source} must be a Bitrix24 id (a number), got {text!r}")
    return int(text)


def deadline_text(value: Any, source: str) -> str:
    """A date (Camunda Date, any ISO date; naive = UTC) in the portal's format, with its offset."""
    try:
        parsed = value if isinstance(value, datetime) else parse_date(str(value))
    except ValueError:
        raise Incident(f"{source} is not a date: {value!r} (use ISO 8601 or Camunda's Date format)") from None
    return parsed.isoformat(timespec="seconds")


def checklist_groups(task: TaskMessage, values: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The ``checklist`` property as ``[(group title, [item, ...]), ...]``, templates rendered."""
    raw = next((task.prop(name) for name in CHECKLIST_PROPERTIES if task.prop(name)), None)
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise Incident(f"property checklist is not JSON: {exc}") from None
    if not isinstance(parsed, list):
        raise Incident("property checklist must be a JSON list of strings or of {\"title\", \"items\"} groups")
    loose: list[str] = []
    groups: list[tuple[str, list[str]]] = []
    for entry in parsed:
        if isinstance(entry, str):
            loose.append(render(entry, values))
        elif isinstance(entry, dict) and isinstance(entry.get("items", []), list):
            title = render(str(entry.get("title") or entry.get("name") or DEFAULT_CHECKLIST), values)
            groups.append((title, [render(str(item), values) for item in entry.get("items", [])]))
        else:
            raise Incident(f"property checklist: {entry!r} is neither a string nor a {{\"title\", \"items\"}} group")
    if loose:
        groups.insert(0, (DEFAULT_CHECKLIST, loose))
    for title, items in groups:
        if len(items) > CHECKLIST_ITEMS_PER_GROUP:
            raise Incident(f"checklist {title!r} has {len(items)} items; at most {CHECKLIST_ITEMS_PER_GROUP} a group")
    return [(title, [item for item in items if item.strip()]) for title, items in groups if title.strip()]


class Bitrix24TaskHandler(TrackedHandler[Bitrix24Settings, Bitrix24Client]):
    """Creates (or updates) Bitrix24 tasks; see the module docstring for the properties it reads."""

    spec = SPEC
    settings_class = Bitrix24Settings
    client_factory = Bitrix24Client  # shared with the tracker: the portal meters the webhook in one bucket

    def setup(self) -> None:
        self._fields_checked = False
        self._check_lock = threading.Lock()
        try:
            self.check_user_fields()
        except TransientError as exc:
            logger.warning("Bitrix24 is unreachable at start ({}); the user fields are checked before the first task",
                           exc)

    # --- start check ------------------------------------------------------------------------------

    def check_user_fields(self) -> None:
        """Raise ``ConfigError`` naming every missing or unfit task user field and how to create it.

        Runs once successfully; a ``TransientError`` (portal unreachable) propagates and it runs again.
        """
        if self._fields_checked:
            return
        with self._check_lock:
            if self._fields_checked:
                return
            try:
                problems = self.client.check_user_fields(
                    self.settings.required_user_fields(),
                    enum_xml_ids=(self.settings.answer_ok_xml_id, self.settings.answer_no_xml_id),
                    enum_texts=(self.settings.ok_texts, self.settings.no_texts),
                )
            except AuthError as exc:
                raise ConfigError(f"Bitrix24 refused the webhook (BITRIX_WEBHOOK_URL): {exc}") from None
            if problems:
                raise ConfigError("Bitrix24 is not set up for Exchanger: " + "; ".join(map(str, problems)))
            self._fields_checked = True

    def _ready(self, task: TaskMessage) -> None:
        """Make sure the start check has passed (a later retry if unreachable)."""
        try:
            self.check_user_fields()
        except ConfigError as exc:
            raise Incident(str(exc)) from None

    # --- idempotency ------------------------------------------------------------------------------

    def find_existing(self, task: TaskMessage) -> ExternalItem | None:
        """The task already created for this Camunda task, with its missing checklist rows and links added."""
        self._ready(task)
        if task.topic_name != CREATE_TOPIC:
            return None
        found = self.client.find_task_by_external_id(self.settings.external_id_field, task.task_id)
        if found is None:
            return None
        values = task.values()
        self._after_create(task, values, int(found["id"]), resumed=True)
        return self._item(task, values, found["id"])

    # --- create and update ------------------------------------------------------------------------

    def create(self, task: TaskMessage) -> HandlerOutcome:
        self._ready(task)
        values = task.values()
        if task.topic_name == UPDATE_TOPIC:
            return self._update(task, values)
        fields = self.create_fields(task, values)
        created = self.client.add_task(fields)
        logger.info("Bitrix24 task {} created for Camunda task {} ({})", created["id"], task.task_id, fields["TITLE"])
        self._after_create(task, values, int(created["id"]), resumed=False)
        return self._item(task, values, created["id"])

    def create_fields(self, task: TaskMessage, values: dict[str, Any]) -> dict[str, Any]:
        """The ``tasks.task.add`` fields for ``task`` (module docstring: sources and precedence)."""
        given = self.given_fields(task, values, with_variables=True)
        title = given.pop("TITLE", None) or task.bpmn_metadata.activity_name or task.activity_id or task.topic_name
        fields: dict[str, Any] = {
            "TITLE": title,
            "DESCRIPTION": description(task, task.prop("descriptionVariables")),
            "RESPONSIBLE_ID": self.settings.default_responsible_id,
        }
        started_by = values.get("startedBy")
        if str(started_by or "").strip().isdigit():
            fields["CREATED_BY"] = int(str(started_by))
        elif started_by:
            logger.info("Camunda task {}: startedBy {!r} is not a Bitrix24 user id; not used", task.task_id, started_by)
        if "CREATED_BY" not in fields and self.settings.default_created_by:
            fields["CREATED_BY"] = self.settings.default_created_by
        fields.update(given)
        fields[self.settings.external_id_field] = task.task_id
        fields["XML_ID"] = marker(task.process_instance_id, task.activity_id)
        if self.result_expected(task, values):
            if not task.activity_id:
                raise Incident("resultExpected needs the activity id (the answer variable is named after it)")
            question = next((task.prop(name) for name in QUESTION_PROPERTIES if task.prop(name)), None)
            fields[self.settings.result_expected_field] = 1
            fields[self.settings.result_question_field] = render(question, values) if question else title
        return fields

    def given_fields(self, task: TaskMessage, values: dict[str, Any], *, with_variables: bool) -> dict[str, Any]:
        """The fields the activity gives explicitly: properties, and with ``with_variables`` process variables."""

        def prop(name: str) -> Any:
            raw = task.prop(name)
            return None if raw is None or not raw.strip() else render_value(raw, values)

        def variable(name: str) -> Any:
            return values.get(name) if with_variables and values.get(name) not in (None, "") else None

        fields: dict[str, Any] = {}
        for name in ("TITLE", "DESCRIPTION"):
            if (task.prop(name) or "").strip():
                fields[name] = render(task.prop(name) or "", values)
        responsible = next((prop(n) for n in RESPONSIBLE_PROPERTIES if prop(n) is not None), None)
        if responsible is None:
            responsible = next((variable(n) for n in RESPONSIBLE_VARIABLES if variable(n) is not None), None)
        if responsible is not None:
            fields["RESPONSIBLE_ID"] = numeric_id(responsible, "RESPONSIBLE_ID (assigneeId / responsibleId)")
        if prop("CREATED_BY") is not None:
            fields["CREATED_BY"] = numeric_id(prop("CREATED_BY"), "property CREATED_BY")
        if prop("DEADLINE") is not None:
            fields["DEADLINE"] = deadline_text(prop("DEADLINE"), "property DEADLINE")
        elif variable("deadline") is not None:
            fields["DEADLINE"] = deadline_text(variable("deadline"), "variable deadline")
        elif prop("deadlineAfter") is not None:
            try:
                after = timedelta(milliseconds=parse_duration_ms(str(prop("deadlineAfter"))))
            except ValueError as exc:
                raise Incident(f"property deadlineAfter: {exc}") from None
            fields["DEADLINE"] = deadline_text(datetime.now(UTC) + after, "deadlineAfter")
        for name in PLAIN_PROPERTIES:
            if prop(name) is not None:
                text = str(prop(name)).strip()
                fields[name] = PRIORITIES.get(text.lower(), text) if name == "PRIORITY" else text
        for name in LIST_PROPERTIES:
            if prop(name) is not None:
                fields[name] = comma_list(prop(name))
        for name in task.bpmn_metadata.extension_properties:
            if name.upper().startswith("UF_") and prop(name) is not None:
                fields[name.upper()] = prop(name)
        return fields

    @staticmethod
    def result_expected(task: TaskMessage, values: dict[str, Any]) -> bool:
        """``resultExpected`` (or the old tool's ``UF_RESULT_EXPECTED``) is true."""
        return any(str(render_value(task.prop(name) or "", values)).strip().lower() in TRUE_TEXTS
                   for name in EXPECTED_PROPERTIES)

    def _item(self, task: TaskMessage, values: dict[str, Any], task_id: Any) -> ExternalItem:
        data = {
            "activity_id": task.activity_id,
            "result_expected": self.result_expected(task, values),
            "xml_id": marker(task.process_instance_id, task.activity_id),
        }
        return ExternalItem(system=SYSTEM, id=str(task_id), url=self.client.task_url(task_id), data=data)

    def _after_create(self, task: TaskMessage, values: dict[str, Any], task_id: int, *, resumed: bool) -> None:
        """Checklists and dependencies; ``resumed``: a redelivery, so add only what is not there yet."""
        groups = checklist_groups(task, values)
        if groups:
            self._add_checklists(task_id, groups, self.client.checklist_items(task_id) if resumed else [])
        for activity in comma_list(task.prop("dependsOn")):
            wanted = marker(task.process_instance_id, activity)
            predecessor = self.client.find_task_by_external_id("XML_ID", wanted)
            if predecessor is None:
                logger.warning("Bitrix24 task {}: no task for activity {} of process instance {}; no link to it",
                               task_id, activity, task.process_instance_id)
                continue
            self.client.add_dependency(predecessor["id"], task_id)

    def _add_checklists(self, task_id: int, groups: list[tuple[str, list[str]]], rows: list[dict[str, Any]]) -> None:
        """One batch per group: the group row (unless it exists) and its items not there yet."""
        roots = {row["TITLE"]: str(row["ID"]) for row in rows if str(row.get("PARENT_ID")) == "0"}
        present = {(str(row.get("PARENT_ID")), row["TITLE"]) for row in rows}
        for title, items in groups:
            calls: dict[str, tuple[str, dict[str, Any]]] = {}
            parent = roots.get(title)
            if parent is None:
                calls["group"] = ("task.checklistitem.add", {"TASKID": task_id, "FIELDS": {"TITLE": title,
                                                                                         "PARENT_ID": 0}})
                parent = "$result[group]"
            for position, item in enumerate(items):
                if (parent, item) not in present:
                    fields = {"TITLE": item, "PARENT_ID": parent, "SORT_INDEX": position, "IS_COMPLETE": "N"}
                    calls[f"item{position}"] = ("task.checklistitem.add", {"TASKID": task_id, "FIELDS": fields})
            if calls:
                result = self.client.batch(calls, halt=True)
                for key in calls:
                    result.get(key)  # raises the first refusal
                logger.debug("Bitrix24 task {}: checklist {!r}, {} rows added", task_id, title, len(calls))

    def _update(self, task: TaskMessage, values: dict[str, Any]) -> HandlerOutcome:
        target = self._update_target(task, values)
        fields = self.given_fields(task, values, with_variables=False)
        try:
            if fields:
                params = {"taskId": target, "fields": fields}  # the same update twice does no harm: retried as a read
                updated = self.client.envelope("tasks.task.update", params, read=True)["result"]["task"]
            else:
                updated = self.client.get_task(target, select=["ID", "STATUS"])
        except NotFound:
            return self.deleted(f"Bitrix24 task {target} to update does not exist (deleted?)",
                                {"bitrix_task_id": target})
        logger.info("Bitrix24 task {} updated for Camunda task {}: {}", target, task.task_id, ", ".join(fields))
        return Done(variables={"bitrix_task_id": target, "bitrix_task_url": self.client.task_url(target),
                               "bitrix_task_status": int(updated.get("status") or 0)})

    def _update_target(self, task: TaskMessage, values: dict[str, Any]) -> int:
        explicit = task.prop("TASK_ID")
        if explicit:
            return numeric_id(render_value(explicit, values), "property TASK_ID")
        activity = task.prop("taskActivity")
        if activity:
            found = self.client.find_task_by_external_id("XML_ID", marker(task.process_instance_id, activity))
            if found is None:
                raise Incident(f"no Bitrix24 task was created for activity {activity} in this process instance")
            return int(found["id"])
        if values.get("bitrix_task_id") is not None:
            return numeric_id(values["bitrix_task_id"], "variable bitrix_task_id")
        raise Incident("bitrix_update_task needs its task: property TASK_ID or taskActivity, or variable "
                       "bitrix_task_id")
