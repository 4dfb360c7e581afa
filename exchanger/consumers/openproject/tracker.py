"""OpenProject tracker: a work package is done when a person moves it to a closed status.

"Closed" is the status's own ``isClosed`` flag, so an instance's custom workflow (Closed, Rejected,
Done, ...) needs no setting. A work package that is gone (deleted, or hidden from the API user: the
API answers 404 for both) sends the process down its error path (``OPENPROJECT_DELETED_ERROR_CODE``),
once a filtered list confirms it is gone (a 404 from something else, a proxy say, is a failed check).

Open work packages are checked :data:`CHECK_BATCH` at a time: one ``GET /api/v3/work_packages`` with
an ``id`` filter over their ids and any status (one page). One the list does not show is read alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchanger.consumers.openproject.client import ANY_STATUS, PAGE_SIZE, OpenProjectClient
from exchanger.consumers.openproject.settings import OpenProjectSettings
from exchanger.contracts import SentRecord
from exchanger.creator.base import BaseTracker, BpmnErrorOutcome, Done, StillOpen, SystemContext, TrackerOutcome
from exchanger.settings import load

CHECK_BATCH = PAGE_SIZE  # work packages per check request: one page of the id-filtered list


class OpenProjectTracker(BaseTracker):
    def __init__(self, context: SystemContext, *, settings: OpenProjectSettings | None = None,
                 client: OpenProjectClient | None = None) -> None:
        super().__init__(context)
        self.settings = settings or load(OpenProjectSettings)
        self.client = client or OpenProjectClient(self.settings)
        self.check_interval_s = self.settings.check_interval_s
        self.batch_size = CHECK_BATCH

    def cleanup(self) -> None:
        self.client.close()

    def confirm_gone(self, record: SentRecord) -> bool:
        return not self.client.find_work_packages([{"id": {"operator": "=", "values": [str(int(record.item.id))]}},
                                                   ANY_STATUS])

    def deleted_outcome(self, record: SentRecord, reason: str) -> BpmnErrorOutcome:
        return BpmnErrorOutcome(self.settings.deleted_error_code, reason,
                                variables={"op_work_package_id": int(record.item.id)})

    def check_task_status(self, record: SentRecord) -> TrackerOutcome:
        return self._outcome(self.client.get_work_package(int(record.item.id)))

    def check_many(self, records: Sequence[SentRecord]) -> list[TrackerOutcome | None]:
        """One id-filtered list for all ``records``; ``None`` for one it does not show (or a malformed id)."""
        ids = sorted({r.item.id for r in records if r.item.id.isdigit() and r.item.id.isascii()}, key=int)
        listed = {str(wp.get("id")): wp for wp in self.client.find_work_packages(
            [{"id": {"operator": "=", "values": ids}}, ANY_STATUS])} if ids else {}
        answers: list[TrackerOutcome | None] = []
        for record in records:
            wp = listed.get(record.item.id)
            answers.append(self._outcome(wp) if wp and "status" in wp.get("_embedded", {}) else None)
        return answers

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
