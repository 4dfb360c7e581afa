"""Bitrix24 REST over an inbound webhook: envelopes, typed errors, the rate limit, batch, task calls.

One :class:`Bitrix24Client` per process, over the shared :class:`~exchanger.http_client.HttpClient`
(one pooled session). Each HTTP attempt, retries included, first takes a slot from a client-side leaky
bucket that mirrors the portal's (:class:`PortalBucket`, the HTTP client's hook), so a burst waits here
instead of earning 503 ``QUERY_LIMIT_EXCEEDED``.

Retries are the HTTP client's: a call whose method name ends in a read verb (``*.get``, ``*.list``…) is
idempotent and retried on every transient error; a write only when the portal certainly did not run
it (a rate limit, no connection): after a timeout or a 5xx a ``tasks.task.add`` may have happened, and
classic REST has no duplicate protection, so the caller looks the task up by its external id before
trying again. The webhook URL holds a secret and never appears in a message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from loguru import logger

from exchanger.backoff import Backoff
from exchanger.errors import (
    AuthError,
    IntegrationError,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
)
from exchanger.http_client import CallHooks, SystemClient, json_body, retry_after_seconds, segment
from exchanger.secrets import mask
from exchanger.systems.bitrix24.ratelimit import LeakyBucket
from exchanger.systems.bitrix24.settings import Bitrix24Settings

SYSTEM = "bitrix24"
BATCH_LIMIT = 50  # commands per batch call, the portal's maximum
PAGE_SIZE = 50  # items per page of a list method, fixed by the portal
BURST_HEADROOM = 2  # bucket slots left free: requests reach the portal later than we admit them, unevenly
# writes come first: a read (a tracker's check) leaves this many slots of the bucket to writes, so a new
# task is created at once even while checks use the whole steady rate
READ_RESERVE = 10
FINISH_START = 2  # task.dependence.add linkType: the next task starts when this one finishes
READ_VERBS = {"get", "list", "getlist", "getfields", "current"}  # last part of a method name safe to repeat
RATE_LIMIT_CODES = {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT"}
AUTH_CODES = {
    "NO_AUTH_FOUND", "INVALID_CREDENTIALS", "insufficient_scope", "expired_token", "ACCESS_DENIED",
    "user_access_error", "wrong_client",
}  # fmt: skip
# error texts the task methods answer for a task that is gone (or out of the webhook user's reach)
NOT_FOUND_TEXT = re.compile(r"not allowed|access denied|not found|does not exist", re.IGNORECASE)
USER_AGENT = "exchanger-bitrix24/0.1"


def camel_key(name: str) -> str:
    """``RESPONSIBLE_ID`` → ``responsibleId``, ``UF_RESULT_ANSWER`` → ``ufResultAnswer`` (tasks.task.* keys)."""
    first, *rest = name.lower().split("_")
    return first + "".join(part.capitalize() for part in rest)


def is_read(method: str) -> bool:
    return method.lower().removesuffix(".json").rsplit(".", 1)[-1] in READ_VERBS


def php_query(params: dict[str, Any]) -> str:
    """Parameters as PHP's ``http_build_query`` writes them (``a[b][0]=x``), for batch commands.

    ``$result[key][field]`` references to earlier batch results are left readable for the portal.
    """
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}[{key}]", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append((prefix, "1" if value else "0"))
        else:
            pairs.append((prefix, "" if value is None else str(value)))

    for key, value in params.items():
        walk(key, value)
    return urlencode(pairs, safe="[]$")


def error_from_envelope(
    method: str, status: int | None, code: str, description: str, retry_after_s: float | None = None
) -> IntegrationError:
    """The typed error for one Bitrix24 ``{"error", "error_description"}`` (``status`` None inside batch)."""
    text = mask(re.sub(r"<br\s*/?>", " ", description or "").strip())
    message = f"Bitrix24 {method}: {code or 'error'}" + (f" (HTTP {status})" if status else "") + f": {text}"
    kwargs: dict[str, Any] = {"system": SYSTEM, "status": status, "code": code, "details": text}
    if code in RATE_LIMIT_CODES or status == 429:
        return RateLimited(message, retry_after_s=retry_after_s, **kwargs)
    if code in AUTH_CODES or status in (401, 403):
        return AuthError(message, **kwargs)
    if code == "PORTAL_DELETED":
        return PermanentError(message, **kwargs)
    if status is not None and (status >= 500 or status == 408):
        return TransientError(message, retry_after_s=retry_after_s, **kwargs)
    if (
        status == 404
        or code in ("ERROR_NOT_FOUND", "ERROR_METHOD_NOT_FOUND")
        or (code in ("0", "ERROR_CORE") and NOT_FOUND_TEXT.search(text))
    ):
        return NotFound(message, **kwargs)
    return PermanentError(message, **kwargs)


def classify(response: requests.Response) -> IntegrationError:
    """``HttpClient`` hook: an HTTP error answer → typed error, from the portal's error envelope."""
    method = urlsplit(response.url).path.rstrip("/").rsplit("/", 1)[-1]  # the method; never the token
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "error" not in body:
        body = {"error": "", "error_description": response.text[:300]}
    retry_after = retry_after_seconds(response)
    timing = body["time"] if isinstance(body.get("time"), dict) else {}
    if body.get("error") == "OPERATION_TIME_LIMIT" and timing.get("operating_reset_at"):
        retry_after = max(0.0, float(timing["operating_reset_at"]) - time.time())  # the method is paused until then
    return error_from_envelope(
        method, response.status_code, str(body.get("error")), str(body.get("error_description") or ""), retry_after
    )


