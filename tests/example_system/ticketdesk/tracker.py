"""TicketDesk tracker: a closed ticket completes the Camunda task with its resolution."""

from __future__ import annotations

from exchanger.contracts import SentRecord
from exchanger.creator.base import BaseTracker, Done, StillOpen, SystemContext, TrackerOutcome
from exchanger.settings import load
from ticketdesk.client import connect, ticket
from ticketdesk.settings import TicketDeskSettings


class TicketTracker(BaseTracker):
    def __init__(self, context: SystemContext) -> None:
        super().__init__(context)
        settings = load(TicketDeskSettings)
        self.check_interval_s = settings.check_interval_s
        self.http = connect(settings)

    def check_task_status(self, record: SentRecord) -> TrackerOutcome:
        found = ticket(self.http, record.item.id)
        if found["status"] != "closed":
            return StillOpen(found["status"])
        return Done(variables={"resolution": found["resolution"]})

    def cleanup(self) -> None:
        self.http.close()
