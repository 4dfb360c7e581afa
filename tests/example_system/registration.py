"""Install tests/example_system/ticketdesk the way ``pip install`` of a package with its one entry point
would, for the tests that show what a new system gets without any other edit."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from exchanger.systems import ENTRY_POINT_GROUP, registered_systems

EXAMPLE = Path(__file__).resolve().parent
LINE = "ticketdesk = ticketdesk:SYSTEM"  # the one registration line


def install(site: Path, line: str = LINE) -> None:
    """What ``pip install`` of a package with that entry point leaves behind: a ``*.dist-info`` folder."""
    dist = site / "ticketdesk-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ticketdesk\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{line}\n", encoding="utf-8")


@contextmanager
def example_installed(site: Path) -> Iterator[None]:
    """The example system registered (and importable) while inside; the registry re-read on both sides."""
    install(site)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE))
        patch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        registered_systems.cache_clear()
        try:
            yield
        finally:
            registered_systems.cache_clear()
