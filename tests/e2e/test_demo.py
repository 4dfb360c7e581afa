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


def run_demo(*args: str) -> str:
    """``python -m exchanger_sandbox.demo args``; its summary, once it exited 0."""
    result = subprocess.run([sys.executable, "-m", "exchanger_sandbox.demo", *args, "--stall-timeout", "90"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_the_demo_finishes_every_instance_exactly_once() -> None:
    summary = run_demo("--instances", "8", "--seed", "7")
    assert "instances completed                           8" in summary
    assert "duplicates in the fakes                       0" in summary
    assert "parked messages                               0" in summary
    assert "OK: every instance finished exactly once" in summary
    assert "model from StormBPMN via camunda-sync: «Employee onboarding»" in summary
    assert "→ deployed exchanger_demo_onboarding version 1 (tenant demo)" in summary


@pytest.mark.slow
def test_two_workers_and_two_creators_share_the_work_exactly_once() -> None:
    """Two of each daemon (EXCHANGER_INSTANCE 1 and 2) on one vhost and engine: every instance of the process
    finishes once, nothing is duplicated, and each of the four processes did a share of the work (the demo
    fails when one did none)."""
    summary = run_demo("--instances", "12", "--replicas", "2", "--seed", "5")
    assert "Exchanger demo summary (2 of each daemon)" in summary
    assert "instances completed                          12" in summary
    assert "duplicates in the fakes                       0" in summary
    for name in ("camunda-worker", "camunda-worker-2", "task-creator", "task-creator-2"):
        assert f"work done by {name} " in summary
    assert "OK: every instance finished exactly once" in summary
