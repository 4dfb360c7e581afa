"""The systems the contract suite runs against, and one running task-creator per case.

Every registered system with a tracker and a fake is a parameter (a system added later, built in or
installed through the entry point, joins by itself), plus the example system of tests/example_system,
registered here the way its entry point would. Each system's fake runs once per module; each case gets
it reset and a task-creator built as the daemon builds it: the system's handler and tracker classes
from the registry, their settings from the environment the fake prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from broker_queues import Queues, serve_system
from contract_kit import RETRY_CONFIG, Case, Fake, contract_of, system_env, tracked_systems
from example_system.registration import example_installed

from exchanger.amqp.topology import Topology, sent_queue, system_queue
from exchanger.creator.base import SystemContext
from exchanger.settings import RabbitMQSettings
from exchanger.systems import registered_systems, resolve


@pytest.fixture(scope="module", autouse=True)
def example_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with example_installed(tmp_path_factory.mktemp("site")):
        yield


@pytest.fixture(scope="module", params=tracked_systems())
def fake(request: pytest.FixtureRequest, example_system: None) -> Iterator[Fake]:
    spec = registered_systems()[request.param]
    contract = contract_of(spec)
    server = contract.start()
    yield Fake(spec, contract, server)
    server.stop()


@pytest.fixture
def start_case(fake: Fake, rabbit_settings: RabbitMQSettings, topology: Topology, queues: Queues,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Case]]:
    """``start_case(**setting overrides)``: the fake reset, a task-creator serving its system."""
    stack = ExitStack()

    def start(**overrides: str) -> Case:
        fake.contract.reset(fake.server)
        for name, value in system_env(fake, **overrides).items():
            monkeypatch.setenv(name, value)
        spec = fake.spec
        assert spec.tracker is not None
        where = SystemContext(system=spec.name, queue=system_queue(spec.name), sent_queue=sent_queue(spec.name))
        handler, tracker = resolve(spec.handler)(where), resolve(spec.tracker)(where)
        stack.enter_context(serve_system(rabbit_settings, topology, handler, tracker, retry_config=RETRY_CONFIG,
                                         max_check_errors=5))
        return Case(fake, queues, handler, tracker)

    with stack:
        yield start
