"""Fetch and publish against the sandbox engine and the real broker: routing, metadata, tenants, broker loss."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import requests
from broker_queues import Queues, wait_for
from worker_helpers import Engine
from worker_models import one_task
from worker_proxy import TcpProxy

from exchanger.amqp.connection import connect
from exchanger.contracts import SCHEMA_HEADER, TaskMessage
from exchanger.routing import RoutingTable
from exchanger.settings import RabbitMQSettings
from exchanger.variables import parse_date
from exchanger.worker.fetcher import PROCESS_INSTANCE_HEADER, SYSTEM_HEADER, TASK_ID_HEADER, TOPIC_HEADER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_started_task_reaches_bitrix24_queue_with_variables_metadata_and_a_long_lock(
        engine: Engine, queues: Queues, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    port = free_port()
    worker = make_worker(engine.url, worker={"health_port": port})
    instance = engine.start("deal", {"customer": "ACME", "amount": 1250, "vip": True, "tags": ["a", "b"]},
                            business_key="order-1")

    method, properties, body = queues.get("bitrix24.queue")
    message = TaskMessage.from_bytes(body, properties.headers)
    assert method.routing_key == "bitrix24.bitrix_create_task"
    assert properties.correlation_id == message.task_id
    assert properties.headers[SCHEMA_HEADER] == TaskMessage.SCHEMA
    assert properties.headers[TOPIC_HEADER] == "bitrix_create_task"
    assert properties.headers[SYSTEM_HEADER] == "bitrix24"
    assert properties.headers[TASK_ID_HEADER] == message.task_id
    assert properties.headers[PROCESS_INSTANCE_HEADER] == instance
    assert message.system == "bitrix24" and message.worker_id == "worker-test"
    assert message.process_instance_id == instance and message.business_key == "order-1"
    assert message.process_definition_key == "deal" and message.activity_id == "work"
    assert message.values()["customer"] == "ACME"
    assert message.values()["amount"] == 1250 and message.variables["amount"]["type"] == "Integer"
    assert message.values()["vip"] is True
    assert message.values()["tags"] == ["a", "b"]
    meta = message.bpmn_metadata
    assert meta.activity_name == "Do the work" and meta.process_name == "Process deal"
    assert meta.documentation == "Create a task for the responsible person."
    assert meta.extension_properties == {"responsible_id": "7", "deadline_days": "2"}
    assert meta.field_injections == {"title": "Call the customer"}
    assert meta.io_parameters.input == {"priority_label": "high", "watchers": ["1", "2"]}
    assert meta.process_properties == {"department": "sales"}

    def extended() -> bool:
        (task,) = engine.tasks(processInstanceId=instance)
        return parse_date(task["lockExpirationTime"]) > datetime.now(UTC) + timedelta(days=300)

    wait_for(extended, what="the lock to be extended to the in-flight duration")
    (task,) = engine.tasks(processInstanceId=instance)
    assert task["workerId"] == "worker-test"

    wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200,
             what="/readyz to answer 200 (broker consumed, Camunda reachable, recent poll)")
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'exchanger_worker_tasks_confirmed_total{system="bitrix24"} 1.0' in metrics
    assert "exchanger_worker_locks_extended_total 1.0" in metrics
    assert "exchanger_worker_metadata_cache_misses_total 1.0" in metrics
    assert worker.metrics.unlocked._value.get() == 0


def test_dotted_topics_reach_their_system_and_unknown_topics_reach_default(
        engine: Engine, queues: Queues, make_worker) -> None:
    routing = RoutingTable({"bitrix24": ["bitrix.create-task.v2"], "python": ["echo"]})
    engine.deploy(one_task("dotted", "bitrix.create-task.v2"), name="dotted.bpmn")
    engine.deploy(one_task("stray", "nobody-routes-me"), name="stray.bpmn")
    make_worker(engine.url, routing=routing, topic_discovery=True, topic_discovery_interval_s=0.2)
    engine.start("dotted")
    stray = engine.start("stray")

    method, _, body = queues.get("bitrix24.queue")
    assert method.routing_key == "bitrix24.bitrix.create-task.v2"
    assert TaskMessage.from_bytes(body).topic_name == "bitrix.create-task.v2"
    method, _, body = queues.get("default.queue")
    message = TaskMessage.from_bytes(body)
    assert message.topic_name == "nobody-routes-me" and message.system == "default"
    assert message.process_instance_id == stray


def test_a_worker_never_fetches_another_tenants_tasks(engine: Engine, vhost_factory, topology, make_worker) -> None:
    engine.deploy(one_task("shared", "bitrix_create_task"), tenant="dev")
    engine.deploy(one_task("shared", "bitrix_create_task"), tenant="prod")
    engine.deploy(one_task("shared", "bitrix_create_task"))  # no tenant: neither worker may take it
    rabbit = {env: RabbitMQSettings(virtual_host=vhost_factory(), heartbeat_s=10, reconnect_max_s=2.0)
              for env in ("dev", "prod")}
    for env in ("dev", "prod"):
        make_worker(engine.url, tenant=env, worker_id=f"exchanger-{env}", rabbit=rabbit[env])
    started = {env: [engine.start("shared", {"env": env}, tenant=env) for _ in range(3)] for env in ("dev", "prod")}
    untenanted = engine.start("shared")

    for env in ("dev", "prod"):
        q = Queues(rabbit[env], topology)
        try:
            messages = [TaskMessage.from_bytes(q.get("bitrix24.queue")[2]) for _ in range(3)]
            time.sleep(0.3)
            assert q.depth("bitrix24.queue") == 0
        finally:
            q.close()
        assert {m.process_instance_id for m in messages} == set(started[env])
        assert {m.tenant_id for m in messages} == {env}
        assert {m.worker_id for m in messages} == {f"exchanger-{env}"}
    (task,) = engine.tasks(processInstanceId=untenanted)
    assert task["workerId"] is None


def test_broker_down_at_publish_unlocks_the_task_and_publishes_it_once_back(
        engine: Engine, queues: Queues, rabbit_settings: RabbitMQSettings, make_worker) -> None:
    engine.deploy(one_task("deal", "bitrix_create_task"))
    proxy = TcpProxy(rabbit_settings.port)
    via_proxy = rabbit_settings.model_copy(update={"port": proxy.port, "connection_attempts": 2})
    worker = make_worker(engine.url, rabbit=via_proxy)
    wait_for(lambda: worker.consumer.ready, what="the worker to consume")
    proxy.close()  # the broker goes away
    instance = engine.start("deal")

    wait_for(lambda: worker.metrics.unlocked._value.get() == 1, what="the task to be unlocked", timeout_s=15)
    (task,) = engine.tasks(processInstanceId=instance)
    assert task["workerId"] is None and task["lockExpirationTime"] is None
    time.sleep(0.5)
    (task,) = engine.tasks(processInstanceId=instance)
    assert task["lockExpirationTime"] is None, "fetching must pause while the broker is down"
    assert queues.depth("bitrix24.queue") == 0

    proxy.open()  # the broker is back
    message = TaskMessage.from_bytes(queues.get("bitrix24.queue", timeout_s=15)[2])
    assert message.process_instance_id == instance
    wait_for(lambda: worker.metrics.lock_extended._value.get() == 1, what="the lock extension")
    time.sleep(0.3)
    assert queues.depth("bitrix24.queue") == 0  # published once
    proxy.close()


def test_a_returned_publish_unlocks_the_task_and_it_is_published_once_routable_again(
        engine: Engine, queues: Queues, rabbit_settings: RabbitMQSettings, topology, make_worker) -> None:
    engine.deploy(one_task("stray", "nobody-routes-me"))
    worker = make_worker(engine.url, topic_discovery=True, topic_discovery_interval_s=0.2)
    wait_for(lambda: worker.consumer.ready, what="the worker's consumer to have declared the topology")
    queues.channel.queue_delete("default.queue")  # now nothing takes unrouted tasks: the broker returns them
    instance = engine.start("stray")

    wait_for(lambda: worker.metrics.unlocked._value.get() >= 1, what="the returned task to be unlocked")
    assert worker.metrics.returned.labels("Unroutable")._value.get() >= 1
    assert worker.metrics.lock_extended._value.get() == 0
    (task,) = engine.tasks(processInstanceId=instance)
    assert parse_date(task["lockExpirationTime"] or "1970-01-01T00:00:00.000+0000") < datetime.now(UTC) + timedelta(
        minutes=6), "never the long lock"

    connection = connect(rabbit_settings, name="test-redeclare", attempts=3)
    topology.declare(connection)  # the queue is back
    connection.close()
    message = TaskMessage.from_bytes(queues.get("default.queue", timeout_s=15)[2])
    assert message.process_instance_id == instance
    wait_for(lambda: worker.metrics.lock_extended._value.get() == 1, what="the lock extension")
