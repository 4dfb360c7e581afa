"""A new system is one folder plus one registration line: tests/example_system/ticketdesk and its entry point.

The entry point is installed the way pip would (a ``*.dist-info`` folder with ``entry_points.txt`` on
``sys.path``); nothing else is edited, yet routing, the topology's queues, the task-creator's maps, the
sandbox, `exchanger config check`, the settings lines and the designers' page all know the system, and
a task flows through it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from broker_queues import Queues, wait_for
from example_system.registration import example_installed, install

from exchanger.amqp.connection import connect
from exchanger.amqp.topology import Topology
from exchanger.cli.config import probes, reach
from exchanger.contracts import TaskMessage
from exchanger.creator.loader import load_components
from exchanger.creator.routing_config import CreatorRouting
from exchanger.creator.service import CreatorService
from exchanger.creator.settings import CreatorSettings
from exchanger.designers_doc import render
from exchanger.errors import ConfigError
from exchanger.routing import RoutingSettings, load_routing
from exchanger.settings import RabbitMQSettings, TopologySettings, load
from exchanger.settings_doc import system_block
from exchanger.systems import registered_systems
from exchanger_sandbox.__main__ import servers


@pytest.fixture
def ticketdesk(tmp_path: Path) -> Iterator[None]:
    with example_installed(tmp_path):
        yield


def test_everything_derived_knows_the_new_system(ticketdesk: None) -> None:
    routing = load_routing(RoutingSettings())
    assert routing.routing_key("desk_open_ticket") == "ticketdesk.desk_open_ticket"
    assert "ticketdesk" in routing.systems
    assert {"ticketdesk.queue", "ticketdesk.sent.queue"} <= set(Topology(TopologySettings(), routing.systems)
                                                               .consumable_queues)
    creator = CreatorRouting.from_settings(CreatorSettings())
    assert creator.queue_handlers["ticketdesk.queue"].handler_class == "TicketHandler"
    assert creator.sent_queues["ticketdesk.queue"] == "ticketdesk.sent.queue"
    assert creator.tracker_handlers["ticketdesk.sent.queue"].module == "ticketdesk.tracker"
    assert servers()["ticketdesk"] == "ticketdesk.fake"
    block = system_block(registered_systems()["ticketdesk"])
    assert "# root of the TicketDesk API\nTICKETDESK_BASE_URL=\n" in block
    assert "TICKETDESK_ATTEMPTS=4" in block  # the transport settings every system has
    assert "## ticketdesk\n\nTopics: `desk_open_ticket`." in render()


def test_the_built_in_systems_are_unchanged_without_it() -> None:
    assert list(registered_systems()) == ["bitrix24", "openproject", "1c", "python", "default"]
    assert load_routing(RoutingSettings()).system_for("desk_open_ticket") == "default"


def test_a_second_system_of_the_same_name_is_refused(ticketdesk: None, tmp_path: Path) -> None:
    other = tmp_path / "again"
    other.mkdir()
    install(other, "bitrix24 = exchanger.systems.bitrix24:SYSTEM")
    importlib.invalidate_caches()
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(other))
        registered_systems.cache_clear()
        with pytest.raises(ConfigError, match="system 'bitrix24' is declared twice"):
            registered_systems()


@pytest.mark.slow
def test_a_task_flows_through_the_new_system(ticketdesk: None, rabbit_settings: RabbitMQSettings,
                                              queues: Queues, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = importlib.import_module(registered_systems()["ticketdesk"].fake_server or "").start()
    monkeypatch.setenv("TICKETDESK_BASE_URL", fake.url)
    routing = load_routing(RoutingSettings())
    topology = Topology(TopologySettings(), routing.systems, virtual_host=rabbit_settings.virtual_host)
    connection = connect(rabbit_settings, name="test-ticketdesk", attempts=3)
    topology.declare(connection)
    connection.close()
    settings = CreatorSettings(queues="ticketdesk.queue,ticketdesk.sent.queue", health_port=0, drain_s=5)
    components = load_components(settings, CreatorRouting.from_settings(settings), topology.settings.responses_queue)
    service = CreatorService(components, rabbit=rabbit_settings, topology=topology, settings=settings)
    service.start()
    try:
        settings_class = registered_systems()["ticketdesk"].settings_class()
        checks = dict(probes(None, {settings_class.__name__: load(settings_class)}))  # type: ignore[arg-type]
        assert reach("ticketdesk", checks["ticketdesk"]) == {"system": "ticketdesk", "result": "ok",
                                                             "detail": f"{fake.url} answered 200"}
        queues.publish_task(TaskMessage(task_id="desk-1", topic_name="desk_open_ticket", process_instance_id="pi-1",
                                        worker_id="test-worker", system=routing.system_for("desk_open_ticket")))
        tickets = wait_for(lambda: requests.get(f"{fake.url}/tickets", params={"external_id": "desk-1"},
                                                timeout=5).json(), what="the ticket")
        requests.post(f"{fake.url}/tickets/{tickets[0]['id']}/close", json={"resolution": "fixed"},
                      timeout=5).raise_for_status()
        [response] = queues.responses(1, timeout_s=20)
        assert (response.task_id, response.status) == ("desk-1", "complete")
        assert response.variables["resolution"]["value"] == "fixed"
    finally:
        service.stop()
        fake.stop()
