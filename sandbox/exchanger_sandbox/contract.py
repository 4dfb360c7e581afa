"""What the contract suite (tests/contract) needs to know about a system's fake, declared next to the fake.

Every registered system with a tracker and a fake must pass one suite: idempotent redelivery, an
ambiguous write, a deleted item, a rate limit, 5xx answers and a bad payload, each through the real
task-creator on a real broker against the fake over HTTP. The suite finds a system's
:class:`ContractFake` in the module ``contract`` next to its fake server module (``SystemSpec.fake_server``
``x.y.server`` → ``x.y.contract``, ``CONTRACT = MyContract()``). A subclass says how to start the fake,
which settings point a daemon at it, which task creates an item, how a person finishes or deletes an
item, and how the system answers when it is overloaded; the faults themselves come from the toolkit's
``/_admin/faults`` every fake has (:class:`exchanger_sandbox.http.App`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import requests

from exchanger.contracts import BpmnMetadata, TaskMessage
from exchanger.variables import to_typed_map
from exchanger_sandbox.http import SandboxServer


class ContractFake(ABC):
    """A system's fake as the contract suite drives it."""

    system: ClassVar[str]  # the SystemSpec name
    topic: ClassVar[str]  # the topic whose task creates one tracked item
    create_path: ClassVar[str]  # part of the create request's path: where a stalled write is injected
    create_method: ClassVar[str] = "POST"  # its method (a search of the same path is not stalled)
    rate_limit: ClassVar[dict[str, Any]] = {"status": 429, "headers": {"Retry-After": "1"}}  # the system's "slow down"

    @abstractmethod
    def start(self) -> SandboxServer:
        """A fresh fake on a free loopback port."""

    @abstractmethod
    def settings_env(self, server: SandboxServer) -> dict[str, str]:
        """The environment that points the system's settings at ``server`` (as its ``cli`` prints it)."""

    def task(self, task_id: str) -> TaskMessage:
        """A task for which the handler creates one item (properties as a process designer writes them)."""
        return self.make_task(task_id, self.properties(), self.variables())

    def bad_task(self, task_id: str) -> TaskMessage:
        """A task the system cannot take (a designer's mistake): by default a topic it does not know."""
        return self.make_task(task_id, self.properties(), self.variables(), topic=f"{self.topic}_unknown")

    def properties(self) -> dict[str, str]:
        return {}

    def variables(self) -> dict[str, Any]:
        return {}

    def make_task(self, task_id: str, properties: dict[str, str], variables: dict[str, Any],
                  topic: str | None = None) -> TaskMessage:
        return TaskMessage(task_id=task_id, topic_name=topic or self.topic, system=self.system, worker_id="contract",
                           process_instance_id=f"pi-{task_id}", activity_id="Activity_Contract",
                           variables=to_typed_map(variables),
                           bpmn_metadata=BpmnMetadata(activity_name="Contract case", extension_properties=properties))

    @abstractmethod
    def items(self, server: SandboxServer, task_id: str) -> list[str]:
        """Ids of the items on the fake that hold ``task_id`` (read from its state, not through the API,
        so that the read takes no injected fault)."""

    @abstractmethod
    def finish(self, server: SandboxServer, item_id: str) -> None:
        """What a person does to finish the item, through the system's API."""

    @abstractmethod
    def delete(self, server: SandboxServer, item_id: str) -> None:
        """Delete the item as someone in the system would."""

    # --- the toolkit's admin API, the same for every fake --------------------------------------------

    @staticmethod
    def inject(server: SandboxServer, **fault: Any) -> None:
        """A fault for the next calls: ``status``, ``count``, ``delay_s``, ``body``, ``headers``, ``path_contains``."""
        requests.post(f"{server.url}/_admin/faults", json=fault, timeout=5).raise_for_status()

    @staticmethod
    def reset(server: SandboxServer) -> None:
        requests.post(f"{server.url}/_admin/reset", timeout=5).raise_for_status()

    @staticmethod
    def faults_pending(server: SandboxServer) -> int:
        return server.app.faults_pending()
