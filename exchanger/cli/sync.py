"""``exchanger sync once|dry-run|status``: camunda-sync's modes, run through ``exchanger.sync.cli``.

camunda-sync (``exchanger/sync/``) is built separately; until it exists these commands and the status
line say "camunda-sync not built" instead of pretending.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from exchanger.cli.context import EXIT_RED, Cli, Context

NOT_BUILT = "camunda-sync not built (exchanger/sync/ does not exist in this checkout)"
MODES = {"once": ["--once"], "dry-run": ["--once", "--dry-run"], "status": ["--status"]}


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
    from exchanger.sync.cli import main as sync_main  # type: ignore[import-not-found]

    return int(sync_main(MODES[context.args.mode] + (["--json"] if context.json else [])))


def last_pass(context: Context) -> Any:
    from exchanger.cli.status import INFO, Check

    if not built():
        return Check("camunda-sync", INFO, NOT_BUILT)
    return Check("camunda-sync", INFO, "built; `exchanger sync status` shows the last pass")