@dataclass(frozen=True)
class ChangedTasks:
    """One change sweep's list: the tasks, whether that was all of them (False: cut at its page limit), and
    the portal's own clock when the first page was read (``time.date_start``; blank if it gave none)."""

    tasks: list[dict[str, Any]]
    complete: bool
    listed_at: str


def _as_dict(value: Any) -> dict[str, Any]:
    """A PHP array as a dict: ``[]`` is empty, a list is keyed "0".."n-1"."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    return {}


@dataclass
class BatchResult:
    """Per-command results and typed errors of one ``batch`` call."""

    results: dict[str, Any]
    errors: dict[str, IntegrationError]
    totals: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        """The command's result, or its error raised; a command the halt skipped is an error too."""
        if key in self.errors:
            raise self.errors[key]
        if key not in self.results:
            raise PermanentError(f"Bitrix24 batch: command {key} was not run (halted by an earlier error)")
        return self.results[key]


@dataclass(frozen=True)
class UserFieldProblem:
    """One task user field that is missing or unfit, with what to do about it."""

    field: str
    expected: str
    found: str | None  # None: the field does not exist
    fix: str

    def __str__(self) -> str:
        state = "is missing" if self.found is None else f"is {self.found}, expected {self.expected}"
        return f"task user field {self.field} {state}: {self.fix}"


def _how_to_create(name: str, type_id: str, enum_xml_ids: tuple[str, ...]) -> str:
    params: dict[str, Any] = {"FIELD_NAME": name, "USER_TYPE_ID": type_id, "LABEL": name, "MULTIPLE": "N"}
    if type_id == "enumeration":
        params["LIST"] = [{"VALUE": xml_id, "XML_ID": xml_id} for xml_id in enum_xml_ids]
    values = f" with values whose XML_ID are {', '.join(enum_xml_ids)}" if type_id == "enumeration" else ""
    return (
        f"as a portal administrator add a task custom field of type {type_id} named {name}{values} "
        f"(Tasks → settings → custom fields), or call task.item.userfield.add with "
        f"{json.dumps({'PARAMS': params}, ensure_ascii=False)}"
    )


class PortalBucket(CallHooks):
    """The portal's leaky bucket on our side, around every attempt: writes come first (a read leaves
    :data:`READ_RESERVE` slots to them), and a refusal fills it (someone else shares the portal's)."""

    def __init__(self, bucket: LeakyBucket) -> None:
        self.bucket = bucket

    def before(self, idempotent: bool) -> None:
        self.bucket.take(reserve=READ_RESERVE if idempotent else 0)

    def refused(self, error: RateLimited) -> None:
        self.bucket.fill()


