"""task-creator's ``main``: settings, instance lock, handlers and trackers, consumers, health, SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

from loguru import logger

from env_loader import Environment
from exchanger.amqp.topology import Topology, system_queue
from exchanger.creator.event_receiver import EventReceiver
from exchanger.creator.loader import Components, load_components
from exchanger.creator.routing_config import CreatorRouting
from exchanger.creator.service import CreatorService
from exchanger.creator.settings import CreatorSettings
from exchanger.errors import ConfigError
from exchanger.health import HealthServer
from exchanger.instances import ForeignLock, InstanceLocked, health_port, instance_lock
from exchanger.routing import DEFAULT_SYSTEM, RoutingSettings, load_routing
from exchanger.runtime import run, stop_on_signals
from exchanger.settings import RabbitMQSettings, TopologySettings, load

COMPONENT = "task-creator"
EXIT_LOCKED = 3  # this instance already runs on this environment and host (or Exchanger.py's creator does)


def check_declared(components: Components, topology: Topology) -> None:
    """Every served queue must be one the topology declares, else the consumer could never start."""
    declared = {*topology.consumable_queues, system_queue(DEFAULT_SYSTEM)}
    missing = [q for q in components.queues if q not in declared]
    if missing:
        raise ConfigError(f"{', '.join(missing)} would never receive anything: the routing table has no such "
                          f"system; add its topics to ROUTING_FILE ([systems] <system> = [\"topic\", …])")


def main(environment: Environment) -> int:
    settings = load(CreatorSettings)
    settings = settings.model_copy(
        update={"health_port": health_port(settings.health_port, environment, "CREATOR_HEALTH_PORT"),
                "events_port": health_port(settings.events_port, environment, "CREATOR_EVENTS_PORT")})
    rabbit = load(RabbitMQSettings)
    topology_settings = load(TopologySettings)
    table = load_routing(load(RoutingSettings))
    lock = instance_lock(COMPONENT, environment, settings.lock_dir)
    legacy = ForeignLock(Path(settings.legacy_lock_file.format(env=environment.name)),
                         f"Exchanger.py's task-creator ({environment.name})") if settings.legacy_lock_file else None
    try:
        lock.acquire()
        if legacy is not None:
            try:
                legacy.acquire()
            except InstanceLocked:
                lock.release()
                raise
    except InstanceLocked as exc:
        logger.error("{}", exc)
        print(f"{COMPONENT}: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    try:
        stop = stop_on_signals()
        routing = CreatorRouting.from_settings(settings)
        components = load_components(settings, routing, topology_settings.responses_queue)
        topology = Topology(topology_settings, table.systems, queue_type=rabbit.queue_type,
                            virtual_host=rabbit.virtual_host, event_systems=components.event_systems)
        try:
            if not components.queues:
                raise ConfigError("task-creator has nothing to serve: no handler or tracker could be loaded "
                                  f"({'; '.join(components.skipped.values())})")
            check_declared(components, topology)
        except ConfigError:
            components.cleanup()
            raise
        service = CreatorService(components, rabbit=rabbit, topology=topology, settings=settings)
        health = None
        if settings.health_port:
            health = HealthServer(settings.health_port, service.registry, {"consumers": service.readiness},
                                  host=settings.health_host, setting="CREATOR_HEALTH_PORT").start()
        service.start()
        events = None
        if settings.events_port:
            trackers = {t.system: t.tracker for t in components.trackers.values()}
            events = EventReceiver(trackers, rabbit, topology, port=settings.events_port, host=settings.events_host,
                                   max_bytes=settings.events_max_bytes, registry=service.registry).start()
        stop.wait()
        logger.info("stopping: draining in-flight messages (up to {:g}s)", settings.drain_s)
        if events is not None:
            events.stop()
        service.stop()
        if health is not None:
            health.stop()
        return 0
    finally:
        if legacy is not None:
            legacy.release()
        lock.release()


def run_main() -> int:
    """The ``exchanger-creator`` entry point (``task-creator/main.py`` is the same)."""
    return run(COMPONENT, main)
