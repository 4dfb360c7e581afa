"""``camunda-worker/main.py``: settings from the environment, start-up banner, run until SIGTERM/SIGINT."""

from __future__ import annotations

from loguru import logger

from env_loader import Environment
from exchanger.camunda.settings import CamundaSettings
from exchanger.routing import RoutingSettings, load_routing
from exchanger.runtime import run, stop_on_signals
from exchanger.settings import RabbitMQSettings, TopologySettings, load
from exchanger.worker.service import COMPONENT, Worker
from exchanger.worker.settings import WorkerSettings


def serve(environment: Environment) -> int:
    worker = Worker(
        camunda=load(CamundaSettings),
        rabbit=load(RabbitMQSettings),
        worker=load(WorkerSettings),
        topology=load(TopologySettings),
        routing=load_routing(load(RoutingSettings)),
    )
    logger.info(worker.banner(environment.name))
    stop = stop_on_signals()
    worker.start()
    stop.wait()
    return 0 if worker.stop() else 1


def main() -> int:
    return run(COMPONENT, serve)
