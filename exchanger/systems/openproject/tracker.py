"""OpenProject tracker: a work package is done when a person moves it to a closed status.

"Closed" is the status's own ``isClosed`` flag, so an instance's custom workflow (Closed, Rejected,
Done, ...) needs no setting. A work package that is gone (deleted, or hidden from the API user: the
API answers 404 for both) sends the process down its error path (``OPENPROJECT_DELETED_ERROR_CODE``),
once a filtered list confirms it is gone (a 404 from something else, a proxy say, is a failed check).

Open work packages are checked ``OPENPROJECT_CHECK_BATCH_SIZE`` (at most one page, 100) at a time: one
``GET /api/v3/work_packages`` with an ``id`` filter over their ids and any status. One the list does not
show is read alone.

Those checks are the slow safety net (``OPENPROJECT_CHECK_INTERVAL_S``). What makes a closure seen
within seconds are the item events of :mod:`exchanger.creator.item_events`: every
``OPENPROJECT_SWEEP_INTERVAL_S`` a **change sweep** (:meth:`changed_since`) lists the work packages closed
since the previous sweep (one request for any number of open ones), and an OpenProject **webhook**
(:meth:`parse_event`, :mod:`exchanger.systems.openproject.webhooks`) says at once which one changed.
Both only name work packages; :meth:`finished` reads them and rebuilds each one's Camunda task from the
external-id field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from loguru import logger

from exchanger.contracts import SentRecord, TaskMessage
from exchanger.creator.base import Changes, Done, Finished, StillOpen, TrackerOutcome
from exchanger.creator.tracked import TrackedTracker
from exchanger.secrets import register_secret
from exchanger.systems.openproject import SYSTEM as SPEC
from exchanger.systems.openproject import webhooks
from exchanger.systems.openproject.client import ANY_STATUS, SYSTEM, OpenProjectClient
from exchanger.systems.openproject.handler import CREATE_TOPIC, work_package_item
from exchanger.systems.openproject.settings import PAGE_SIZE, OpenProjectSettings


class OpenProjectTracker(TrackedTracker[OpenProjectSettings, OpenProjectClient]):
    spec = SPEC
    settings_class = OpenProjectSettings
    client_factory = OpenProjectClient

    def setup(self) -> None:
        self.sweep_interval_s = self.settings.sweep_interval_s
        self.webhook_secret = self.settings.webhook_secret.get_secret_value()
        if self.webhook_secret:
            register_secret(self.webhook_secret)  # also when settings were built without load()

    def confirm_gone(self, record: SentRecord) -> bool:
        return not self.client.find_work_packages([{"id": {"operator": "=", "values": [str(int(record.item.id))]}},
                                                   ANY_STATUS])

    def deleted_variables(self, record: SentRecord) -> dict[str, Any]:
        return {"op_work_package_id": int(record.item.id)}

    def check(self, record: SentRecord) -> TrackerOutcome:
        return self._outcome(self.client.get_work_package(int(record.item.id)))

    def check_many(self, records: Sequence[SentRecord]) -> list[TrackerOutcome | None]:
        """One id-filtered list for all ``records``; ``None`` for one it does not show (or a malformed id)."""
        listed = self._listed([r.item.id for r in records])
        answers: list[TrackerOutcome | None] = []
        for record in records:
            wp = listed.get(record.item.id)
            answers.append(self._outcome(wp) if wp and "status" in wp.get("_embedded", {}) else None)
        return answers

    def _listed(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The work packages of ``item_ids`` (any status) by id, one page of :data:`PAGE_SIZE` ids a request."""
        ids = sorted({i for i in item_ids if i.isdigit() and i.isascii()}, key=int)
        listed: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = ids[start:start + PAGE_SIZE]
            listed.update((str(wp.get("id")), wp) for wp in self.client.find_work_packages(
                [{"id": {"operator": "=", "values": chunk}}, ANY_STATUS]))
        return listed

    # --- item events: change sweeps and webhooks (exchanger.creator.item_events) ------------------

    def changed_since(self, since: datetime) -> Changes:
        """The work packages Exchanger created that were closed at or after ``since`` (every page: a sweep
        is never cut)."""
        return Changes([str(wp["id"]) for wp in self.client.closed_since(since, self.settings.external_id_field)])

    def parse_event(self, headers: Mapping[str, str], body: bytes) -> list[str]:
        """The work package of a webhook call whose ``X-OP-Signature`` matches ``OPENPROJECT_WEBHOOK_SECRET``."""
        webhooks.verify(self.webhook_secret, headers, body)
        return webhooks.work_package_ids(body)

    def finished(self, item_ids: Sequence[str]) -> list[Finished]:
        """The closed ones among ``item_ids``, read now, each with its Camunda task rebuilt from the
        external-id field (the task id is all the worker needs to complete it). A work package that is open,
        gone, listed without its status or not created by Exchanger is left out: its tracking record (or
        nothing, if it has none) takes care of it."""
        found: list[Finished] = []
        for wp in self._listed(item_ids).values():
            if "status" not in wp.get("_embedded", {}):
                continue
            outcome = self._outcome(wp)
            task_id = wp.get(self.settings.external_id_field)
            if isinstance(outcome, StillOpen) or not task_id:
                continue
            try:
                task = TaskMessage(task_id=str(task_id), topic_name=CREATE_TOPIC, system=SYSTEM, worker_id="",
                                   process_instance_id="")
            except ValueError as exc:  # pydantic's ValidationError: not an id
                logger.warning("OpenProject: work package {} holds {!r} as its Camunda task id ({})", wp["id"],
                               task_id, exc)
                continue
            found.append(Finished(SentRecord(task=task, item=work_package_item(self.client, wp)), outcome))
        return found

    def _outcome(self, wp: dict[str, Any]) -> TrackerOutcome:
        wp_id = int(wp["id"])
        status = wp["_embedded"]["status"]
        if not status.get("isClosed"):
            return StillOpen(f"status {status.get('name')}")
        return Done(variables={
            "op_work_package_id": wp_id,
            "op_status": status.get("name"),
            "op_url": self.client.work_package_url(wp_id),
            "op_percentage_done": wp.get("percentageDone"),
        })
