"""The REST methods of the fake portal: parameter names and answer casing of each method family.

``tasks.task.*`` take camelCase parameters (``taskId``, ``fields``, ``select``) and answer camelCase
keys; the older ``task.*`` and ``user.*`` methods take upper-case parameters (any case, or in order
as a JSON list) and answer upper-case keys. Method names are case-insensitive, as on the portal.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from exchanger.systems.bitrix24.client import camel_key
from exchanger_sandbox.bitrix24.params import parse_php_query, php_json
from exchanger_sandbox.bitrix24.state import CLOCK, NOT_ALLOWED, Portal, PortalError, portal_date

PAGE_SIZE = 50  # list methods answer 50 items a page, fixed
BATCH_LIMIT = 50  # commands per batch
SORT_KEYS = {
    "ID", "TITLE", "STATUS", "REAL_STATUS", "PRIORITY", "DEADLINE", "CREATED_DATE", "CHANGED_DATE", "CLOSED_DATE",
    "RESPONSIBLE_ID", "CREATED_BY", "GROUP_ID", "PARENT_ID", "START_DATE_PLAN", "END_DATE_PLAN", "SORTING",
}  # fmt: skip
DATE_KEYS = {"CREATED_DATE", "CHANGED_DATE", "CLOSED_DATE", "STATUS_CHANGED_DATE", "DEADLINE", "START_DATE_PLAN",
             "END_DATE_PLAN"}  # fmt: skip
FILTER_ALIASES = {"REAL_STATUS": "STATUS", "ACCOMPLICE": "ACCOMPLICES", "AUDITOR": "AUDITORS", "TAG": "TAGS"}
_OPERATOR = re.compile(r"^(?P<op>!=|!|<=|>=|<|>|=|%)?(?P<key>.+)$")
_RESULT_REF = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]*\])*)")


@dataclass
class Call:
    """One method call: the portal, the parsed parameters and the webhook's user."""

    portal: Portal
    params: Any
    user_id: int

    def get(self, name: str, default: Any = None) -> Any:
        """A camelCase parameter of ``tasks.task.*`` (exact name, as the portal binds them)."""
        return self.params.get(name, default) if isinstance(self.params, dict) else default

    def require(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise PortalError(400, "100", f"Could not find value for parameter {{{name}}}")
        return value

    def integer(self, name: str) -> int:
        return as_int(self.require(name), name)

    def legacy(self, name: str, position: int, default: Any = None) -> Any:
        """An upper-case parameter of the older methods: any case by name, or by position in a list."""
        if isinstance(self.params, list):
            return self.params[position] if position < len(self.params) else default
        for key, value in (self.params or {}).items():
            if key.upper() == name:
                return value
        return default

    def legacy_required(self, name: str, position: int) -> Any:
        value = self.legacy(name, position)
        if value in (None, ""):
            raise PortalError(400, "ERROR_CORE", f"TASKS_ERROR_EXCEPTION_#256; Param #{position} ({name}) "
                              "expected; 256/TE/WRONG_ARGUMENTS<br>")  # fmt: skip
        return value


@dataclass
class Answer:
    """A method's ``result`` plus, for list methods, ``total`` and ``next``."""

    result: Any
    total: int | None = None
    next: int | None = None


Method = Callable[[Call], Answer]
METHODS: dict[str, Method] = {}


def method(*names: str) -> Callable[[Method], Method]:
    def register(function: Method) -> Method:
        for name in names:
            METHODS[name.lower()] = function
        return function

    return register


def as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
        raise PortalError(400, "100", f"Invalid value {value} to match with parameter {{{name}}}. "
                          "Should be value of type int.")  # fmt: skip
    return int(str(value).strip())


def page(items: list[Any], start: Any) -> Answer:
    """One 50-item page; ``start=-1`` skips counting, as the portal allows for big exports."""
    offset = as_int(start or 0, "start")
    if offset == -1:
        return Answer(items[:PAGE_SIZE])
    chunk = items[offset : offset + PAGE_SIZE]
    more = offset + PAGE_SIZE < len(items)
    return Answer(chunk, total=len(items), next=offset + PAGE_SIZE if more else None)


# --- tasks.task.* ---------------------------------------------------------------------------------


def task_out(portal: Portal, task: dict[str, Any], select: Any = None, *, tags: bool = False) -> dict[str, Any]:
    """A task in ``tasks.task.*`` form: camelCase keys, only the selected fields (UF_* only if named)."""
    names = [str(name).upper() for name in select] if isinstance(select, list) and select else ["*"]
    plain = [key for key in task if not key.startswith("UF_") and key != "TAGS"]
    wanted: list[str] = ["ID"]
    for name in names:
        if name == "*":
            wanted += plain
        elif name == "UF_*":
            wanted += [key for key in portal.user_fields if key not in wanted]
        elif name in task or name in portal.user_fields or name == "TAGS":
            wanted.append(name)
    if any(name in ("UF_CRM_TASK", "UF_TASK_WEBDAV_FILES", "UF_MAIL_MESSAGE") for name in wanted):
        wanted += ["UF_CRM_TASK", "UF_TASK_WEBDAV_FILES", "UF_MAIL_MESSAGE"]  # the portal returns all three
    out: dict[str, Any] = {}
    for name in dict.fromkeys(wanted):
        if name == "TAGS":
            if tags:
                out["tags"] = php_json(
                    {str(portal.tag_id(t)): {"id": portal.tag_id(t), "title": t} for t in task["TAGS"]}
                )
            continue
        out[camel_key(name)] = task.get(name)
    if "*" in names:
        out["subStatus"] = task["STATUS"]
        out["dependsOn"] = portal.depends_on(int(task["ID"]))
        for role, key in (("creator", "CREATED_BY"), ("responsible", "RESPONSIBLE_ID")):
            user = portal.users.get(int(task[key]), {})
            out[role] = {
                "id": task[key], "name": f"{user.get('NAME', '')} {user.get('LAST_NAME', '')}".strip(),
                "link": f"/company/personal/user/{task[key]}/", "icon": "/bitrix/images/tasks/default_avatar.png",
                "workPosition": user.get("WORK_POSITION", ""),
            }  # fmt: skip
    return out


def fields_param(call: Call) -> dict[str, Any]:
    fields = call.require("fields")
    if not isinstance(fields, dict) or not fields:
        raise PortalError(400, "100", "Could not find value for parameter {fields}")
    return fields


@method("tasks.task.add")
def tasks_task_add(call: Call) -> Answer:
    task = call.portal.add_task(fields_param(call), call.user_id)
    return Answer({"task": task_out(call.portal, task)})


@method("tasks.task.update")
def tasks_task_update(call: Call) -> Answer:
    task = call.portal.update_task(call.integer("taskId"), fields_param(call), call.user_id)
    return Answer({"task": task_out(call.portal, task)})


@method("tasks.task.get")
def tasks_task_get(call: Call) -> Answer:
    task_id = call.require("taskId")
    if not re.fullmatch(r"\d+", str(task_id)):
        raise PortalError(400, "0", "wrong task id")
    select = call.get("select")
    if select is not None and not isinstance(select, list):
        raise PortalError(400, "100", "Invalid value to match with parameter {select}. Should be value of type array.")
    return Answer({"task": task_out(call.portal, call.portal.task(task_id), select)})


def _status_action(action: str) -> Method:
    def change(call: Call) -> Answer:
        task = call.portal.set_status(call.integer("taskId"), action, call.user_id)
        return Answer({"task": task_out(call.portal, task)})

    return change


for _action in ("start", "pause", "defer", "complete", "renew", "approve", "disapprove"):
    method(f"tasks.task.{_action}")(_status_action(_action))


@method("tasks.task.delete")
def tasks_task_delete(call: Call) -> Answer:
    call.portal.delete_task(call.integer("taskId"))
    return Answer({"task": True})


def _matches(portal: Portal, task: dict[str, Any], condition: str, expected: Any) -> bool:
    parts = _OPERATOR.match(condition)
    assert parts is not None
    op, key = parts["op"] or "=", FILTER_ALIASES.get(parts["key"].upper(), parts["key"].upper())
    if key == "DEPENDS_ON":
        actual: Any = portal.depends_on(int(task["ID"]))
    elif key in task or key in portal.user_fields:
        actual = task.get(key)
    else:
        return True  # an unknown filter key is ignored, as the portal ignores it
    wanted = [str(item) for item in expected] if isinstance(expected, list) else [str(expected)]
    values = [str(item) for item in actual] if isinstance(actual, list) else ["" if actual is None else str(actual)]
    if op in ("=", "!", "!="):
        hit = any(value in wanted for value in values)
        return hit if op == "=" else not hit
    if op == "%" or "%" in wanted[0]:
        pattern = re.escape(wanted[0].strip("%")).replace("_", ".")
        return any(re.search(pattern, value, re.IGNORECASE) for value in values)
    if key in DATE_KEYS:
        return any(_compare_dates(value, op, wanted[0]) for value in values if value)
    return any(_compare(value, op, wanted[0]) for value in values if value)


def _compare_dates(value: str, op: str, other: str) -> bool:
    """``>CHANGED_DATE`` and the like: compared as moments (the filter may use another offset than the portal)."""
    try:
        left, right = datetime.fromisoformat(portal_date(value)), datetime.fromisoformat(portal_date(other))
    except PortalError:
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _compare(value: str, op: str, other: str) -> bool:
    left: Any
    right: Any
    try:
        left, right = float(value), float(other)
    except ValueError:
        left, right = value, other
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _field_sort_value(name: str, task: dict[str, Any]) -> Any:
    return _sort_value(task.get(name))


def _sort_value(value: Any) -> tuple[int, Any]:
    text = "" if value is None else str(value)
    return (0, float(text)) if re.fullmatch(r"-?\d+(\.\d+)?", text) else (1, text)


@method("tasks.task.list")
def tasks_task_list(call: Call) -> Answer:
    portal = call.portal
    conditions = call.get("filter") or {}
    tasks = [t for t in portal.tasks.values() if all(_matches(portal, t, k, v) for k, v in conditions.items())]
    order = call.get("order") or {"ID": "asc"}
    for key, direction in reversed(list(order.items())):
        name = FILTER_ALIASES.get(key.upper(), key.upper())
        if name not in SORT_KEYS:
            raise PortalError(400, "0", "Invalid sorting key")
        tasks.sort(key=functools.partial(_field_sort_value, name), reverse=str(direction).lower() == "desc")
    answer = page(tasks, call.get("start"))
    answer.result = {"tasks": [task_out(portal, t, call.get("select"), tags=True) for t in answer.result]}
    return answer


@method("tasks.task.result.list")
def tasks_task_result_list(call: Call) -> Answer:
    task_id = call.integer("taskId")
    if task_id not in call.portal.tasks:
        raise PortalError(400, "0", "Access denied.")
    return Answer([dict(r) for r in call.portal.results.values() if r["taskId"] == task_id])


@method("tasks.task.result.addFromComment")
def tasks_task_result_add_from_comment(call: Call) -> Answer:
    result = call.portal.add_result_from_comment(call.integer("commentId"), call.user_id)
    return Answer({**result, "files": None})


# --- older task.* methods (upper-case keys) --------------------------------------------------------


@method("task.commentitem.add")
def task_commentitem_add(call: Call) -> Answer:
    task_id = call.legacy_required("TASKID", 0)
    return Answer(call.portal.add_comment(task_id, call.legacy_required("FIELDS", 1), call.user_id))


@method("task.commentitem.getlist")
def task_commentitem_getlist(call: Call) -> Answer:
    task = call.portal.task(call.legacy_required("TASKID", 0))
    return Answer([dict(c) for c in call.portal.comments.values() if c["TASK_ID"] == task["ID"]])


@method("task.checklistitem.add")
def task_checklistitem_add(call: Call) -> Answer:
    task_id = call.legacy_required("TASKID", 0)
    fields = call.legacy_required("FIELDS", 1)
    if fields.get("PARENT_ID") is not None:
        fields = {**fields, "PARENT_ID": as_int(fields["PARENT_ID"], "PARENT_ID")}
    return Answer(call.portal.add_checklist_item(task_id, fields, call.user_id))


@method("task.checklistitem.getlist")
def task_checklistitem_getlist(call: Call) -> Answer:
    task = call.portal.task(call.legacy_required("TASKID", 0))
    return Answer([dict(i) for i in call.portal.checklist.values() if i["TASK_ID"] == task["ID"]])


@method("task.dependence.add")
def task_dependence_add(call: Call) -> Answer:
    source, target = call.legacy_required("TASKIDFROM", 0), call.legacy_required("TASKIDTO", 1)
    kind = as_int(call.legacy("LINKTYPE", 2, 0), "linkType")
    try:
        call.portal.add_link(source, target, kind)
    except PortalError as exc:
        if exc.description == NOT_ALLOWED:
            raise PortalError(400, "ACTION_NOT_ALLOWED", "Action not allowed") from None
        raise
    return Answer([])


@method("task.item.userfield.getlist")
def task_item_userfield_getlist(call: Call) -> Answer:
    conditions = call.legacy("FILTER", 1) or {}
    fields = [
        dict(f)
        for f in call.portal.user_fields.values()
        if all(str(f.get(key.upper())) == str(value) for key, value in conditions.items())
    ]
    return Answer(fields)


@method("task.item.userfield.get")
def task_item_userfield_get(call: Call) -> Answer:
    wanted = str(call.legacy_required("ID", 0))
    for definition in call.portal.user_fields.values():
        if definition["ID"] == wanted:
            return Answer(dict(definition))
    raise PortalError(400, "ERROR_CORE", "User field not found<br>")


@method("task.item.userfield.add")
def task_item_userfield_add(call: Call) -> Answer:
    if call.user_id != 1:
        raise PortalError(403, "ACCESS_DENIED", "Access denied! Admin permissions required.")
    return Answer(call.portal.add_user_field(call.legacy_required("PARAMS", 0)))


@method("task.item.userfield.delete")
def task_item_userfield_delete(call: Call) -> Answer:
    call.portal.delete_user_field(call.legacy_required("ID", 0))
    return Answer(True)


# --- users ----------------------------------------------------------------------------------------


@method("user.get")
def user_get(call: Call) -> Answer:
    params = call.params if isinstance(call.params, dict) else {}
    conditions = dict(params.get("FILTER") or params.get("filter") or {})
    conditions.update({k: v for k, v in params.items() if k.isupper() and k not in ("FILTER", "SORT", "ORDER")})
    users = [u for u in call.portal.users.values() if all(_user_matches(u, k, v) for k, v in conditions.items())]
    return page([dict(u) for u in users], params.get("start"))


def _user_matches(user: dict[str, Any], condition: str, expected: Any) -> bool:
    key = condition.lstrip("=!<>%@").upper()
    if key not in user:
        return True
    actual = user[key]
    if isinstance(actual, bool):
        return actual == (str(expected).lower() in ("true", "1", "y"))
    return str(actual).lower() == str(expected).lower()


@method("user.current")
def user_current(call: Call) -> Answer:
    return Answer(dict(call.portal.users[call.user_id]))


# --- batch ----------------------------------------------------------------------------------------


def time_block(started: float, finished: float | None = None) -> dict[str, Any]:
    """The ``time`` object of every answer (operating time is not metered by the fake)."""
    finished = finished or time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started + CLOCK["skew_s"]))
    return {
        "start": started, "finish": finished, "duration": finished - started, "processing": finished - started,
        "date_start": stamp, "date_finish": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(finished)),
        "operating_reset_at": int(started) + 600, "operating": 0,
    }  # fmt: skip


