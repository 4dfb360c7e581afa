"""``python -m exchanger_sandbox <server> [options]``: run one stand-in of the outside world.

Each server lives in its own folder (``sandbox/exchanger_sandbox/<name>/server.py``) and exposes
``cli(argv) -> int``; this module only dispatches. The fakes of external systems are those the
registered systems declare (``SystemSpec.fake_server``); Camunda and StormBPMN are not systems.
"""

from __future__ import annotations

import importlib
import sys

from exchanger.systems import registered_systems

ENGINE_SERVERS = {  # the stand-ins that are not an external system of the routing table
    "camunda": "exchanger_sandbox.camunda.server",
    "stormbpmn": "exchanger_sandbox.stormbpmn.server",
}


def servers() -> dict[str, str]:
    """Sandbox name → module of its server: Camunda, StormBPMN and every registered system's fake."""
    fakes = {spec.sandbox_name: spec.fake_server for spec in registered_systems().values() if spec.fake_server}
    return {**ENGINE_SERVERS, **fakes}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    known = servers()
    if not args or args[0] not in known:
        print(f"usage: python -m exchanger_sandbox {{{','.join(known)}}} [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(known[args[0]])
    return int(module.cli(args[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
