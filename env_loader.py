"""Environment selection: ``EXCHANGER_ENV`` → ``.env.<env>`` in the project root → ``os.environ``.

Every daemon calls :func:`load_environment` first. The project root (``.env.<env>``, ``logs/``, ``run/``)
is, in this order: ``EXCHANGER_HOME`` when set (the systemd units set it); the checkout this file belongs
to, when it sits in one (next to ``config.env.example``: a clone with an editable install, whatever the
current folder); else the current folder (a wheel installed into site-packages has no project next to
its code, so an operator runs the commands from the folder holding ``.env.<env>``). Never a hard-coded
path. The real process environment wins over the file, so systemd ``Environment=`` lines and shell
exports override it. The default environment is ``prod`` (what a server runs unless told otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

ENVIRONMENTS = ("prod", "dev")
MAX_INSTANCE = 9  # instances of one daemon per environment and host (EXCHANGER_INSTANCE 1..9)


def _same(value: str) -> str:
    return value


def _ms_to_s(value: str) -> str:
    return f"{float(value) / 1000:g}"


def _s_to_ms(value: str) -> str:
    return str(int(float(value) * 1000))


def _attempts_to_retries(value: str) -> str:
    return str(max(0, int(value) - 1))


# Exchanger.py's setting names that mean what an Exchanger setting means: old name → (new name, value
# conversion). Read when the new name
# is not set, with a warning naming the new one.
LEGACY_NAMES: dict[str, tuple[str, Callable[[str], str]]] = {
    "RABBITMQ_HEARTBEAT": ("RABBITMQ_HEARTBEAT_S", _same),
    "RABBITMQ_BLOCKED_CONNECTION_TIMEOUT": ("RABBITMQ_BLOCKED_CONNECTION_TIMEOUT_S", _same),
    "RABBITMQ_TASKS_EXCHANGE_NAME": ("AMQP_TASKS_EXCHANGE", _same),
    "RABBITMQ_ALTERNATE_EXCHANGE_NAME": ("AMQP_UNROUTED_EXCHANGE", _same),
    "RABBITMQ_RESPONSES_EXCHANGE_NAME": ("AMQP_RESPONSES_EXCHANGE", _same),
    "RABBITMQ_RESPONSES_QUEUE_NAME": ("AMQP_RESPONSES_QUEUE", _same),
    "CAMUNDA_ASYNC_RESPONSE_TIMEOUT": ("CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS", _same),
    "CAMUNDA_HTTP_TIMEOUT_MILLIS": ("CAMUNDA_READ_TIMEOUT_S", _ms_to_s),
    "CAMUNDA_TIMEOUT_DELTA_MILLIS": ("CAMUNDA_LONG_POLL_MARGIN_S", _ms_to_s),
    "RETRY_ATTEMPTS": ("CAMUNDA_FAILURE_MAX_RETRIES", _attempts_to_retries),
    "RETRY_DELAY": ("CAMUNDA_FAILURE_RETRY_TIMEOUT_MS", _s_to_ms),
    "HEARTBEAT_INTERVAL": ("BITRIX_CHECK_INTERVAL_S", _same),
    "BITRIX_REQUEST_TIMEOUT": ("BITRIX_READ_TIMEOUT_S", _same),
}
# old names with no Exchanger equivalent: a warning says they are not read
LEGACY_UNUSED = (
    "CAMUNDA_AUTH_ENABLED", "CAMUNDA_SORTING", "CAMUNDA_SLEEP_SECONDS", "CAMUNDA_INCLUDE_EXTENSION_PROPERTIES",
    "CAMUNDA_IS_DEBUG", "CAMUNDA_DEBUG_SAVE_RESPONSE_MESSAGES", "CAMUNDA_FETCH_INTERVAL", "MONITOR_LOG_INTERVAL",
    "MAX_MESSAGES_PER_BATCH", "MESSAGE_PROCESSING_TIMEOUT", "RESPONSE_HANDLER_ENABLED",
    "RESPONSE_PROCESSING_INTERVAL", "BITRIX_DEFAULT_PRIORITY", "BITRIX_UF_RESULT_ANSWER_MAPPING",
    "BITRIX_UF_CACHE_FILE", "BITRIX_MAX_DESCRIPTION_LENGTH",
)  # fmt: skip


def map_legacy_names(env: MutableMapping[str, str]) -> list[str]:
    """Read Exchanger.py's names as the new ones (where the new one is unset); return the warnings."""
    warnings = []
    for old, (new, convert) in LEGACY_NAMES.items():
        if old not in env:
            continue
        if new in env:
            warnings.append(f"{old} (Exchanger.py) is ignored: {new} is set; remove {old}")
            continue
        try:
            env[new] = convert(env[old])
        except ValueError:
            warnings.append(f"{old}={env[old]!r} (Exchanger.py) is not a number; set {new} instead")
            continue
        warnings.append(f"{old} (Exchanger.py) read as {new}={env[new]}; rename it to {new}")
    for old in LEGACY_UNUSED:
        if old in env:
            warnings.append(f"{old} (Exchanger.py) is not read by Exchanger; remove it")
    return warnings
