"""Fixtures shared by every test: a real RabbitMQ with a fresh virtual host per test session.

The broker is the one on localhost:5672 (guest/guest); ``.ci/run`` starts it when it is down. Each
session gets its own vhost (created and deleted with rabbitmqctl), which also exercises the
per-environment vhost feature; end-to-end tests that start daemons ask for a vhost of their own.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from broker_queues import Queues

from exchanger.amqp.connection import connect
from exchanger.amqp.topology import Topology
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings

# tests must not read a developer's real settings
for _name in list(os.environ):
    if _name.startswith(("RABBITMQ_", "CAMUNDA_", "BITRIX_", "OPENPROJECT_", "ONEC_", "WORKER_", "CREATOR_", "AMQP_",
                          "STORMBPMN_")):
        del os.environ[_name]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def vhost_factory() -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def create() -> str:
        name = f"exchanger-test-{uuid.uuid4().hex[:10]}"
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        created.append(name)
        return name

    yield create
    for name in created:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def session_vhost(vhost_factory: Callable[[], str]) -> str:
    return vhost_factory()


@pytest.fixture
def rabbit_settings(session_vhost: str) -> RabbitMQSettings:
    return RabbitMQSettings(virtual_host=session_vhost, heartbeat_s=10, reconnect_max_s=2.0)


@pytest.fixture
def topology(rabbit_settings: RabbitMQSettings) -> Iterator[Topology]:
    """The default topology declared in the session vhost, every queue empty at the start of the test."""
    systems = RoutingTable().systems
    topo = Topology(TopologySettings(), systems, virtual_host=rabbit_settings.virtual_host,
                    event_systems=list(systems))  # every <system>.events.queue exists and is purged
    connection = connect(rabbit_settings, name="test-setup", attempts=3)
    topo.declare(connection)
    channel = connection.channel()
    for queue in [*topo.consumable_queues, topo.settings.parking_queue, "default.queue"]:
        channel.queue_purge(queue)
    connection.close()
    yield topo
    connection = connect(rabbit_settings, name="test-teardown", attempts=3)
    channel = connection.channel()
    for delay_ms in topo.declared_delays:
        channel.queue_delete(topo.delay_queue(delay_ms))
    connection.close()


@pytest.fixture
def queues(rabbit_settings: RabbitMQSettings, topology: Topology) -> Iterator[Queues]:
    """Publish into and read from the session vhost (see ``broker_queues``)."""
    q = Queues(rabbit_settings, topology)
    yield q
    q.close()
