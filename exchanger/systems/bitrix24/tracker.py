"""Bitrix24 tracker: waits until the person finishes the task, then completes the Camunda task.

Open tasks are checked many at a time (``BITRIX_CHECK_BATCH_SIZE``, up to 2,500): one ``batch``
request of ``tasks.task.list`` commands filtered by 50 IDs each, with a minimal ``select``, and one
``batch`` of ``tasks.task.result.list`` for those found done; a task the list does not show is asked
about alone with ``tasks.task.get`` (so a deletion still needs proof). Status 5 (completed), and 4 (awaiting
control) with ``BITRIX_COMPLETE_ON_AWAITING_CONTROL``, is done: the Camunda task completes with
``bitrix_task_id``, ``bitrix_task_status``, ``bitrix_task_url``, ``bitrix_result`` (the texts of
``tasks.task.result.list``, blank-line separated), ``bitrix_closed_by`` and ``bitrix_closed_at``.

When the handler asked a yes/no question (or the task itself says ``UF_RESULT_EXPECTED``, as the tasks
the old Exchanger.py tool created do), the answer field's enumeration value (an enum ID, mapped to its
XML_ID and text through the task user-field list, cached ``BITRIX_USER_FIELDS_CACHE_S`` and read again
when an ID is unknown) sets the variable named after the activity id to ``"ok"`` or ``"no"``, for a
gateway ``${Activity_x == "ok"}``. A value means yes when its XML_ID is ``BITRIX_ANSWER_OK_XML_ID`` or
its text one of ``BITRIX_ANSWER_OK_TEXTS`` (the old portal's «ДА»), no likewise («НЕТ»). A task completed
without an answer (or with a value that is neither) counts as ``"no"`` with a warning: the person closed
it without approving, and stopping the process with an incident would help nobody.

Pending, in progress and deferred (6) keep waiting. A deleted task is the BPMN error
``BITRIX_DELETED_ERROR_CODE``, or a failure with ``BITRIX_DELETED_AS_FAILURE``; the portal answers
"Action not allowed" for a missing task and for a missing right alike, so a deletion counts only
when ``tasks.task.list`` filtered by the ID no longer lists it (else the check failed: an incident
after ``CREATOR_MAX_CHECK_ERRORS``).

**Sweeps and events** (:mod:`exchanger.creator.item_events`). Every ``BITRIX_SWEEP_INTERVAL_S`` one
``tasks.task.list`` filtered by ``>CHANGED_DATE`` lists the tasks changed since the last sweep; the
portal's ``ONTASKUPDATE`` calls (``auth[application_token]`` = ``BITRIX_EVENTS_TOKEN``) name one task
each. Either way ``finished`` reads those tasks like a batched check and rebuilds their Camunda task
from what the handler stored in them: the Camunda task id (``BITRIX_EXTERNAL_ID_FIELD``) and ``XML_ID``
``<process instance>:<activity>``. The full checks of every open task (``BITRIX_CHECK_INTERVAL_S``)
remain as the safety net. With ``BITRIX_EVENTS_URL`` the tracker binds ``OnTaskUpdate`` there
(``event.bind``, once; ``subscribe_events``).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from loguru import logger

from exchanger.contracts import ExternalItem, SentRecord, TaskMessage
from exchanger.creator.base import (
    Changes,
    Done,
    EventRefused,
    Finished,
    StillOpen,
    SystemContext,
    TrackerOutcome,
)
from exchanger.creator.tracked import TrackedTracker
from exchanger.systems.bitrix24 import SYSTEM as SPEC
from exchanger.systems.bitrix24.client import BATCH_LIMIT, Bitrix24Client, camel_key
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger.variables import parse_date

COMPLETED = "5"
AWAITING_CONTROL = "4"
STATUS_NAMES = {"1": "new", "2": "pending", "3": "in progress", "4": "awaiting control", "5": "completed",
                "6": "deferred", "7": "declined"}  # fmt: skip
SELECT = ["ID", "STATUS", "CLOSED_BY", "CLOSED_DATE"]
OK, NO = "ok", "no"
TRUE_FLAGS = ("1", "y", "true")  # a boolean user field as tasks.task.get returns it
TASK_EVENTS = ("ONTASKUPDATE", "ONTASKADD")  # the calls that may mean "look at this task"
BOUND_EVENT = "OnTaskUpdate"  # what subscribe_events binds (a task is finished by an update)


class Bitrix24Tracker(TrackedTracker[Bitrix24Settings, Bitrix24Client]):
    """Checks a Bitrix24 task created by :class:`~exchanger.systems.bitrix24.handler.Bitrix24TaskHandler`."""

    spec = SPEC
    settings_class = Bitrix24Settings
    client_factory = Bitrix24Client

    def __init__(
        self,
        context: SystemContext,
        *,
        settings: Bitrix24Settings | None = None,
        client: Bitrix24Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(context, settings=settings, client=client)
        self.sweep_interval_s = self.settings.sweep_interval_s
        self.done_statuses = {COMPLETED}
        if self.settings.complete_on_awaiting_control:
            self.done_statuses.add(AWAITING_CONTROL)
        self._clock = clock
        self._answers: dict[str, tuple[str, str]] = {}  # enum ID of the answer field → (XML_ID, text)
        self._answers_read_at: float | None = None
        self._answers_lock = threading.Lock()

    def check(self, record: SentRecord) -> TrackerOutcome:
        task = self.client.get_task(record.item.id, select=self._select())
        if str(task.get("status")) not in self.done_statuses:
            return self._outcome(record, task, [])
        return self._outcome(record, task, self.client.task_results(record.item.id))

    def check_many(self, records: Sequence[SentRecord]) -> list[TrackerOutcome | None]:
        """One ``batch`` of ``tasks.task.list`` by IDs for all ``records``, one more for the results of
        those that are done. ``None`` (checked alone, so that its error is its own) for a task the list
        does not show, a malformed item id, or an answer this tracker cannot read."""
        ids = {n: int(r.item.id) for n, r in enumerate(records) if r.item.id.isdigit() and r.item.id.isascii()}
        tasks = self.client.tasks_by_id(sorted(set(ids.values())), self._select()) if ids else {}
        done = sorted({task_id for task_id in ids.values()
                       if str(tasks.get(str(task_id), {}).get("status")) in self.done_statuses})
        results: dict[str, list[dict[str, Any]]] = {}
        for n in range(0, len(done), BATCH_LIMIT):
            results.update(self.client.results_by_task(done[n : n + BATCH_LIMIT]))
        answers: list[TrackerOutcome | None] = []
        for n, record in enumerate(records):
            key = str(ids.get(n, ""))
            task = tasks.get(key)
            if task is None or (ids[n] in done and key not in results):
                answers.append(None)
                continue
            try:
                answers.append(self._outcome(record, task, results.get(key, [])))
            except (ValueError, TypeError, KeyError):  # e.g. a date it cannot parse: that record's own error
                answers.append(None)
        return answers

    def _select(self) -> list[str]:
        return [*SELECT, self.settings.answer_field, self.settings.result_expected_field]

    def _outcome(self, record: SentRecord, task: dict[str, Any], results: list[dict[str, Any]]) -> TrackerOutcome:
        """What the task's state means: still open, or done with its variables (``results`` of a done one)."""
        item = record.item
        status = str(task.get("status"))
        if status not in self.done_statuses:
            return StillOpen(note=f"status {status} ({STATUS_NAMES.get(status, 'unknown')})")
        answer_key = camel_key(self.settings.answer_field)
        own_flag = str(task.get(camel_key(self.settings.result_expected_field)) or "").strip().lower()
        expected = bool(item.data.get("result_expected")) or own_flag in TRUE_FLAGS
        closed_at = task.get("closedDate")
        variables: dict[str, Any] = {
            "bitrix_task_id": int(item.id),
            "bitrix_task_status": int(status),
            "bitrix_task_url": item.url,
            "bitrix_result": "\n\n".join(str(r.get("text") or "") for r in results if r.get("text")),
            "bitrix_closed_by": int(task["closedBy"]) if str(task.get("closedBy") or "").isdigit() else None,
            "bitrix_closed_at": parse_date(closed_at) if closed_at else None,
        }
        if expected:
            activity_id = record.task.activity_id
            variables[activity_id] = self._answer(task.get(answer_key), item.id, activity_id)
        logger.info("Bitrix24 task {} is {}; completing Camunda task {}", item.id, STATUS_NAMES[status],
                    record.task.task_id)
        return Done(variables=variables)

    def confirm_gone(self, record: SentRecord) -> bool:
        return not self.client.task_listed(record.item.id)

    def deleted_variables(self, record: SentRecord) -> dict[str, Any]:
        return {"bitrix_task_id": int(record.item.id)}

    # --- the yes/no answer --------------------------------------------------------------------------

    def _answer(self, value: Any, task_id: str, activity_id: str) -> str:
        """``"ok"`` or ``"no"`` for the answer field's enum ID ``value``; no answer counts as ``"no"``."""
        xml_id, text = self.answer_value(str(value)) if value not in (None, "", "0", 0, False) else (None, "")
        if xml_id == self.settings.answer_ok_xml_id or text.strip().casefold() in self.settings.ok_texts:
            return OK
        if xml_id == self.settings.answer_no_xml_id or text.strip().casefold() in self.settings.no_texts:
            return NO
        logger.warning("Bitrix24 task {} was completed with answer {!r} (XML_ID {!r}, text {!r}), neither {} nor {}; "
                       "{} = \"no\"", task_id, value, xml_id, text, self.settings.answer_ok_xml_id,
                       self.settings.answer_no_xml_id, activity_id)
        return NO

    def answer_xml_id(self, enum_id: str) -> str | None:
        """The XML_ID of the answer field's value ``enum_id``."""
        return self.answer_value(enum_id)[0]

    def answer_value(self, enum_id: str) -> tuple[str | None, str]:
        """(XML_ID, text) of the answer field's value ``enum_id``; the field list is read again when stale
        or when the ID is unknown (a value added on the portal since)."""
        with self._answers_lock:
            stale = self._answers_read_at is None or (
                self._clock() - self._answers_read_at > self.settings.user_fields_cache_s
            )
            if stale or enum_id not in self._answers:
                self._answers = self._read_answers()
                self._answers_read_at = self._clock()
            xml_id, text = self._answers.get(enum_id, (None, ""))
            return xml_id, text

    def _read_answers(self) -> dict[str, tuple[str, str]]:
        wanted = self.settings.answer_field.upper()
        for definition in self.client.user_fields():
            if str(definition.get("FIELD_NAME")).upper() == wanted:
                return {str(v.get("ID")): (str(v.get("XML_ID")), str(v.get("VALUE") or ""))
                        for v in definition.get("LIST") or []}
        logger.warning("Bitrix24 has no task user field {}; answers cannot be read", wanted)
        return {}

    # --- sweeps and pushed events (module docstring) ----------------------------------------------------

    def parse_event(self, headers: Mapping[str, str], body: bytes) -> list[str]:
        """The task id of an ``ONTASKUPDATE`` (or ``ONTASKADD``) call whose application token is ours."""
        token = self.settings.events_token
        if not token.get_secret_value():
            raise EventRefused("Bitrix24 event calls are off: BITRIX_EVENTS_TOKEN is not set", 404)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)

        def field(name: str) -> str:
            return (form.get(name) or [""])[0].strip()

        sent = field("auth[application_token]").encode()
        if not hmac.compare_digest(sent, token.get_secret_value().encode()):
            raise EventRefused("auth[application_token] is not BITRIX_EVENTS_TOKEN")
        if field("event").upper() not in TASK_EVENTS:
            return []  # another event bound to the same URL: nothing to look at
        task_id = field("data[FIELDS_AFTER][ID]") or field("data[FIELDS_BEFORE][ID]")
        return [task_id] if task_id.isdigit() and task_id.isascii() else []

    def changed_since(self, since: datetime) -> Changes:
        """The tasks changed after ``since`` that are done and were created by Exchanger (one page of 50 each
        request, oldest change first). Only done ones are listed: open tasks change all the time (comments,
        edits, a thousand created in a migration) and would fill the pages before a finished one. Cut at
        ``BITRIX_SWEEP_MAX_PAGES``, the next sweep resumes a second before the last change listed
        (``>CHANGED_DATE`` has seconds and is strict); else from the portal's clock (``time.date_start``)."""
        key = camel_key(self.settings.external_id_field)
        listed = self.client.changed_tasks(since.astimezone(UTC).isoformat(timespec="seconds"),
                                           sorted(self.done_statuses), ["STATUS", self.settings.external_id_field],
                                           self.settings.sweep_max_pages)
        tasks = listed.tasks
        ids = [str(task.get("id")) for task in tasks if str(task.get("status")) in self.done_statuses and task.get(key)]
        last = str(tasks[-1].get("changedDate") or "") if tasks and not listed.complete else ""
        return Changes(ids, parse_date(last) - timedelta(seconds=1) if last else None,
                       as_of=parse_date(listed.listed_at) if listed.listed_at else None)

    def finished(self, item_ids: Sequence[str]) -> list[Finished]:
        """The done tasks among ``item_ids``, each with the Camunda task it answers; a task without Exchanger's
        marks (not ours) is left out. Up to 25 ids (an event, a sweep): one ``batch`` with their results;
        more: two, as a batched check."""
        ids = sorted({int(i) for i in item_ids if i.isdigit() and i.isascii()})[: self.batch_size]
        select = [*self._select(), self.settings.external_id_field, "XML_ID", "CREATED_DATE"]
        # the few items of an event or a sweep are most likely done: their results come in the same batch
        eager = ids if len(ids) <= BATCH_LIMIT // 2 else []
        tasks, results = self.client.tasks_and_results(ids, select, eager) if ids else ({}, {})
        done = {key: (task, record) for key, task in tasks.items()
                if str(task.get("status")) in self.done_statuses and (record := self._record_of(key, task))}
        keys = [int(key) for key in done if key not in results]
        for n in range(0, len(keys), BATCH_LIMIT):
            results.update(self.client.results_by_task(keys[n : n + BATCH_LIMIT]))
        found: list[Finished] = []
        for key, (task, record) in done.items():
            outcome = self._outcome(record, task, results.get(key, []))
            if not isinstance(outcome, StillOpen):
                found.append(Finished(record, outcome))
        return found

    def _record_of(self, key: str, task: dict[str, Any]) -> SentRecord | None:
        """The tracking record the handler made for this task, rebuilt from the task's own fields."""
        camunda_id = str(task.get(camel_key(self.settings.external_id_field)) or "").strip()
        instance, _, activity = str(task.get("xmlId") or "").rpartition(":")
        if not camunda_id or not instance or not activity:
            return None
        try:
            created = parse_date(str(task["createdDate"])) if task.get("createdDate") else None
            message = TaskMessage(task_id=camunda_id, topic_name="bitrix_create_task", system="bitrix24",
                                  worker_id="", process_instance_id=instance, activity_id=activity,
                                  **({"created_at": created} if created else {}))
        except ValueError:  # not a Camunda id (a task someone marked by hand): not ours to answer
            return None
        item = ExternalItem(system="bitrix24", id=key, url=self.client.task_url(key))
        return SentRecord(task=message, item=item)

    def subscribe_events(self) -> str | None:
        """``event.bind`` of ``OnTaskUpdate`` to ``BITRIX_EVENTS_URL`` unless ``event.get`` lists it already."""
        url = self.settings.events_url.strip()
        if not url:
            return None
        bound = {(str(h.get("event")).upper(), str(h.get("handler"))) for h in self.client.event_handlers()}
        if (BOUND_EVENT.upper(), url) in bound:
            return f"{BOUND_EVENT} is bound to {url}"
        self.client.bind_event(BOUND_EVENT, url)
        return f"bound {BOUND_EVENT} to {url}"
