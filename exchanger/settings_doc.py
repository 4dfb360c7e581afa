"""The settings of the registered systems as ``config.env.example`` lines, from their settings classes.

``python -m exchanger.settings_doc [SYSTEM ...]`` prints, per system, one commented line per variable
(the field's description, ``(secret)`` for a secret) and ``NAME=default``, so a new system's
documentation is written from the class that reads it; paste it into the env file. The bundled
systems' lines are in ``config.env.example`` (a test keeps the two lists equal).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from exchanger.systems import SystemSpec, registered_systems


def _default(field: Any) -> str:
    value = field.default
    if value is PydanticUndefined or value is None or isinstance(value, SecretStr):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def env_lines(cls: Any) -> list[str]:
    """``# description`` and ``NAME=default`` for every field of a settings class."""
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    lines = []
    for name, field in cls.model_fields.items():
        secret = "SecretStr" in str(field.annotation)
        description = (field.description or "") + (" (secret)" if secret else "")
        if description:
            lines.append(f"# {description}")
        lines.append(f"{(field.alias or prefix + name).upper()}={_default(field)}")
    return lines


def system_block(spec: SystemSpec) -> str:
    """The env-file section of one system: a header and its settings' lines (none if it has no settings)."""
    cls = spec.settings_class()
    lines = [f"# --- {spec.name} ---", *(env_lines(cls) if cls is not None else ["# (no settings)"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    systems = registered_systems()
    parser.add_argument("system", nargs="*", help=f"default: every registered system ({', '.join(systems)})")
    names = parser.parse_args(argv).system or list(systems)
    unknown = [name for name in names if name not in systems]
    if unknown:
        parser.error(f"no registered system {', '.join(unknown)} (known: {', '.join(systems)})")
    sys.stdout.write("\n".join(system_block(systems[name]) for name in names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
