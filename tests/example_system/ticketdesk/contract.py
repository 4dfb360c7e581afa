"""The fake TicketDesk as the contract suite drives it: all a new system writes to get the suite."""

from __future__ import annotations

import requests

from exchanger_sandbox.contract import ContractFake
from exchanger_sandbox.http import SandboxServer
from ticketdesk.fake import TicketDeskApp, start


class TicketDeskContract(ContractFake):
    system = "ticketdesk"
    topic = "desk_open_ticket"
    create_path = "/tickets"

    def start(self) -> SandboxServer:
        return start(0)

    def settings_env(self, server: SandboxServer) -> dict[str, str]:
        return {"TICKETDESK_BASE_URL": server.url}

    def items(self, server: SandboxServer, task_id: str) -> list[str]:
        assert isinstance(server.app, TicketDeskApp)
        return [t["id"] for t in list(server.app.tickets.values()) if t["external_id"] == task_id]

    def finish(self, server: SandboxServer, item_id: str) -> None:
        requests.post(f"{server.url}/tickets/{item_id}/close", json={"resolution": "fixed"},
                      timeout=5).raise_for_status()

    def delete(self, server: SandboxServer, item_id: str) -> None:
        requests.delete(f"{server.url}/tickets/{item_id}", timeout=5).raise_for_status()


CONTRACT = TicketDeskContract()
