"""Fixtures of the task-creator tests: an in-process service over the real broker, queue readers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from broker_queues import StartService, start_creator

from exchanger.amqp.topology import Topology
from exchanger.creator.base import BaseMessageHandler, BaseTracker
from exchanger.creator.service import CreatorService
from exchanger.settings import RabbitMQSettings


@pytest.fixture
def start_service(rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[StartService]:
    """``start_service(handlers={queue: handler}, trackers={sent_queue: tracker}, **creator settings)``."""
    started: list[CreatorService] = []

    def start(handlers: dict[str, BaseMessageHandler] | None = None,
              trackers: dict[str, BaseTracker] | None = None, **settings: Any) -> CreatorService:
        service = start_creator(rabbit_settings, topology, handlers, trackers, **settings)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
