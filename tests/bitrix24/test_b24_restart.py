"""A task-creator restarted while the portal is still working on a slow ``tasks.task.add``: one task, not two.

Real processes (``task-creator/main.py``) against the fake portal with an injected slow add. The first
process leaves (SIGTERM past its drain deadline, or SIGKILL) while the add is running; the broker
redelivers the task to the next process at once — a restarted one, or a second instance that was
running all along (two task-creators on one environment). Looking the task up then finds nothing (the
add is still running) and a second add made a duplicate; the redelivery must wait ``BITRIX_WRITE_SETTLE_S``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from b24_helpers import inject, rest
from broker_queues import Daemon, Queues, wait_for
from test_b24_handler import make_task

from exchanger.amqp.topology import Topology
from exchanger.contracts import ResponseStatus
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings, TopologySettings
from exchanger_sandbox.bitrix24.server import PortalServer

SLOW_ADD_S = 8.0  # the portal's tasks.task.add takes this long
SETTLE_S = 6.0  # BITRIX_WRITE_SETTLE_S: a redelivery looks up only after this (rounded up to 10 s by the ladder)


@pytest.fixture
def creators(portal: PortalServer, vhost_factory, tmp_path) -> Iterator[tuple[Callable[..., Daemon], Queues]]:
    vhost = vhost_factory()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".env.dev").write_text("# the test passes everything in the environment\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "CREATOR_", "BITRIX_", "AMQP_"))}
    env.update({
        "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(home), "LOG_DIR": str(tmp_path / "logs"),
        "RABBITMQ_VIRTUAL_HOST": vhost, "RABBITMQ_HEARTBEAT_S": "10", "CREATOR_LOCK_DIR": str(tmp_path / "run"),
        "CREATOR_QUEUES": "bitrix24.queue,bitrix24.sent.queue", "CREATOR_RETRY_CONFIG": "PT1S,PT1S,PT1S",
        "BITRIX_WEBHOOK_URL": portal.webhook_url, "BITRIX_RATE_PER_S": "1000", "BITRIX_BURST": "1000",
        "BITRIX_CHECK_INTERVAL_S": "1", "BITRIX_WRITE_SETTLE_S": str(SETTLE_S), "BITRIX_READ_TIMEOUT_S": "30",
    })
    topology = Topology(TopologySettings(), RoutingTable().systems, virtual_host=vhost)
    queues = Queues(RabbitMQSettings(virtual_host=vhost, heartbeat_s=0), topology)  # idle while the test waits
    started: list[Daemon] = []

    def start(**extra: str) -> Daemon:
        daemon = Daemon({**env, **extra}, home)
        started.append(daemon)
        daemon.ready()
        return daemon

    yield start, queues
    for daemon in started:
        daemon.stop()
    queues.close()


def _tasks_for(portal: PortalServer, task_id: str) -> int:
    return portal.portal.stats()["by_external_id"].get(task_id, 0)


def _add_running(portal: PortalServer) -> bool:
    """True once the injected slow add was taken (the fault is used up)."""
    return portal.app.faults_pending() == 0


def _restart_during_slow_add(portal: PortalServer, creators, task_id: str, stop: Callable[[Daemon], None],
                             *, other_instance: bool = False) -> None:
    """``other_instance``: the redelivery goes to a second instance already running, not to a restart."""
    start, queues = creators
    first = start(CREATOR_DRAIN_S="2")  # leaves before the add is answered
    inject(portal, delay_s=SLOW_ADD_S, count=1, path_contains="tasks.task.add")
    queues.publish_task(make_task(task_id))
    wait_for(lambda: _add_running(portal), 10, "the slow add to start")
    time.sleep(0.5)
    if other_instance:
        second = start(EXCHANGER_INSTANCE="2")  # runs next to the first: its own lock file and port
        stop(first)
    else:
        stop(first)
        second = start()
    time.sleep(SLOW_ADD_S + SETTLE_S + 6)  # the slow add landed and the redelivery has looked it up by now
    assert _tasks_for(portal, task_id) == 1, second.output()
    assert "may still be running on bitrix24" in second.output()
    (task,) = [t for t in portal.portal.tasks.values() if t.get("UF_CAMUNDA_ID_EXTERNAL_TASK") == task_id]
    rest(portal.webhook_url, "tasks.task.complete", {"taskId": int(task["ID"])}).raise_for_status()
    (response,) = queues.responses(timeout_s=20)
    assert (response.task_id, response.status) == (task_id, ResponseStatus.COMPLETE)
    assert _tasks_for(portal, task_id) == 1


def test_sigterm_during_a_slow_add_leaves_one_task(portal, creators) -> None:
    def sigterm(daemon: Daemon) -> None:
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(20) == 0

    _restart_during_slow_add(portal, creators, "restart-term", sigterm)


def test_sigkill_during_a_slow_add_leaves_one_task(portal, creators) -> None:
    def sigkill(daemon: Daemon) -> None:
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(10)

    _restart_during_slow_add(portal, creators, "restart-kill", sigkill)


def test_sigkill_during_a_slow_add_leaves_one_task_when_the_other_instance_takes_the_redelivery(portal,
                                                                                              creators) -> None:
    def sigkill(daemon: Daemon) -> None:
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(10)

    _restart_during_slow_add(portal, creators, "other-kill", sigkill, other_instance=True)


def test_sigterm_waits_for_a_write_that_finishes_within_the_drain(portal, creators) -> None:
    """With the default drain (longer than the read timeout) a stopping creator finishes the add it started."""
    start, queues = creators
    first = start()
    inject(portal, delay_s=3.0, count=1, path_contains="tasks.task.add")
    queues.publish_task(make_task("drain-1"))
    wait_for(lambda: _add_running(portal), 10, "the slow add to start")
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(30) == 0
    assert _tasks_for(portal, "drain-1") == 1
    assert queues.depth("bitrix24.queue") == 0  # acked: the next process gets no redelivery
