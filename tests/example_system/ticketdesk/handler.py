"""TicketDesk handler: one ticket per Camunda task, found again by the task id on a redelivery."""

from __future__ import annotations

from exchanger.contracts import ExternalItem, TaskMessage
from exchanger.creator.base import HandlerOutcome
from exchanger.creator.tracked import TrackedHandler
from exchanger.http_client import HttpClient
from ticketdesk import SYSTEM
from ticketdesk.client import connect, find
from ticketdesk.settings import TicketDeskSettings


class TicketHandler(TrackedHandler[TicketDeskSettings, HttpClient]):
    spec = SYSTEM
    settings_class = TicketDeskSettings
    client_factory = connect

    def find_existing(self, task: TaskMessage) -> ExternalItem | None:
        found = find(self.client, task.task_id)
        return ExternalItem(system="ticketdesk", id=found[0]["id"]) if found else None

    def create(self, task: TaskMessage) -> HandlerOutcome:
        body = {"external_id": task.task_id, "title": task.bpmn_metadata.activity_name or task.topic_name}
        created = self.client.request("POST", "/tickets", idempotent=False, json=body).json()
        return ExternalItem(system="ticketdesk", id=created["id"])
