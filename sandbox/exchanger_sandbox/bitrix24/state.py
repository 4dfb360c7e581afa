"""The fake portal's memory: users, task user fields, tasks, checklists, comments, results, links.

Stored as the portal's own (upper-case) field names with string values, as Bitrix24 keeps them;
:mod:`methods` turns them into each REST family's casing. Every operation raises
:class:`PortalError` with the real status, code and text when the portal would refuse.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from exchanger_sandbox.bitrix24.events import Outbound

PORTAL_TZ = timezone(timedelta(hours=3))  # answers carry an offset; a non-UTC one catches naive handling
ADMIN_ID = 1  # the user who owns the default webhook
NOT_ALLOWED = "Action on the task is not allowed"
SYSTEM_FIELDS = {"UF_CRM_TASK": "crm", "UF_MAIL_MESSAGE": "mail_message", "UF_TASK_WEBDAV_FILES": "disk_file"}
SEED_USERS = [  # id, first name, last name, position
    (1, "Admin", "Portal", "Administrator"),
    (2, "Anna", "Petrova", "Accountant"),
    (3, "Ivan", "Sidorov", "Sales manager"),
    (4, "Olga", "Smirnova", "Lawyer"),
]
WRITABLE = {  # task fields tasks.task.add/update accept (UF_* are handled apart)
    "TITLE", "DESCRIPTION", "RESPONSIBLE_ID", "CREATED_BY", "DEADLINE", "START_DATE_PLAN", "END_DATE_PLAN",
    "PRIORITY", "GROUP_ID", "PARENT_ID", "STAGE_ID", "AUDITORS", "ACCOMPLICES", "TAGS", "XML_ID", "STATUS",
    "ALLOW_CHANGE_DEADLINE", "ALLOW_TIME_TRACKING", "TASK_CONTROL", "MATCH_WORK_TIME", "ADD_IN_REPORT",
    "TIME_ESTIMATE", "DESCRIPTION_IN_BBCODE",
}  # fmt: skip
LIST_FIELDS = {"AUDITORS", "ACCOMPLICES", "TAGS"}
DATE_FIELDS = {"DEADLINE", "START_DATE_PLAN", "END_DATE_PLAN"}
# action → (statuses it may start from, status it leads to); "complete" may land in 4, see set_status
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "start": ({"1", "2", "6"}, "3"),
    "pause": ({"3"}, "2"),
    "defer": ({"1", "2", "3"}, "6"),
    "complete": ({"1", "2", "3", "6"}, "5"),
    "renew": ({"4", "5", "6"}, "2"),
    "approve": ({"4"}, "5"),
    "disapprove": ({"4"}, "2"),
}


class PortalError(Exception):
    """A refusal the portal answers with ``{"error": code, "error_description": description}``."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description


def core_error(description: str) -> PortalError:
    return PortalError(400, "ERROR_CORE", description + "<br>")


CLOCK = {"skew_s": 0.0}  # the portal's clock ahead (+) or behind (-) the host's: for tests of clock skew


def now() -> str:
    return datetime.now(PORTAL_TZ).isoformat(timespec="seconds") if not CLOCK["skew_s"] else (
        datetime.now(PORTAL_TZ) + timedelta(seconds=CLOCK["skew_s"])).isoformat(timespec="seconds")


