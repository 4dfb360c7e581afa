"""``exchanger migrate from-exchanger-py``: take over Exchanger.py's in-flight work (:mod:`exchanger.migration`).

A dry run by default (exit 3 when there is work to do, 0 when there is none); ``--yes`` acts and ends
with the reconciliation table (exit 1 if any task or message is unaccounted for).
"""

from __future__ import annotations

import argparse
from typing import Any

from exchanger.cli.context import Cli, Context


def register(cli: Cli, subparsers: Any) -> None:
    from exchanger.migration.options import add_arguments

    group = subparsers.add_parser("migrate", help="take over from another tool (Exchanger.py)", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(title="sources", metavar="SOURCE", required=True)
    leaf = cli.leaf(sub, "from-exchanger-py", "adopt Exchanger.py's queues, messages and locked tasks; dry run "
                    "unless --yes", migrate_from_exchanger_py)
    add_arguments(leaf)


def migrate_from_exchanger_py(context: Context) -> int:
    from exchanger.migration.main import migrate

    return migrate(context.environment, context.args)
