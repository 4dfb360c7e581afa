"""``exchanger``: the one command an operator runs (``exchanger --help``).

Each command group is one module of this package with a ``register(cli, subparsers)`` function; adding
a group is adding its module name to :data:`GROUPS`. The environment comes from ``--env`` or
``EXCHANGER_ENV``; exit codes are in :mod:`exchanger.cli.context`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from exchanger.cli.context import EXIT_RED, EXIT_WARN, Cli, Context, UsageError

GROUPS = ("status", "tasks", "recover", "parking", "queues", "process", "sync", "config", "migrate")

EPILOG = """exit codes: 0 done / green, 1 yellow / a system unreachable / lost tasks found (dry run),
2 red / bad configuration or usage, 3 a destructive command without --yes (nothing done)."""


def build_parser() -> argparse.ArgumentParser:
    cli = Cli()
    parser = argparse.ArgumentParser(prog="exchanger", parents=[cli.common], epilog=EPILOG,
                                     description="Operate Exchanger: status, tasks, recovery, parking lot, queues, "
                                                 "processes, camunda-sync, configuration.")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in GROUPS:
        importlib.import_module(f"exchanger.cli.{group}").register(cli, subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_RED
    if getattr(args, "env", None):
        os.environ["EXCHANGER_ENV"] = args.env
    return execute(args)


def execute(args: argparse.Namespace) -> int:
    """Environment, logging (file + stderr warnings), then the handler; errors become one line and an exit code."""
    from loguru import logger

    from env_loader import EnvironmentSelectionError, load_environment
    from exchanger.errors import ConfigError, ExchangerError
    from exchanger.logs import LogDirError, setup_logging
    from exchanger.settings import LoggingSettings, load, register_environment_secrets

    try:
        environment = load_environment()
        register_environment_secrets()
        try:
            setup_logging("exchanger-cli", environment, load(LoggingSettings), console=sys.stderr,
                          console_level="WARNING")
        except (OSError, LogDirError):  # a read-only install: no log file, the console still gets warnings
            setup_logging("exchanger-cli", None, console=sys.stderr, console_level="WARNING")
    except (EnvironmentSelectionError, ConfigError) as exc:
        print(f"exchanger: {exc}", file=sys.stderr)
        return EXIT_RED
    context = Context(args, environment)
    try:
        return int(args.handler(context))
    except UsageError as exc:
        print(f"exchanger: {exc}", file=sys.stderr)
        return EXIT_RED
    except ConfigError as exc:
        print(f"exchanger: {exc}", file=sys.stderr)
        return EXIT_RED
    except ExchangerError as exc:
        logger.info("exchanger {} failed: {}", " ".join(sys.argv[1:]), exc)
        print(f"exchanger: {exc}", file=sys.stderr)
        return EXIT_WARN
    except KeyboardInterrupt:
        return 130
    finally:
        for close in context.closers:
            close()


if __name__ == "__main__":
    raise SystemExit(main())