def portal_date(value: Any) -> str:
    """Any ISO date → the portal's ``YYYY-MM-DDThh:mm:ss+03:00``; naive values are portal time."""
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise core_error(f"Incorrect date format: {value}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PORTAL_TZ)
    return parsed.astimezone(PORTAL_TZ).isoformat(timespec="seconds")


def new_token() -> str:
    """A webhook code as Bitrix24 issues them: 16 lower-case letters and digits."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(16))


def exchanger_fields() -> list[dict[str, Any]]:
    """The user fields an Exchanger setup creates, with the default names and answer values."""
    from exchanger.systems.bitrix24.settings import Bitrix24Settings

    defaults = {name: field.default for name, field in Bitrix24Settings.model_fields.items()}
    answers = [
        {"VALUE": "Yes", "XML_ID": defaults["answer_ok_xml_id"], "SORT": 100},
        {"VALUE": "No", "XML_ID": defaults["answer_no_xml_id"], "SORT": 200},
    ]
    return [
        {"FIELD_NAME": defaults["external_id_field"], "USER_TYPE_ID": "string", "LABEL": "Camunda external task"},
        {"FIELD_NAME": defaults["answer_field"], "USER_TYPE_ID": "enumeration", "LABEL": "Answer", "LIST": answers},
        {"FIELD_NAME": defaults["result_expected_field"], "USER_TYPE_ID": "boolean", "LABEL": "Answer expected"},
        {"FIELD_NAME": defaults["result_question_field"], "USER_TYPE_ID": "string", "LABEL": "Question"},
    ]


class Portal:
    """All the portal's state behind one lock; the server holds ``lock`` for each REST call."""

    def __init__(self, *, token: str | None = None, with_user_fields: bool = True, stats_field: str = "",
                 application_token: str | None = None) -> None:
        self.lock = threading.RLock()
        # outbound event calls (event.bind); the application token authenticates them to the receiver
        self.outbound = Outbound(domain="portal.bitrix24.test", member_id=secrets.token_hex(16),
                                 application_token=application_token or secrets.token_hex(16))
        self.with_user_fields = with_user_fields
        self.stats_field = stats_field or "UF_CAMUNDA_ID_EXTERNAL_TASK"
        self.webhooks: dict[int, str] = {ADMIN_ID: token or new_token()}
        self.reset()

    # --- setup --------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything but the webhooks; seed users and user fields again."""
        with self.lock:
            self._ids: Counter[str] = Counter()
            self.users: dict[int, dict[str, Any]] = {}
            self.user_fields: dict[str, dict[str, Any]] = {}
            self.tasks: dict[int, dict[str, Any]] = {}
            self.checklist: dict[int, dict[str, Any]] = {}
            self.comments: dict[int, dict[str, Any]] = {}
            self.results: dict[int, dict[str, Any]] = {}
            self.links: dict[tuple[int, int], int] = {}  # (from, to) → link type
            self.tag_ids: dict[str, int] = {}
            self.created_per_external_id: Counter[str] = Counter()
            self.requests = 0
            self.rejected = 0
            self.outbound.reset()
            for user_id, name, last_name, position in SEED_USERS:
                self.users[user_id] = {
                    "ID": str(user_id), "ACTIVE": True, "NAME": name, "LAST_NAME": last_name,
                    "EMAIL": f"{name.lower()}@example.com", "WORK_POSITION": position,
                    "UF_DEPARTMENT": [1], "USER_TYPE": "employee",
                }  # fmt: skip
            self._ids["user"] = max(self.users)
            for name, type_id in SYSTEM_FIELDS.items():
                self.add_user_field({"FIELD_NAME": name, "USER_TYPE_ID": type_id, "MULTIPLE": "Y"})
            if self.with_user_fields:
                for definition in exchanger_fields():
                    self.add_user_field(definition)

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def webhook_token(self, user_id: int) -> str:
        """The webhook code of ``user_id`` (created on first use), so a test can act as that person."""
        with self.lock:
            if user_id not in self.users:
                raise KeyError(f"no user {user_id}")
            return self.webhooks.setdefault(user_id, new_token())

    def authenticate(self, user_id: str, token: str) -> int:
        with self.lock:
            if not user_id.isdigit() or self.webhooks.get(int(user_id)) != token:
                raise PortalError(401, "NO_AUTH_FOUND", "Wrong authorization data")
            return int(user_id)

    # --- users and user fields ----------------------------------------------------------------------

    def user(self, user_id: Any) -> dict[str, Any] | None:
        return self.users.get(int(user_id)) if str(user_id).isdigit() else None

    def add_user_field(self, params: dict[str, Any]) -> int:
        name = str(params.get("FIELD_NAME") or "").upper()
        type_id = str(params.get("USER_TYPE_ID") or "")
        if not name or not type_id:
            raise core_error("FIELD_NAME and USER_TYPE_ID are required")
        if not name.startswith("UF_"):
            name = "UF_" + name
        if not re.fullmatch(r"UF_[A-Z0-9_]+", name):
            raise core_error(f"Invalid field name {name}")
        if name in self.user_fields:
            raise core_error(f"The field {name} for the object TASKS_TASK already exists.")
        field_id = self.next_id("user_field")
        definition = {
            "ID": str(field_id), "ENTITY_ID": "TASKS_TASK", "FIELD_NAME": name, "USER_TYPE_ID": type_id,
            "XML_ID": str(params.get("XML_ID") or ""), "SORT": str(params.get("SORT") or 100),
            "MULTIPLE": str(params.get("MULTIPLE") or "N"), "MANDATORY": str(params.get("MANDATORY") or "N"),
            "SHOW_FILTER": "N", "SHOW_IN_LIST": "Y", "EDIT_IN_LIST": "Y", "IS_SEARCHABLE": "N",
            "SETTINGS": params.get("SETTINGS") or [], "LABEL": str(params.get("LABEL") or name),
        }  # fmt: skip
        if type_id == "enumeration":
            definition["LIST"] = [
                {
                    "ID": str(self.next_id("enum")),
                    "SORT": str(item.get("SORT") or 100),
                    "VALUE": str(item.get("VALUE") or ""),
                    "DEF": str(item.get("DEF") or "N"),
                    "XML_ID": str(item.get("XML_ID") or item.get("VALUE") or ""),
                }  # fmt: skip
                for item in (params.get("LIST") or [])
            ]
        self.user_fields[name] = definition
        return field_id

    def delete_user_field(self, field_id: Any) -> None:
        for name, definition in list(self.user_fields.items()):
            if definition["ID"] == str(field_id):
                del self.user_fields[name]
                return
        raise core_error("User field not found")

    # --- tasks --------------------------------------------------------------------------------------

    def task(self, task_id: Any) -> dict[str, Any]:
        """The task, or the portal's answer for a task that is missing or out of reach."""
        task = self.tasks.get(int(task_id)) if str(task_id).lstrip("-").isdigit() else None
        if task is None:
            raise PortalError(400, "0", NOT_ALLOWED)
        return task

    def add_task(self, fields: dict[str, Any], actor: int) -> dict[str, Any]:
        if not str(fields.get("TITLE") or "").strip():
            raise core_error("Task title is not specified")
        if not fields.get("RESPONSIBLE_ID"):
            raise core_error("Responsible person is not specified")
        for definition in self.user_fields.values():
            if definition["MANDATORY"] == "Y" and not fields.get(definition["FIELD_NAME"]):
                raise core_error(f"Required field {definition['LABEL']} value not entered")
        stamp = now()
        task_id = self.next_id("task")
        task: dict[str, Any] = {
            "ID": str(task_id), "TITLE": "", "DESCRIPTION": "", "STATUS": "2", "PRIORITY": "1",
            "RESPONSIBLE_ID": "", "CREATED_BY": str(actor), "CREATED_DATE": stamp, "CHANGED_BY": str(actor),
            "CHANGED_DATE": stamp, "STATUS_CHANGED_BY": str(actor), "STATUS_CHANGED_DATE": stamp,
            "CLOSED_BY": None, "CLOSED_DATE": None, "DEADLINE": None, "START_DATE_PLAN": None,
            "END_DATE_PLAN": None, "GROUP_ID": "0", "PARENT_ID": "0", "STAGE_ID": "0", "XML_ID": None,
            "TASK_CONTROL": "N", "ALLOW_CHANGE_DEADLINE": "N", "ALLOW_TIME_TRACKING": "N",
            "MATCH_WORK_TIME": "N", "ADD_IN_REPORT": "N", "TIME_ESTIMATE": "0", "DESCRIPTION_IN_BBCODE": "Y",
            "AUDITORS": [], "ACCOMPLICES": [], "TAGS": [],
        }  # fmt: skip
        self._write(task, {key: value for key, value in fields.items() if key != "STATUS"})
        self.tasks[task_id] = task
        external_id = task.get(self.stats_field)
        if external_id:
            self.created_per_external_id[str(external_id)] += 1
        self.outbound.task_changed("ONTASKADD", task_id)
        return task

    def update_task(self, task_id: Any, fields: dict[str, Any], actor: int) -> dict[str, Any]:
        task = self.task(task_id)
        candidate = dict(task)
        self._write(candidate, fields)
        if "STATUS" in fields and candidate["STATUS"] != task["STATUS"]:
            self._status_changed(candidate, candidate["STATUS"], actor)
        candidate["CHANGED_BY"], candidate["CHANGED_DATE"] = str(actor), now()
        task.update(candidate)
        self.outbound.task_changed("ONTASKUPDATE", int(task["ID"]))
        return task

    def _write(self, task: dict[str, Any], fields: dict[str, Any]) -> None:
        """Validate and copy writable fields; unknown keys are ignored, as the portal does."""
        for key, value in fields.items():
            if key.startswith("UF_"):
                if key in self.user_fields:
                    task[key] = self._user_field_value(self.user_fields[key], value)
                continue
            if key not in WRITABLE:
                continue
            if key in LIST_FIELDS:
                items = value if isinstance(value, list) else [value]
                task[key] = [str(item) for item in items if str(item) != ""]
            elif key in DATE_FIELDS:
                task[key] = portal_date(value) if value else None
            else:
                task[key] = "" if value is None else str(value)
        if self.user(task["RESPONSIBLE_ID"]) is None:
            raise core_error("Responsible person not found")
        if self.user(task["CREATED_BY"]) is None:
            raise core_error("Task creator not found")
        if task["PRIORITY"] not in ("0", "1", "2"):
            raise core_error("Incorrect priority")
        if task["STATUS"] not in ("1", "2", "3", "4", "5", "6", "7"):
            raise core_error("Incorrect status")
        if task["PARENT_ID"] not in ("", "0") and not (
            task["PARENT_ID"].isdigit() and int(task["PARENT_ID"]) in self.tasks
        ):
            raise core_error("Parent task not found")
        if bool(task["START_DATE_PLAN"]) != bool(task["END_DATE_PLAN"]):
            raise core_error("Both start and end dates of the plan must be specified")
        if task["START_DATE_PLAN"] and task["END_DATE_PLAN"] < task["START_DATE_PLAN"]:
            raise core_error("Planned end date cannot be earlier than planned start date")

    @staticmethod
    def _user_field_value(definition: dict[str, Any], value: Any) -> Any:
        if definition["MULTIPLE"] == "Y":
            return [str(item) for item in (value if isinstance(value, list) else [value])]
        if value in (None, "", False):
            return None
        if definition["USER_TYPE_ID"] == "enumeration":
            ids = {item["ID"] for item in definition.get("LIST", [])}
            if str(value) not in ids:
                raise core_error(f"Value {value} is not in the list of field {definition['FIELD_NAME']}")
        if definition["USER_TYPE_ID"] == "boolean":
            return "1" if str(value).lower() in ("1", "y", "true", "yes") else "0"
        return str(value)

    def set_status(self, task_id: Any, action: str, actor: int) -> dict[str, Any]:
        """A status button as a person presses it; ``complete`` with task control lands in 4."""
        task = self.task(task_id)
        allowed_from, status = TRANSITIONS[action]
        if task["STATUS"] not in allowed_from:
            raise PortalError(400, "0", NOT_ALLOWED)
        if action == "complete" and task["TASK_CONTROL"] == "Y" and str(actor) != task["CREATED_BY"]:
            status = "4"
        self._status_changed(task, status, actor)
        self.outbound.task_changed("ONTASKUPDATE", int(task["ID"]))
        return task

    def _status_changed(self, task: dict[str, Any], status: str, actor: int) -> None:
        stamp = now()
        task.update(STATUS=status, STATUS_CHANGED_BY=str(actor), STATUS_CHANGED_DATE=stamp, CHANGED_DATE=stamp)
        if status == "5":
            task.update(CLOSED_BY=str(actor), CLOSED_DATE=stamp)
            for result in self.results.values():
                if result["taskId"] == int(task["ID"]):
                    result["status"] = 1  # results close when the task completes
        elif status in ("2", "3"):
            task.update(CLOSED_BY=None, CLOSED_DATE=None)

    def delete_task(self, task_id: Any) -> None:
        task = self.task(task_id)
        del self.tasks[int(task["ID"])]
        self.links = {pair: kind for pair, kind in self.links.items() if int(task["ID"]) not in pair}
        self.outbound.task_changed("ONTASKDELETE", int(task["ID"]))

    def depends_on(self, task_id: int) -> list[str]:
        return [str(source) for (source, target) in self.links if target == task_id]

    def tag_id(self, tag: str) -> int:
        if tag not in self.tag_ids:
            self.tag_ids[tag] = self.next_id("tag")
        return self.tag_ids[tag]

    # --- checklists, comments, results, links --------------------------------------------------------

    def add_checklist_item(self, task_id: Any, fields: dict[str, Any], actor: int) -> int:
        task = self.task(task_id)
        title = str(fields.get("TITLE") or "").strip()
        if not title:
            raise core_error("TASKS_ERROR_EXCEPTION_#8; Item name not specified; 8/TE/ACTION_FAILED_TO_BE_PROCESSED")
        items = [item for item in self.checklist.values() if item["TASK_ID"] == task["ID"]]
        parent = fields.get("PARENT_ID")
        if parent is None:  # no parent: the first top-level checklist, created when there is none
            roots = [item for item in items if item["PARENT_ID"] == 0]
            parent = int(roots[0]["ID"]) if roots else self._checklist_row(task, 0, "Checklist", 0, {}, actor)
        elif int(parent) != 0 and str(parent) not in {item["ID"] for item in items}:
            raise core_error("TASKS_ERROR_EXCEPTION_#8; Adding item: parent not found; 8/TE/ACTION_NOT_ALLOWED")
        return self._checklist_row(task, int(parent), title, fields.get("SORT_INDEX"), fields, actor)

    def _checklist_row(
        self, task: dict[str, Any], parent: int, title: str, sort: Any, fields: dict[str, Any], actor: int
    ) -> int:
        item_id = self.next_id("checklist")
        self.checklist[item_id] = {
            "ID": str(item_id), "TASK_ID": task["ID"], "PARENT_ID": parent if parent == 0 else str(parent),
            "CREATED_BY": str(actor), "TITLE": title, "SORT_INDEX": str(sort if sort is not None else item_id),
            "IS_COMPLETE": "Y" if str(fields.get("IS_COMPLETE", "N")).upper() in ("Y", "TRUE", "1") else "N",
            "IS_IMPORTANT": "Y" if str(fields.get("IS_IMPORTANT", "N")).upper() in ("Y", "TRUE", "1") else "N",
            "TOGGLED_BY": None, "TOGGLED_DATE": None, "MEMBERS": [], "ATTACHMENTS": [],
        }  # fmt: skip
        return item_id

    def add_comment(self, task_id: Any, fields: dict[str, Any], actor: int) -> int:
        task = self.task(task_id)
        message = str(fields.get("POST_MESSAGE") or "").strip()
        if not message:
            raise core_error("Comment text not specified")
        author = int(fields.get("AUTHOR_ID") or actor)
        if self.user(author) is None:
            raise core_error("Comment author not found")
        comment_id = self.next_id("comment")
        user = self.users[author]
        self.comments[comment_id] = {
            "POST_MESSAGE_HTML": None, "ID": str(comment_id), "TASK_ID": task["ID"], "AUTHOR_ID": str(author),
            "AUTHOR_NAME": f"{user['NAME']} {user['LAST_NAME']}", "AUTHOR_EMAIL": user["EMAIL"],
            "POST_DATE": now(), "POST_MESSAGE": message, "ATTACHED_OBJECTS": [],
        }  # fmt: skip
        return comment_id

    def add_result_from_comment(self, comment_id: Any, actor: int) -> dict[str, Any]:
        comment = self.comments.get(int(comment_id))
        if comment is None or int(comment["TASK_ID"]) not in self.tasks:
            raise PortalError(400, "0", "Comment not found.")
        task_id = int(comment["TASK_ID"])
        if any(r["commentId"] == int(comment_id) and r["status"] == 0 for r in self.results.values()):
            raise PortalError(400, "0", "Result already exists.")
        if comment["AUTHOR_ID"] != str(actor) and actor != ADMIN_ID:
            raise PortalError(400, "0", "Access denied.")
        result_id = self.next_id("result")
        self.results[result_id] = {
            "id": result_id, "taskId": task_id, "commentId": int(comment_id), "createdBy": actor,
            "createdAt": now(), "updatedAt": now(), "status": 0, "text": comment["POST_MESSAGE"],
            "formattedText": comment["POST_MESSAGE"], "files": [],
        }  # fmt: skip
        return self.results[result_id]

    def add_link(self, source: Any, target: Any, kind: int) -> None:
        source_task, target_task = self.task(source), self.task(target)
        pair = (int(source_task["ID"]), int(target_task["ID"]))
        if pair[0] == pair[1]:
            raise PortalError(400, "ACTION_NOT_ALLOWED", "Cannot bind the node to itself")
        if pair in self.links or pair[::-1] in self.links:
            raise PortalError(400, "ILLEGAL_NEW_LINK", "A link between tasks already exists")
        if kind not in (0, 1, 2, 3):
            raise PortalError(400, "ACTION_NOT_ALLOWED", "Unknown link type")
        self.links[pair] = kind

    # --- admin --------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What a test or the demo counts: tasks, duplicates per external id, requests, refusals."""
        with self.lock:
            created = dict(self.created_per_external_id)
            statuses = Counter(task["STATUS"] for task in self.tasks.values())
            return {
                "tasks": len(self.tasks),
                "created": sum(created.values()),
                "by_status": dict(statuses),
                "external_id_field": self.stats_field,
                "by_external_id": created,
                "duplicates": {key: count for key, count in created.items() if count > 1},
                "requests": self.requests,
                "rejected": self.rejected,
                "events": self.outbound.stats(),
            }
