"""What the contract cases share: the suite's settings, the systems it runs against, one case's handles."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from broker_queues import Queues, wait_for

from exchanger.contracts import TaskMessage
from exchanger.creator.base import BaseMessageHandler, BaseTracker
from exchanger.systems import SystemSpec, registered_systems
from exchanger_sandbox.contract import ContractFake
from exchanger_sandbox.http import SandboxServer

EXAMPLE_SYSTEM = "ticketdesk"
READ_TIMEOUT_S = 0.5  # a stalled write is noticed quickly
WRITE_SETTLE_S = 2.0  # and looked up again after this
CHECK_INTERVAL_S = 0.3
ATTEMPTS = 3  # tries of one call in the HTTP client
RETRY_CONFIG = "PT0.5S,PT0.5S,PT0.5S,PT1S,PT1S"  # the creator's redeliveries of a transient failure


def tracked_systems() -> list[str]:
    """The registered systems that track items and have a fake, then the example system."""
    names = [name for name, spec in registered_systems().items() if spec.tracker and spec.fake_server]
    return [*names, EXAMPLE_SYSTEM] if EXAMPLE_SYSTEM not in names else names


def contract_of(spec: SystemSpec) -> ContractFake:
    """The ``CONTRACT`` of the module ``contract`` next to the system's fake server."""
    assert spec.fake_server, f"{spec.name} has no fake server"
    module = spec.fake_server.rpartition(".")[0] + ".contract" if "." in spec.fake_server else "contract"
    found = getattr(importlib.import_module(module), "CONTRACT", None)
    assert isinstance(found, ContractFake), f"{module}.CONTRACT must be an exchanger_sandbox.contract.ContractFake"
    return found


@dataclass
class Fake:
    spec: SystemSpec
    contract: ContractFake
    server: SandboxServer


@dataclass
class Case:
    """One contract case: the system's fake, its contract, and a task-creator serving the system."""

    fake: Fake
    queues: Queues
    handler: BaseMessageHandler
    tracker: BaseTracker

    @property
    def contract(self) -> ContractFake:
        return self.fake.contract

    def task(self, name: str) -> TaskMessage:
        return self.contract.task(f"{self.fake.spec.name}-{name}")

    def items(self, task: TaskMessage) -> list[str]:
        return self.contract.items(self.fake.server, task.task_id)

    def item(self, task: TaskMessage, timeout_s: float = 15.0) -> str:
        """The one item the creator made for ``task``, once it exists."""
        found: list[str] = wait_for(lambda: self.items(task), timeout_s, f"the {self.fake.spec.name} item")
        assert len(found) == 1, f"{len(found)} items for {task.task_id}"
        return found[0]

    def inject(self, **fault: Any) -> None:
        self.contract.inject(self.fake.server, **fault)


def system_env(fake: Fake, **overrides: str) -> dict[str, str]:
    """The settings a daemon pointed at the fake gets, with the suite's short timeouts."""
    settings_class = fake.spec.settings_class()
    assert settings_class is not None
    prefix = str(settings_class.model_config.get("env_prefix") or "").upper()
    short = {"READ_TIMEOUT_S": str(READ_TIMEOUT_S), "WRITE_SETTLE_S": str(WRITE_SETTLE_S),
             "CHECK_INTERVAL_S": str(CHECK_INTERVAL_S), "ATTEMPTS": str(ATTEMPTS)}
    return {**fake.contract.settings_env(fake.server), **{prefix + k: v for k, v in {**short, **overrides}.items()}}
