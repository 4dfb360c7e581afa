"""Inspect and replay the parking lot: ``EXCHANGER_ENV=dev python tools/parking.py list|show|replay``.

    list                     one line per parked message (reason, source queue, task id)
    show [--limit N]         the records with their original bodies
    replay [--task ID] [--source QUEUE] [--limit N]
                             republish to the source queue (all, or the matching ones)
"""

from __future__ import annotations

import argparse
import json

from env_loader import Environment
from exchanger.amqp.parking import peek, replay
from exchanger.amqp.topology import Topology
from exchanger.routing import RoutingSettings, load_routing
from exchanger.runtime import run
from exchanger.settings import RabbitMQSettings, TopologySettings, load


def main() -> int:
    parser = argparse.ArgumentParser(description="the parking lot errors.camunda_tasks.queue")
    parser.add_argument("command", choices=("list", "show", "replay"))
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--task", help="replay only this external task id")
    parser.add_argument("--source", help="replay only messages parked from this queue")
    args = parser.parse_args()

    def command(environment: Environment) -> int:
        rabbit = load(RabbitMQSettings)
        routing = load_routing(load(RoutingSettings))
        topology = Topology(load(TopologySettings), routing.systems, queue_type=rabbit.queue_type,
                            virtual_host=rabbit.virtual_host)
        if args.command == "replay":
            done = replay(rabbit, topology, limit=args.limit,
                          select=lambda r: (not args.task or r.task_id == args.task)
                          and (not args.source or r.source_queue == args.source))
            print(f"replayed {len(done)} message(s)")
            for record in done:
                print(f"  {record.task_id or '-'} → {record.source_queue}")
            return 0
        for record in peek(rabbit, topology, args.limit):
            if args.command == "list":
                print(f"{record.parked_at:%Y-%m-%d %H:%M:%S} {record.source_queue} task={record.task_id or '-'} "
                      f"attempts={record.attempts} {record.error_type}: {record.reason}")
            else:
                print(json.dumps(record.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return 0

    return run("parking", command)


if __name__ == "__main__":
    raise SystemExit(main())