def invoke(name: str, call: Call) -> Answer:
    function = METHODS.get(name.lower().removesuffix(".json"))
    if function is None:
        raise PortalError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    return function(call)


def _substitute(command: str, results: dict[str, Any]) -> str:
    """Replace ``$result[key][field]...`` with the value an earlier command returned."""

    def value(match: re.Match[str]) -> str:
        node: Any = results.get(match[1])
        for segment in re.findall(r"\[([^\]]*)\]", match[2]):
            if isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            elif isinstance(node, dict):
                node = node.get(segment)
            else:
                node = None
        return quote("" if node is None else str(node))

    return _RESULT_REF.sub(value, command)


@method("event.bind")
def event_bind(call: Call) -> Answer:
    event, handler = str(call.require("event")).upper(), str(call.require("handler"))
    if not re.match(r"^https?://", handler):
        raise PortalError(400, "ERROR_HANDLER_URL", "Handler URL is not valid")
    offline = str(call.get("event_type") or "online").lower() == "offline"
    try:
        call.portal.outbound.bind(event, handler, int(call.get("auth_type") or 0), offline)
    except ValueError as exc:
        raise PortalError(400, "ERROR_CORE", str(exc)) from None
    return Answer(True)


@method("event.get")
def event_get(call: Call) -> Answer:
    return Answer(call.portal.outbound.listed())


