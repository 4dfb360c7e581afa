"""The fake portal as the contract suite drives it (:mod:`exchanger_sandbox.contract`)."""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from exchanger.contracts import TaskMessage
from exchanger_sandbox.bitrix24.server import PortalServer, start
from exchanger_sandbox.contract import ContractFake
from exchanger_sandbox.http import SandboxServer

EXTERNAL_ID_FIELD = "UF_CAMUNDA_ID_EXTERNAL_TASK"  # BITRIX_EXTERNAL_ID_FIELD's default


class Bitrix24Contract(ContractFake):
    system = "bitrix24"
    topic = "bitrix_create_task"
    create_path = "tasks.task.add"
    # the portal's leaky bucket overflowing: HTTP 503 with QUERY_LIMIT_EXCEEDED, no Retry-After
    rate_limit: ClassVar[dict[str, Any]] = {
        "status": 503, "body": {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}}

    def start(self) -> SandboxServer:
        return start(0)

    def settings_env(self, server: SandboxServer) -> dict[str, str]:
        assert isinstance(server, PortalServer)
        return {"BITRIX_WEBHOOK_URL": server.webhook_url}

    def bad_task(self, task_id: str) -> TaskMessage:
        return self.make_task(task_id, {"RESPONSIBLE_ID": "the boss"}, {})  # not a user id

    def items(self, server: SandboxServer, task_id: str) -> list[str]:
        assert isinstance(server, PortalServer)
        with server.portal.lock:
            return [str(t["ID"]) for t in server.portal.tasks.values() if t.get(EXTERNAL_ID_FIELD) == task_id]

    def finish(self, server: SandboxServer, item_id: str) -> None:
        self._rest(server, "tasks.task.complete", {"taskId": int(item_id)})

    def delete(self, server: SandboxServer, item_id: str) -> None:
        self._rest(server, "tasks.task.delete", {"taskId": int(item_id)})

    @staticmethod
    def _rest(server: SandboxServer, method: str, params: dict[str, Any]) -> None:
        assert isinstance(server, PortalServer)
        requests.post(server.webhook_url + method, json=params, timeout=5).raise_for_status()


CONTRACT = Bitrix24Contract()
