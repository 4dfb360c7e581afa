"""TicketDesk tracker: a closed ticket completes the Camunda task with its resolution."""

from __future__ import annotations

from exchanger.contracts import SentRecord
from exchanger.creator.base import Done, StillOpen, TrackerOutcome
from exchanger.creator.tracked import TrackedTracker
from exchanger.http_client import HttpClient
from ticketdesk import SYSTEM
from ticketdesk.client import connect, find, ticket
from ticketdesk.settings import TicketDeskSettings


class TicketTracker(TrackedTracker[TicketDeskSettings, HttpClient]):
    spec = SYSTEM
    settings_class = TicketDeskSettings
    client_factory = connect

    def check(self, record: SentRecord) -> TrackerOutcome:
        found = ticket(self.client, record.item.id)
        if found["status"] != "closed":
            return StillOpen(found["status"])
        return Done(variables={"resolution": found["resolution"]})

    def confirm_gone(self, record: SentRecord) -> bool:
        """A 404 is a deletion only when the search by the task id no longer finds the ticket either."""
        return not find(self.client, record.task.task_id)

    def deleted_variables(self, record: SentRecord) -> dict[str, str]:
        return {"ticket_id": record.item.id}
