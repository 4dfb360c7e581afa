"""The old name of :mod:`exchanger.systems`: ``exchanger.consumers.<system>...`` still imports, with a warning.

Routing tables (``CREATOR_QUEUE_HANDLERS``, ``CREATOR_TRACKER_HANDLERS``), ``PYTHON_TASKS_MODULES`` and
task modules (``from exchanger.consumers.python import task``) written before the folder of systems was
renamed keep working: importing ``exchanger.consumers.X`` returns the module ``exchanger.systems.X``
itself (the same classes, the same ``@task`` registry) and logs once which name to write instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

from loguru import logger

OLD = __name__  # exchanger.consumers
NEW = "exchanger.systems"

__path__: list[str] = []  # a package, so that ``exchanger.consumers.<system>`` is looked up by the finder below


def current_name(module: str) -> str:
    """``exchanger.consumers.X`` → ``exchanger.systems.X``; any other name unchanged."""
    return NEW + module[len(OLD):] if module == OLD or module.startswith(OLD + ".") else module


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``exchanger.consumers.*`` and loads it as the module of the new name."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(OLD + "."):
            return None
        real = importlib.util.find_spec(current_name(fullname))
        if real is None:
            return None  # ModuleNotFoundError, as for any missing module
        return importlib.machinery.ModuleSpec(fullname, self, is_package=real.submodule_search_locations is not None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = current_name(spec.name)
        logger.warning("{} is the old name of {} (the folder of systems was renamed); write the new name in "
                       "routing tables, settings and imports", spec.name, new)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module of the new name is already imported."""


if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
    sys.meta_path.insert(0, _Alias())
