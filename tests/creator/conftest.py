"""Fixtures of the task-creator tests: an in-process service over the real broker, queue readers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from creator_testkit import Queues

from exchanger.amqp.topology import Topology
from exchanger.creator.base import BaseMessageHandler, BaseTracker
from exchanger.creator.loader import Components, LoadedHandler, LoadedTracker
from exchanger.creator.service import CreatorService
from exchanger.creator.settings import CreatorSettings
from exchanger.settings import RabbitMQSettings


@pytest.fixture
def queues(rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[Queues]:
    q = Queues(rabbit_settings, topology)
    yield q
    q.close()


StartService = Callable[..., CreatorService]


@pytest.fixture
def start_service(rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[StartService]:
    """``start_service(handlers={queue: handler}, trackers={sent_queue: tracker}, **creator settings)``."""
    started: list[CreatorService] = []

    def start(handlers: dict[str, BaseMessageHandler] | None = None,
              trackers: dict[str, BaseTracker] | None = None, **settings: Any) -> CreatorService:
        components = Components()
        for queue, handler in (handlers or {}).items():
            components.handlers[queue] = LoadedHandler(queue, handler.context.system, handler,
                                                       handler.context.sent_queue)
        for queue, tracker in (trackers or {}).items():
            components.trackers[queue] = LoadedTracker(queue, tracker.context.system, tracker,
                                                       topology.settings.responses_queue)
        creator_settings = CreatorSettings(**{"drain_s": 5, "health_port": 0, **settings})
        service = CreatorService(components, rabbit=rabbit_settings, topology=topology, settings=creator_settings)
        service.start()
        started.append(service)
        assert service.wait_ready(10), service.readiness()
        return service

    yield start
    for service in started:
        service.stop()
