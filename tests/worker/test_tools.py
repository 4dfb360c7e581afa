"""Operator edges: the parking lot replay module, basic auth, readiness when Camunda is gone (the `exchanger`
command itself is tested in tests/operations)."""

from __future__ import annotations

import pytest
from broker_queues import Queues, wait_for

from exchanger.amqp.parking import peek, replay
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ParkedRecord
from exchanger.errors import AuthError


def test_parked_messages_can_be_inspected_and_replayed(rabbit_settings, topology, queues: Queues) -> None:
    for task_id in ("t-1", "t-2"):
        queues.publisher.park(ParkedRecord.for_body(f'{{"task": "{task_id}"}}'.encode(), reason="Camunda 400",
                                                    error_type="CamundaConflict", source_queue="python.queue",
                                                    task_id=task_id, headers={"x-exchanger-attempt": 3}))
    assert [r.task_id for r in peek(rabbit_settings, topology)] == ["t-1", "t-2"]
    assert queues.depth("errors.camunda_tasks.queue") == 2  # peeking leaves them there

    replayed = replay(rabbit_settings, topology, select=lambda r: r.task_id == "t-2")
    assert [r.task_id for r in replayed] == ["t-2"]
    _, properties, body = queues.get("python.queue")
    assert body == b'{"task": "t-2"}' and properties.correlation_id == "t-2"
    assert "x-exchanger-attempt" not in (properties.headers or {})
    wait_for(lambda: queues.depth("errors.camunda_tasks.queue") == 1, what="t-1 to stay parked")


def test_basic_auth_is_sent_and_a_refusal_is_an_auth_error() -> None:
    from exchanger_sandbox.camunda.server import start

    with start(users={"demo": "s3cret"}) as server:
        good = CamundaClient(CamundaSettings(base_url=server.url, auth_username="demo",
                                             auth_password="s3cret"))  # type: ignore[arg-type]
        assert good.version()
        bad = CamundaClient(CamundaSettings(base_url=server.url, auth_username="demo",
                                            auth_password="wrong"))  # type: ignore[arg-type]
        with pytest.raises(AuthError):
            bad.version()


def test_readiness_names_camunda_when_it_is_unreachable(make_worker, rabbit_settings) -> None:
    worker = make_worker("http://127.0.0.1:9/engine-rest")  # nothing listens on the discard port
    wait_for(lambda: worker.fetcher.camunda_error, what="a failed poll")
    checks = {name: check() for name, check in worker.readiness_checks().items()}
    assert checks["camunda"][0] is False and "cannot reach" in checks["camunda"][1]
    assert checks["last_poll"] == (False, "no successful poll yet")
    wait_for(lambda: worker.consumer.ready, what="the consumer")
    assert worker.readiness_checks()["broker"]() == (True, "consuming")
