"""The product's source tree as a server gets it, for the tests that build or install the product from it.

A copy (not the working tree): a stale ``build/``, ``.venv`` or egg-info of this checkout cannot leak into
what is built, and the sandbox and the tests are left out, so the build proves it needs neither.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_THE_PRODUCT = ("tests", "sandbox", "bench", "build", ".venv", ".git", "logs", "node_modules", "*.egg-info",
                   "__pycache__", ".pytest_cache", ".ruff_cache", "state", "run")

# run by a python that has the product installed: every module imports, and none needs the sandbox
IMPORT_EVERY_MODULE = ("import importlib, pkgutil, sys, exchanger\n"
                       "sys.modules['exchanger_sandbox'] = None  # importing it now fails\n"
                       "for module in pkgutil.walk_packages(exchanger.__path__, 'exchanger.'):\n"
                       "    if not module.name.endswith('.__main__'):  # that one runs its command\n"
                       "        importlib.import_module(module.name)\n")


def copy_product(destination: Path) -> Path:
    """Copy the product's part of this checkout (code, packaging, services-management) to ``destination``."""
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*NOT_THE_PRODUCT))
    return destination
