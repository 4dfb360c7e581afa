"""The README's first command, for real: the whole pipeline as subprocesses against the sandbox.

Sandbox engine, fake Bitrix24/OpenProject/1C, camunda-worker and task-creator as processes, the
onboarding process (OpenProject ‖ Python, a Bitrix24 yes/no question, a gateway, 1C with a boundary
error path), simulated people. The demo itself checks the ledger and exits non-zero on any loss,
duplicate, parked message, leftover lock or incident.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_finishes_every_instance_exactly_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exchanger.demo", "--instances", "8", "--seed", "7", "--stall-timeout", "90"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout
    assert "instances completed                           8" in summary
    assert "duplicates in the fakes                       0" in summary
    assert "parked messages                               0" in summary
    assert "OK: every instance finished exactly once" in summary
    assert "model from StormBPMN via camunda-sync: «Employee onboarding»" in summary
    assert "→ deployed exchanger_demo_onboarding version 1 (tenant demo)" in summary
