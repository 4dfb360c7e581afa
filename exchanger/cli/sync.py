"""``exchanger sync once|dry-run|status``: camunda-sync's modes, run through ``exchanger.sync.cli``.

The modes call :mod:`exchanger.sync.cli` in the environment the ``exchanger`` command selected; the
``exchanger status`` line reads the last pass from camunda-sync's state. In a checkout without
``exchanger/sync/`` they say "camunda-sync not built" instead of pretending.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from exchanger.cli.context import EXIT_RED, Cli, Context

NOT_BUILT = "camunda-sync not built (exchanger/sync/ does not exist in this checkout)"
MODES = {"once": ["--once"], "dry-run": ["--dry-run"]}


def register(cli: Cli, subparsers: Any) -> None:
    group = subparsers.add_parser("sync", help="camunda-sync: one pass, a dry run, the last pass",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(title="modes", metavar="MODE", required=True)
    for mode, text in (("once", "one synchronisation pass, then exit"),
                       ("dry-run", "one pass that changes nothing, printing what it would do"),
                       ("status", "the last pass: when, what it did, errors")):
        cli.leaf(sub, mode, text, sync).set_defaults(mode=mode)


def built() -> bool:
    return importlib.util.find_spec("exchanger.sync") is not None and \
        importlib.util.find_spec("exchanger.sync.cli") is not None


def sync(context: Context) -> int:
    if not built():
        print(f"exchanger: {NOT_BUILT}")
        return EXIT_RED
    from exchanger.sync import cli as sync_cli

    if context.args.mode == "status":
        return sync_cli.status_command(context.environment, ["--json"] if context.json else [])
    return sync_cli.sync_command(context.environment, sync_cli.parse_options(MODES[context.args.mode]))


def last_pass(context: Context) -> Any:
    """The ``exchanger status`` line: green after a clean pass, yellow with failed diagrams, red when the
    pass could not reach StormBPMN or Camunda."""
    from exchanger.cli.status import GREEN, INFO, RED, YELLOW, Check

    if not built():
        return Check("camunda-sync", INFO, NOT_BUILT)
    from exchanger.sync.cli import last_pass as sync_last_pass

    code, line = sync_last_pass(context.environment)
    level = {None: INFO, 0: GREEN, 1: YELLOW}.get(code, RED)
    return Check("camunda-sync", level, line)
