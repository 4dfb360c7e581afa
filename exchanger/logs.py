"""Logging for every daemon and CLI: loguru, the environment label on every line, secrets masked.

Sinks: stdout; ``<logs>/<component>.log`` (rotating); ``<logs>/<component>.errors.log`` (errors only);
optionally ``<logs>/<component>.json`` (one JSON object per line, ``LOG_JSON_FILE=true``). A patcher
masks secrets (:mod:`exchanger.secrets`) in the message and in the formatted exception before any
sink sees the record; ``diagnose`` is off so that variable values never reach a traceback.
"""

from __future__ import annotations

import getpass
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from env_loader import Environment
from exchanger.errors import ConfigError
from exchanger.secrets import mask
from exchanger.settings import LoggingSettings

LINE_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSS} {extra[env_label]} {level:<7} {extra[component]} | {message}{extra[exc_text]}"
)


def _mask_record(record: Any) -> None:
    record["message"] = mask(record["message"])
    record["extra"].setdefault("env_label", "")
    record["extra"].setdefault("component", "")
    exc_text = ""
    if record["exception"] is not None:
        kind, value, tb = record["exception"]
        exc_text = "\n" + mask("".join(traceback.format_exception(kind, value, tb)).rstrip())
        record["exception"] = None
    record["extra"]["exc_text"] = exc_text


class LogDirError(ConfigError):
    """The log folder cannot be written: fix the folder or ``LOG_DIR`` (restarting will not help)."""


LOG_FILE_MODE = 0o640  # logs carry task data: owner and group (the operators) only, never world-readable


def _private(path: str, flags: int) -> int:
    """``open``'s opener for every log file: created (or found) with :data:`LOG_FILE_MODE`."""
    fd = os.open(path, flags, LOG_FILE_MODE)
    os.fchmod(fd, LOG_FILE_MODE)
    return fd


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (containers)
        return f"uid {os.geteuid()}"


def log_files(component: str, settings: LoggingSettings) -> list[str]:
    names = [f"{component}.log", f"{component}.errors.log"]
    return names + ([f"{component}.json"] if settings.json_file else [])


def setup_logging(
    component: str, environment: Environment | None, settings: LoggingSettings | None = None, *,
    console: TextIO | None = None, console_level: str | None = None,
) -> Path | None:
    """Configure the global loguru logger for one process; returns the log folder (None: console only).

    The console is stdout at ``LOG_LEVEL`` for daemons; the ``exchanger`` command passes stderr and
    WARNING, so that its own output (tables, JSON) stays clean.
    """
    settings = settings or LoggingSettings()
    label = environment.label if environment else ""
    logger.remove()
    logger.configure(patcher=_mask_record, extra={"env_label": label, "component": component, "exc_text": ""})
    logger.add(console or sys.stdout, level=console_level or settings.level, format=LINE_FORMAT, colorize=False,
               backtrace=False, diagnose=False)
    if environment is None:
        return None
    folder = Path(settings.dir) if settings.dir else environment.logs_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in log_files(component, settings):
            with open(folder / name, "a", encoding="utf-8", opener=_private):  # can we write there?
                pass
    except OSError as exc:
        in_the_way = exc.filename if isinstance(exc, FileExistsError | NotADirectoryError | IsADirectoryError) else None
        problem = f"{in_the_way} is in the way" if in_the_way else (exc.strerror or str(exc))
        raise LogDirError(
            f"cannot write the log files in {folder}: {problem}; move that aside or make the folder writable for "
            f"user {_user()}, or set LOG_DIR to a folder it can write"
        ) from None
    common: dict[str, Any] = {
        "rotation": settings.rotation,
        "retention": settings.retention,
        "encoding": "utf-8",
        "enqueue": False,
        "backtrace": False,
        "diagnose": False,
        "opener": _private,
    }
    logger.add(folder / f"{component}.log", level=settings.level, format=LINE_FORMAT, **common)
    logger.add(folder / f"{component}.errors.log", level="ERROR", format=LINE_FORMAT, **common)
    if settings.json_file:
        logger.add(folder / f"{component}.json", level=settings.level, serialize=True, **common)
    for warning in environment.warnings:  # old Exchanger.py setting names (env_loader.map_legacy_names)
        logger.warning(warning)
    return folder
