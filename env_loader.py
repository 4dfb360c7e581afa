"""Environment selection: ``EXCHANGER_ENV`` → ``.env.<env>`` in the project root → ``os.environ``.

Every daemon calls :func:`load_environment` first. The project root is ``EXCHANGER_HOME`` when set,
else the folder holding this file (the checkout or install folder), never a hard-coded path. The real
process environment wins over the file, so systemd ``Environment=`` lines and shell exports override
it. The default environment is ``prod`` (what a server runs unless told otherwise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

ENVIRONMENTS = ("prod", "dev")
DEFAULT_ENVIRONMENT = "prod"


class EnvironmentSelectionError(Exception):
    """The environment cannot be selected; the message is one line naming the variable or path."""


@dataclass(frozen=True)
class Environment:
    name: str  # prod | dev
    root: Path  # project root
    env_file: Path  # the .env.<name> that was loaded
    logs_dir: Path  # logs/<name>/

    @property
    def label(self) -> str:
        """What every log line carries: ``[PROD]`` or ``[DEV]``."""
        return f"[{self.name.upper()}]"


def project_root() -> Path:
    home = os.environ.get("EXCHANGER_HOME")
    return Path(home).expanduser().resolve() if home else Path(__file__).resolve().parent


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
            f"(or set EXCHANGER_HOME to the folder that holds .env.{name})"
        )
    for key, value in dotenv_values(env_file).items():
        if value is not None and key not in env:
            env[key] = value
    env["EXCHANGER_ENV"] = name
    return Environment(name=name, root=root, env_file=env_file, logs_dir=root / "logs" / name)
