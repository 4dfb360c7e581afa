"""TicketDesk handler: one ticket per Camunda task, found again by the task id on a redelivery."""

from __future__ import annotations

from exchanger.contracts import ExternalItem, TaskMessage
from exchanger.creator.base import BaseMessageHandler, HandlerOutcome, SystemContext
from exchanger.settings import load
from ticketdesk.client import connect
from ticketdesk.settings import TicketDeskSettings


class TicketHandler(BaseMessageHandler):
    def __init__(self, context: SystemContext) -> None:
        super().__init__(context)
        self.http = connect(load(TicketDeskSettings))

    def find_existing(self, task: TaskMessage) -> ExternalItem | None:
        found = self.http.request("GET", "/tickets", params={"external_id": task.task_id}).json()
        return ExternalItem(system="ticketdesk", id=found[0]["id"]) if found else None

    def create(self, task: TaskMessage) -> HandlerOutcome:
        body = {"external_id": task.task_id, "title": task.bpmn_metadata.activity_name or task.topic_name}
        created = self.http.request("POST", "/tickets", json=body, retry=False).json()
        return ExternalItem(system="ticketdesk", id=created["id"])

    def cleanup(self) -> None:
        self.http.close()