@method("event.unbind")
def event_unbind(call: Call) -> Answer:
    event = str(call.require("event")).upper()
    count = call.portal.outbound.unbind(event, call.get("handler"), call.get("auth_type"))
    return Answer({"count": count})


@method("batch")
def batch(call: Call) -> Answer:
    commands = call.legacy("CMD", 1) or {}
    if isinstance(commands, list):
        commands = {str(index): command for index, command in enumerate(commands)}
    if len(commands) > BATCH_LIMIT:
        raise PortalError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
    halt = str(call.legacy("HALT", 0, 0)).lower() in ("1", "true", "y")
    out: dict[str, dict[str, Any]] = {"result": {}, "result_error": {}, "result_total": {}, "result_next": {}}
    out["result_time"] = {}
    for key, command in commands.items():
        started = time.time()
        name, _, query = str(command).partition("?")
        try:
            if name.lower() == "batch":
                raise PortalError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
            answer = invoke(name, Call(call.portal, parse_php_query(_substitute(query, out["result"])), call.user_id))
        except PortalError as exc:
            out["result_error"][key] = {"error": exc.code, "error_description": exc.description}
            if halt:
                break
            continue
        out["result"][key] = answer.result
        if answer.total is not None:
            out["result_total"][key] = answer.total
        if answer.next is not None:
            out["result_next"][key] = answer.next
        out["result_time"][key] = time_block(started)
    return Answer(php_json(out))
