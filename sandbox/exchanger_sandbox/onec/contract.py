"""The fake 1C infobase as the contract suite drives it (:mod:`exchanger_sandbox.contract`)."""

from __future__ import annotations

from typing import Any

import requests
from requests.auth import HTTPBasicAuth

from exchanger.contracts import TaskMessage
from exchanger_sandbox.contract import ContractFake
from exchanger_sandbox.http import SandboxServer
from exchanger_sandbox.onec.server import OneCServer, start
from exchanger_sandbox.onec.state import EXTERNAL_ID_ATTRIBUTE, PAYMENT_REQUEST


class OneCContract(ContractFake):
    """1C has no rate limit of its own; the web server in front of it answers 429 (the default fault)."""

    system = "1c"
    topic = "1c_create_document"
    create_path = PAYMENT_REQUEST

    def start(self) -> SandboxServer:
        return start(0)

    def settings_env(self, server: SandboxServer) -> dict[str, str]:
        assert isinstance(server, OneCServer)
        return server.settings_env

    def properties(self) -> dict[str, str]:
        return {"entity": PAYMENT_REQUEST, "field.СуммаДокумента": "${amount}", "field.Комментарий": "contract"}

    def variables(self) -> dict[str, Any]:
        return {"amount": 100.5}

    def bad_task(self, task_id: str) -> TaskMessage:
        return self.make_task(task_id, {"field.Комментарий": "no entity"}, {})  # which resource?

    def items(self, server: SandboxServer, task_id: str) -> list[str]:
        assert isinstance(server, OneCServer)
        with server.infobase.lock:
            return [key for key, record in server.infobase.records[PAYMENT_REQUEST].items()
                    if record.get(EXTERNAL_ID_ATTRIBUTE) == task_id]

    def finish(self, server: SandboxServer, item_id: str) -> None:
        self._call(server, "POST", f"{PAYMENT_REQUEST}(guid'{item_id}')/Post")  # an accountant posts it

    def delete(self, server: SandboxServer, item_id: str) -> None:
        self._call(server, "DELETE", f"{PAYMENT_REQUEST}(guid'{item_id}')")

    @staticmethod
    def _call(server: SandboxServer, method: str, resource: str) -> None:
        assert isinstance(server, OneCServer)
        env = server.settings_env
        auth = HTTPBasicAuth(env["ONEC_USERNAME"].encode(), env["ONEC_PASSWORD"].encode())  # Cyrillic logins
        requests.request(method, f"{server.base_url}/{resource}", params={"$format": "json"}, auth=auth,
                         timeout=5).raise_for_status()


CONTRACT = OneCContract()