DEFAULT_ENVIRONMENT = "prod"


class EnvironmentSelectionError(Exception):
    """The environment cannot be selected; the message is one line naming the variable or path."""


@dataclass(frozen=True)
class Environment:
    name: str  # prod | dev
    root: Path  # project root
    env_file: Path  # the .env.<name> that was loaded
    logs_dir: Path  # logs/<name>/
    warnings: tuple[str, ...] = field(default=())  # old Exchanger.py names met; logged once logging is up
    instance: int = 1  # EXCHANGER_INSTANCE: which of several copies of a daemon on this host this process is

    @property
    def label(self) -> str:
        """What every log line carries: ``[PROD]`` or ``[DEV]``."""
        return f"[{self.name.upper()}]"

    def process_name(self, component: str) -> str:
        return process_name(component, self.instance)


def process_name(component: str, instance: int) -> str:
    """``task-creator`` for the first instance, ``task-creator-2`` for the second: the name of its log
    files, its lock file and its log lines."""
    return component if instance == 1 else f"{component}-{instance}"


CHECKOUT_MARKER = "config.env.example"  # in the repository root, next to this file; never in site-packages


def project_root() -> Path:
    """``EXCHANGER_HOME``, else the checkout holding this file, else the current folder (module docstring)."""
    home = os.environ.get("EXCHANGER_HOME")
    if home:
        return Path(home).expanduser().resolve()
    here = Path(__file__).resolve().parent
    return here if (here / CHECKOUT_MARKER).is_file() else Path.cwd().resolve()


def load_environment(environ: dict[str, str] | None = None) -> Environment:
    """Select the environment, merge its ``.env`` file under the process environment, return it.

    Raises :class:`EnvironmentSelectionError` with one actionable line when ``EXCHANGER_ENV`` is unknown or
    the file is missing.
    """
    env = os.environ if environ is None else environ
    name = (env.get("EXCHANGER_ENV") or DEFAULT_ENVIRONMENT).strip().lower()
    if name not in ENVIRONMENTS:
        raise EnvironmentSelectionError(
            f"EXCHANGER_ENV={env.get('EXCHANGER_ENV')!r} is not a known environment; "
            f"set EXCHANGER_ENV to one of: {', '.join(ENVIRONMENTS)}"
        )
    root = project_root()
    env_file = root / f".env.{name}"
    if not env_file.is_file():
        raise EnvironmentSelectionError(
            f"environment file {env_file} is missing; create it from config.env.example "
            f"(or set EXCHANGER_HOME to the folder that holds .env.{name}, or run from that folder)"
        )
    for key, value in dotenv_values(env_file).items():
        if value is not None and key not in env:
            env[key] = value
    env["EXCHANGER_ENV"] = name
    instance = _instance(env.get("EXCHANGER_INSTANCE"))
    warnings = map_legacy_names(env)
    return Environment(name=name, root=root, env_file=env_file, logs_dir=root / "logs" / name,
                       warnings=tuple(warnings), instance=instance)


def _instance(value: str | None) -> int:
    """``EXCHANGER_INSTANCE``: 1 (the default) to :data:`MAX_INSTANCE`."""
    text = (value or "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_INSTANCE:
        raise EnvironmentSelectionError(
            f"EXCHANGER_INSTANCE={value!r} is not an instance number; set it to 1..{MAX_INSTANCE} (2 for a second "
            f"camunda-worker or task-creator of this environment on this host)"
        )
    return int(text)
