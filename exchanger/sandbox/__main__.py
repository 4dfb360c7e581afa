"""``python -m exchanger.sandbox <server> [options]``: run one stand-in of the outside world.

Each server lives in its own folder (``exchanger/sandbox/<name>/server.py``) and exposes
``cli(argv) -> int``; this module only dispatches, so adding a fake needs no change elsewhere.
"""

from __future__ import annotations

import importlib
import sys

SERVERS = {
    "camunda": "exchanger.sandbox.camunda.server",
    "bitrix24": "exchanger.sandbox.bitrix24.server",
    "openproject": "exchanger.sandbox.openproject.server",
    "onec": "exchanger.sandbox.onec.server",
    "stormbpmn": "exchanger.sandbox.stormbpmn.server",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in SERVERS:
        print(f"usage: python -m exchanger.sandbox {{{','.join(SERVERS)}}} [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(SERVERS[args[0]])
    return int(module.cli(args[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
