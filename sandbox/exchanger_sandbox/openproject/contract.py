"""The fake OpenProject as the contract suite drives it (:mod:`exchanger_sandbox.contract`)."""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from exchanger.contracts import TaskMessage
from exchanger_sandbox.contract import ContractFake
from exchanger_sandbox.http import SandboxServer
from exchanger_sandbox.openproject.server import OpenProjectServer, start
from exchanger_sandbox.openproject.state import EXTERNAL_ID_FIELD

CLOSED_STATUS = "/api/v3/statuses/5"  # "Closed" of the fake's seeded workflow (isClosed)
THROTTLED = "urn:openproject-org:api:v3:errors:Throttled"


class OpenProjectContract(ContractFake):
    system = "openproject"
    topic = "op_create_task"
    create_path = "/work_packages"
    rate_limit: ClassVar[dict[str, Any]] = {
        "status": 429, "headers": {"Retry-After": "1"},
        "body": {"_type": "Error", "errorIdentifier": THROTTLED, "message": "Too many requests."}}

    def start(self) -> SandboxServer:
        return start(0)

    def settings_env(self, server: SandboxServer) -> dict[str, str]:
        assert isinstance(server, OpenProjectServer)
        return server.settings_env

    def bad_task(self, task_id: str) -> TaskMessage:
        return self.make_task(task_id, {"project": "nowhere"}, {})  # no such project

    def items(self, server: SandboxServer, task_id: str) -> list[str]:
        assert isinstance(server, OpenProjectServer)
        with server.state.lock:
            return [str(wp.id) for wp in server.state.work_packages.values()
                    if wp.custom_values.get(EXTERNAL_ID_FIELD) == task_id]

    def finish(self, server: SandboxServer, item_id: str) -> None:
        session = self._session(server)
        url = f"{server.url}/api/v3/work_packages/{item_id}"
        lock = session.get(url, timeout=5).json()["lockVersion"]
        session.patch(url, json={"lockVersion": lock, "_links": {"status": {"href": CLOSED_STATUS}}},
                      timeout=5).raise_for_status()

    def delete(self, server: SandboxServer, item_id: str) -> None:
        self._session(server).delete(f"{server.url}/api/v3/work_packages/{item_id}", timeout=5).raise_for_status()

    @staticmethod
    def _session(server: SandboxServer) -> requests.Session:
        assert isinstance(server, OpenProjectServer)
        session = requests.Session()
        session.auth = ("apikey", server.settings_env["OPENPROJECT_API_KEY"])
        return session


CONTRACT = OpenProjectContract()
