"""Worker test fixtures: the sandbox engine over real HTTP, the real broker, workers started in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from worker_helpers import FAST_CAMUNDA, FAST_WORKER, Engine

from exchanger.amqp.topology import Topology
from exchanger.camunda.settings import CamundaSettings
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings
from exchanger.worker.service import Worker
from exchanger.worker.settings import WorkerSettings


@pytest.fixture
def engine() -> Iterator[Engine]:
    from exchanger_sandbox.camunda.server import start

    with start() as server:
        yield Engine(server.url)


WorkerFactory = Callable[..., Worker]


@pytest.fixture
def make_worker(rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[WorkerFactory]:
    """``make_worker(engine_url, tenant="", routing=None, rabbit=None, worker={...}, **camunda_fields)``."""
    started: list[Worker] = []

    def make(url: str, *, tenant: str = "", worker_id: str = "worker-test", routing: RoutingTable | None = None,
             rabbit: RabbitMQSettings | None = None, worker: dict[str, Any] | None = None,
             start: bool = True, **camunda: Any) -> Worker:
        settings = CamundaSettings(**{"base_url": url, "worker_id": worker_id, "tenant_id": tenant,
                                      **FAST_CAMUNDA, **camunda})
        instance = Worker(camunda=settings, rabbit=rabbit or rabbit_settings,
                          worker=WorkerSettings(**{**FAST_WORKER, **(worker or {})}),
                          topology=TopologySettings(), routing=routing or RoutingTable())
        if start:
            instance.start()
            started.append(instance)
        return instance

    yield make
    for instance in started:
        instance.stop()
