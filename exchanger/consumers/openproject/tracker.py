"""OpenProject tracker: a work package is done when a person moves it to a closed status.

"Closed" is the status's own ``isClosed`` flag, so an instance's custom workflow (Closed, Rejected,
Done, ...) needs no setting. A work package that is gone (deleted, or hidden from the API user: the
API answers 404 for both) sends the process down its error path (``OPENPROJECT_DELETED_ERROR_CODE``),
once a filtered list confirms it is gone (a 404 from something else, a proxy say, is a failed check).
"""

from __future__ import annotations

from exchanger.consumers.openproject.client import ANY_STATUS, OpenProjectClient
from exchanger.consumers.openproject.settings import OpenProjectSettings
from exchanger.contracts import SentRecord
from exchanger.creator.base import BaseTracker, BpmnErrorOutcome, Done, StillOpen, SystemContext, TrackerOutcome
from exchanger.settings import load


class OpenProjectTracker(BaseTracker):
    def __init__(self, context: SystemContext, *, settings: OpenProjectSettings | None = None,
                 client: OpenProjectClient | None = None) -> None:
        super().__init__(context)
        self.settings = settings or load(OpenProjectSettings)
        self.client = client or OpenProjectClient(self.settings)
        self.check_interval_s = self.settings.check_interval_s

    def cleanup(self) -> None:
        self.client.close()

    def confirm_gone(self, record: SentRecord) -> bool:
        return not self.client.find_work_packages([{"id": {"operator": "=", "values": [str(int(record.item.id))]}},
                                                   ANY_STATUS])

    def deleted_outcome(self, record: SentRecord, reason: str) -> BpmnErrorOutcome:
        return BpmnErrorOutcome(self.settings.deleted_error_code, reason,
                                variables={"op_work_package_id": int(record.item.id)})

    def check_task_status(self, record: SentRecord) -> TrackerOutcome:
        wp_id = int(record.item.id)
        wp = self.client.get_work_package(wp_id)
        status = wp["_embedded"]["status"]
        if not status.get("isClosed"):
            return StillOpen(f"status {status.get('name')}")
        return Done(variables={
            "op_work_package_id": wp_id,
            "op_status": status.get("name"),
            "op_url": self.client.work_package_url(wp_id),
            "op_percentage_done": wp.get("percentageDone"),
        })
