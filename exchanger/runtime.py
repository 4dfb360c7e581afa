"""What every entry point does first and last: environment, logging, settings errors, exit codes.

``run(component, main)`` selects the environment (``env_loader``), sets up logging, says the chosen
env on the first log line and runs ``main(environment)``. A bad environment or setting ends the
process with one clear line on stderr and exit code 2; any other start-up failure with exit code 1.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

from loguru import logger

from env_loader import Environment, EnvironmentSelectionError, load_environment
from exchanger.errors import ConfigError, ExchangerError
from exchanger.logs import setup_logging
from exchanger.settings import LoggingSettings, load, register_environment_secrets

EXIT_CONFIG = 2  # a setting or the environment is wrong: fix the configuration, restarting will not help
EXIT_FAILURE = 1


def run(component: str, main: Callable[[Environment], int]) -> int:
    try:
        environment = load_environment()
        register_environment_secrets()
        # a second instance (EXCHANGER_INSTANCE=2) logs as task-creator-2, into files of its own
        setup_logging(environment.process_name(component), environment, load(LoggingSettings))
    except (EnvironmentSelectionError, ConfigError) as exc:
        print(f"{component}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logger.info("{} starting in environment {} (env file {}){}", component, environment.name, environment.env_file,
                f", instance {environment.instance}" if environment.instance > 1 else "")
    try:
        return main(environment)
    except ConfigError as exc:
        logger.error("{}: {}", component, exc)
        print(f"{component}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ExchangerError as exc:  # e.g. the broker unreachable at start: the reason, no traceback
        logger.error("{} cannot start: {}", component, exc)
        print(f"{component}: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception:  # noqa: BLE001 - the reason goes to the log and the exit code says it failed
        logger.exception("{} failed to start or crashed", component)
        return EXIT_FAILURE


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for daemons that shut down gracefully."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        logger.info("received {}; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
