"""``camunda-worker/main.py``: settings from the environment, instance lock, start-up banner, run until
SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from loguru import logger

from env_loader import Environment
from exchanger.camunda.settings import CamundaSettings
from exchanger.instances import InstanceLocked, health_port, instance_lock
from exchanger.routing import RoutingSettings, load_routing
from exchanger.runtime import run, stop_on_signals
from exchanger.settings import RabbitMQSettings, TopologySettings, load
from exchanger.worker.service import COMPONENT, Worker
from exchanger.worker.settings import WorkerSettings

EXIT_LOCKED = 3  # this instance already runs on this environment and host


def serve(environment: Environment) -> int:
    settings = load(WorkerSettings)
    settings = settings.model_copy(
        update={"health_port": health_port(settings.health_port, environment, "WORKER_HEALTH_PORT")})
    lock = instance_lock(COMPONENT, environment, settings.lock_dir)
    try:
        lock.acquire()
    except InstanceLocked as exc:
        logger.error("{}", exc)
        print(f"{COMPONENT}: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    try:
        worker = Worker(
            camunda=load(CamundaSettings),
            rabbit=load(RabbitMQSettings),
            worker=settings,
            topology=load(TopologySettings),
            routing=load_routing(load(RoutingSettings)),
        )
        logger.info(worker.banner(environment.process_name(COMPONENT)))
        stop = stop_on_signals()
        worker.start()
        stop.wait()
        return 0 if worker.stop() else 1
    finally:
        lock.release()


def main() -> int:
    return run(COMPONENT, serve)