class Bitrix24Client(SystemClient):
    """Calls Bitrix24 REST methods through the webhook in ``settings``; thread-safe."""

    def __init__(self, settings: Bitrix24Settings, *, backoff: Backoff = Backoff()) -> None:
        url = settings.webhook_url.get_secret_value().rstrip("/")
        parts = urlsplit(url)
        user_id, token = parts.path.rstrip("/").split("/")[-2:]
        self.settings = settings
        self.portal_url = f"{parts.scheme}://{parts.netloc}"
        self.webhook_user_id = int(user_id)
        self.limiter = LeakyBucket(rate_per_s=settings.rate_per_s, burst=max(1, settings.burst - BURST_HEADROOM))
        super().__init__(settings, url, system=SYSTEM, secrets=[url, token], backoff=backoff,
                         headers={"Accept": "application/json", "User-Agent": USER_AGENT}, classify=classify,
                         hooks=PortalBucket(self.limiter))

    # --- transport ----------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call one REST method and return its ``result``; raise a typed error on any refusal."""
        return self.envelope(method, params or {})["result"]

    def envelope(self, method: str, params: dict[str, Any], *, read: bool | None = None) -> dict[str, Any]:
        """The whole success envelope (``result``, ``total``, ``next``, ``time``) of one call.

        ``read`` (default: from the method name) makes the call idempotent for the HTTP client's retries.
        """
        idempotent = is_read(method) if read is None else read
        target = f"/{segment(method)}"
        try:
            for _hop in range(2):  # a moved portal answers 302 once; re-POST there rather than lose the body
                response = self.http.request("POST", target, idempotent=idempotent, json=params,
                                             allow_redirects=False)
                if not response.is_redirect:
                    return self._parse(method, response)
                target = response.headers["Location"]
                logger.warning("Bitrix24 {}: the portal moved to {}; update BITRIX_WEBHOOK_URL", method, mask(target))
        except IntegrationError as exc:
            exc.__cause__ = None  # the underlying requests error quotes the webhook URL, token included
            exc.__suppress_context__ = True
            raise
        raise PermanentError(f"Bitrix24 {method}: redirected more than once", system=SYSTEM, status=302)

    @staticmethod
    def _parse(method: str, response: requests.Response) -> dict[str, Any]:
        body = json_body(response, dict, f"Bitrix24 {method}")  # a proxy's page: transient, not the portal's word
        if "error" in body:  # an error inside a 200 answer
            raise error_from_envelope(method, None, str(body["error"]), str(body.get("error_description") or ""))
        if "result" not in body:
            raise PermanentError(f"Bitrix24 {method}: answer without result", system=SYSTEM, details=mask(str(body)))
        return body

    def batch(self, calls: dict[str, tuple[str, dict[str, Any]]], *, halt: bool = False) -> BatchResult:
        """Run up to 50 calls in one request; ``halt`` stops at the first failing command.

        Later commands may refer to earlier results with ``"$result[key][field]"`` values.
        """
        if len(calls) > BATCH_LIMIT:
            raise ValueError(f"a Bitrix24 batch holds at most {BATCH_LIMIT} calls, got {len(calls)}")
        commands = {key: f"{method}?{php_query(params)}" for key, (method, params) in calls.items()}
        read = all(is_read(method) for method, _ in calls.values())
        body = self.envelope("batch", {"halt": int(halt), "cmd": commands}, read=read)["result"]
        errors = {
            key: error_from_envelope(calls[key][0], None, str(e.get("error")), str(e.get("error_description") or ""))
            for key, e in _as_dict(body.get("result_error")).items()
            if key in calls
        }
        totals = {key: int(value) for key, value in _as_dict(body.get("result_total")).items()}
        return BatchResult(_as_dict(body.get("result")), errors, totals)

    # --- what the handler and tracker use -------------------------------------------------------------

    def task_listed(self, task_id: int | str) -> bool:
        """True when ``tasks.task.list`` filtered by ID lists the task (a second opinion to ``tasks.task.get``)."""
        params = {"filter": {"ID": int(task_id)}, "select": ["ID"]}
        listed = _as_dict(self.call("tasks.task.list", params).get("tasks")).values()
        return any(str(task.get("id") or task.get("ID")) == str(int(task_id)) for task in listed)

    def tasks_by_id(self, task_ids: list[int], select: list[str]) -> dict[str, dict[str, Any]]:
        """The tasks among ``task_ids`` that the portal lists, by ID, in one ``batch`` request.

        Each command is a ``tasks.task.list`` filtered by up to :data:`PAGE_SIZE` IDs (an array filter
        value means "any of"), so one request answers for up to ``BATCH_LIMIT * PAGE_SIZE`` tasks. A task
        missing from the answer is deleted, out of the webhook user's reach, or not listed yet.
        """
        return self.tasks_and_results(task_ids, select, [])[0]

    def tasks_and_results(self, task_ids: list[int], select: list[str],
                          results_of: list[int]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """:meth:`tasks_by_id` plus, in the same ``batch``, ``tasks.task.result.list`` of ``results_of``
        (tasks expected to be done, e.g. named by an event): one request where a check needs two."""
        if len(task_ids) > BATCH_LIMIT * PAGE_SIZE:
            raise ValueError(f"at most {BATCH_LIMIT * PAGE_SIZE} tasks per request, got {len(task_ids)}")
        chunks = [task_ids[n : n + PAGE_SIZE] for n in range(0, len(task_ids), PAGE_SIZE)]
        if len(chunks) + len(results_of) > BATCH_LIMIT:
            raise ValueError(f"a Bitrix24 batch holds at most {BATCH_LIMIT} commands")
        commands: dict[str, tuple[str, dict[str, Any]]] = {
            str(n): ("tasks.task.list", {"filter": {"ID": chunk}, "select": ["ID", *select], "start": -1})
            for n, chunk in enumerate(chunks)}
        commands.update({f"r{task_id}": ("tasks.task.result.list", {"taskId": task_id}) for task_id in results_of})
        answer = self.batch(commands)
        found: dict[str, dict[str, Any]] = {}
        for n in range(len(chunks)):
            for task in _as_dict(_as_dict(answer.get(str(n))).get("tasks")).values():
                found[str(task.get("id") or task.get("ID"))] = task
        results = {key[1:]: list(_as_dict(value).values()) for key, value in answer.results.items() if key[:1] == "r"}
        return found, results

    def changed_tasks(self, since: str, statuses: list[str], select: list[str], max_pages: int) -> ChangedTasks:
        """The tasks in one of ``statuses`` changed after ``since`` (an ISO date with offset), oldest change
        first: ``tasks.task.list`` filtered by ``>CHANGED_DATE`` and ``REAL_STATUS``, page by page (50 each),
        at most ``max_pages`` requests."""
        params: dict[str, Any] = {"filter": {">CHANGED_DATE": since, "REAL_STATUS": statuses},
                                  "order": {"CHANGED_DATE": "asc"}, "select": ["ID", "CHANGED_DATE", *select]}
        found: list[dict[str, Any]] = []
        start = 0
        listed_at = ""
        for _page in range(max_pages):
            answer = self.envelope("tasks.task.list", {**params, "start": start})
            listed_at = listed_at or str(_as_dict(answer.get("time")).get("date_start") or "")
            found += _as_dict(_as_dict(answer["result"]).get("tasks")).values()
            if answer.get("next") is None:
                return ChangedTasks(found, True, listed_at)
            start = int(answer["next"])
        logger.warning("Bitrix24: more than {} tasks changed since {}; the next sweep goes on", len(found), since)
        return ChangedTasks(found, False, listed_at)

    def event_handlers(self) -> list[dict[str, Any]]:
        """``event.get``: the event handlers bound on the portal for this webhook or application."""
        return [h for h in (self.call("event.get") or []) if isinstance(h, dict)]

    def bind_event(self, event: str, handler: str) -> None:
        """``event.bind``; a pair bound already (by another task-creator, a moment ago) is not an error."""
        try:
            self.call("event.bind", {"event": event, "handler": handler})
        except PermanentError as exc:
            if "already bind" not in exc.message.lower():
                raise

    def results_by_task(self, task_ids: list[int]) -> dict[str, list[dict[str, Any]]]:
        """``tasks.task.result.list`` of up to ``BATCH_LIMIT`` tasks in one ``batch`` request; a task
        whose command failed is missing from the answer."""
        answer = self.batch({str(task_id): ("tasks.task.result.list", {"taskId": task_id}) for task_id in task_ids})
        return {key: list(_as_dict(value).values()) for key, value in answer.results.items()}

    def find_task_by_external_id(self, field_name: str, value: str, select: list[str] | None = None) -> dict | None:
        """The oldest task whose user field ``field_name`` equals ``value``; None only if there is none.

        Any failure raises: a lookup that did not happen must never read as "no task yet". A portal
        that ignores the filter (a field that does not exist) is detected and raised as well.
        """
        key = camel_key(field_name)
        wanted = ["ID", "TITLE", "STATUS", "RESPONSIBLE_ID", "CREATED_BY", field_name, *(select or [])]
        params = {"filter": {field_name: value}, "select": list(dict.fromkeys(wanted)), "order": {"ID": "asc"}}
        tasks = _as_dict(self.call("tasks.task.list", params).get("tasks")).values()
        strangers = [task for task in tasks if str(task.get(key)) != str(value)]
        if strangers:
            raise PermanentError(
                f"Bitrix24 tasks.task.list ignored the filter on {field_name} (task {strangers[0].get('id')} "
                f"does not match); does the task user field {field_name} exist?",
                system=SYSTEM,
            )
        found = list(tasks)
        if len(found) > 1:
            logger.warning("Bitrix24: {} tasks carry {}={}; using the oldest", len(found), field_name, value)
        return found[0] if found else None

    def add_task(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``tasks.task.add`` with UPPER_CASE ``fields``; returns the new task (camelCase keys)."""
        return self.call("tasks.task.add", {"fields": fields})["task"]

    def get_task(self, task_id: int | str, select: list[str] | None = None) -> dict[str, Any]:
        """``tasks.task.get``; a deleted task raises :class:`NotFound`."""
        params: dict[str, Any] = {"taskId": int(task_id)}
        if select:
            params["select"] = select
        return self.call("tasks.task.get", params)["task"]

    def task_results(self, task_id: int | str) -> list[dict[str, Any]]:
        """The results the person recorded (``tasks.task.result.list``), oldest first."""
        return list(_as_dict(self.call("tasks.task.result.list", {"taskId": int(task_id)})).values())

    def add_checklist_item(
        self,
        task_id: int | str,
        title: str,
        *,
        parent_id: int | None = None,
        is_complete: bool = False,
        sort_index: int | None = None,
    ) -> int:
        """One checklist row; ``parent_id=0`` starts a new checklist named ``title``. Returns its id."""
        fields: dict[str, Any] = {"TITLE": title, "IS_COMPLETE": "Y" if is_complete else "N"}
        if parent_id is not None:
            fields["PARENT_ID"] = parent_id
        if sort_index is not None:
            fields["SORT_INDEX"] = sort_index
        return int(self.call("task.checklistitem.add", {"TASKID": int(task_id), "FIELDS": fields}))

    def checklist_items(self, task_id: int | str) -> list[dict[str, Any]]:
        """The task's checklist rows (upper-case keys), to see which a crashed run already added."""
        return list(_as_dict(self.call("task.checklistitem.getlist", {"TASKID": int(task_id)})).values())

    def add_dependency(self, task_from: int | str, task_to: int | str, link_type: int = FINISH_START) -> bool:
        """Link two tasks (default finish→start); False when the link already exists."""
        params = {"taskIdFrom": int(task_from), "taskIdTo": int(task_to), "linkType": link_type}
        try:
            self.call("task.dependence.add", params)
        except PermanentError as exc:
            if exc.code == "ILLEGAL_NEW_LINK":
                return False
            raise
        return True

    def user_fields(self) -> list[dict[str, Any]]:
        """The portal's task user fields (``task.item.userfield.getlist``), enumeration values included."""
        return list(_as_dict(self.call("task.item.userfield.getlist", {})).values())

    def user(self, user_id: int | str) -> dict[str, Any] | None:
        """The user (upper-case keys) or None when the portal has no such user."""
        users = list(_as_dict(self.call("user.get", {"FILTER": {"ID": int(user_id)}})).values())
        return users[0] if users else None

    def check_user_fields(
        self, required: dict[str, str], *, enum_xml_ids: tuple[str, ...] = ("ok", "no"),
        enum_texts: tuple[Collection[str], ...] = (),
    ) -> list[UserFieldProblem]:
        """Which of ``required`` (name → USER_TYPE_ID) are missing or unfit, each with how to fix it.

        An enumeration must offer values with ``enum_xml_ids`` (checked when the portal lists them);
        ``enum_texts[i]`` (case-folded) lets a value with such a text stand in for ``enum_xml_ids[i]``: a
        portal the old Exchanger.py set up has «ДА»/«НЕТ» with arbitrary XML_IDs.
        """
        existing = {str(f.get("FIELD_NAME")).upper(): f for f in self.user_fields()}
        problems = []
        for name, type_id in required.items():
            create = _how_to_create(name, type_id, enum_xml_ids)
            definition = existing.get(name.upper())
            if definition is None:
                problems.append(UserFieldProblem(name, type_id, None, create))
                continue
            found = str(definition.get("USER_TYPE_ID"))
            multiple = str(definition.get("MULTIPLE", "N")) == "Y"
            if found != type_id or multiple:
                found_text = f"{found} (multiple)" if multiple else found
                problems.append(UserFieldProblem(name, type_id, found_text, f"delete it, then {create}"))
                continue
            if type_id == "enumeration" and isinstance(definition.get("LIST"), list):
                present = {str(item.get("XML_ID")) for item in definition["LIST"]}
                texts = {str(item.get("VALUE") or "").strip().casefold() for item in definition["LIST"]}
                absent = [xml_id for n, xml_id in enumerate(enum_xml_ids)
                          if xml_id not in present and not texts & set(enum_texts[n] if n < len(enum_texts) else ())]
                if absent:
                    fix = f"add values with XML_ID {', '.join(absent)} to it in the portal"
                    problems.append(UserFieldProblem(name, type_id, f"{found} without {', '.join(absent)}", fix))
        return problems

    def task_url(self, task_id: int | str, user_id: int | None = None) -> str:
        """The task's page on the portal (no secret in it), for people and the sent record."""
        return self.settings.task_url_template.format(
            portal=self.portal_url, user_id=segment(user_id or self.webhook_user_id), task_id=segment(task_id)
        )
