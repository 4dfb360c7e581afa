"""The commands people type: ``camunda-sync/main.py convert`` (offline) and ``python -m exchanger_sandbox
stormbpmn [--seed]`` (prints its settings, serves the seeded team)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from exchanger_sandbox.demo.stack import ROOT

GOLDEN = Path(__file__).parent / "golden"


def run(*args: str, cwd: Path = ROOT / "camunda-sync") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_convert_writes_the_golden_output_and_names_problems(tmp_path: Path) -> None:
    out = tmp_path / "out.bpmn"
    result = run("convert", str(GOLDEN / "t4_yes_no.bpmn"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert 'Fy «да»: condition ${A == "ok"}' in result.stderr  # the report
    assert b'${A == "ok"}' in out.read_bytes()
    edges = run("convert", str(GOLDEN / "t9_assignee.bpmn"), "--assignees", str(GOLDEN / "t9_edges.json"))
    assert '"title":"Документы"' in edges.stdout.replace("&quot;", '"')
    broken = run("convert", str(GOLDEN / "t10_stray_labels.bpmn"))
    assert broken.returncode == 1 and "Flow_3 «Да, согласовано», Flow_4 «Отклонено» carry no yes/no word" in \
        broken.stderr


def test_the_sandbox_prints_its_settings_and_serves_the_seed() -> None:
    process = subprocess.Popen([sys.executable, "-m", "exchanger_sandbox", "stormbpmn", "--port", "0", "--seed"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        settings = json.loads(process.stdout.readline())
        assert set(settings) == {"STORMBPMN_BASE_URL", "STORMBPMN_API_KEY", "STORMBPMN_BEARER_TOKEN"}
        answer = requests.get(settings["STORMBPMN_BASE_URL"] + "/public-api/v1/get-diagram-list", params={"page": 0},
                              headers={"X-Api-Key": settings["STORMBPMN_API_KEY"]}, timeout=5)
        assert answer.json()["totalElements"] == 3
        assert answer.headers["X-Rate-Limit-Remaining"] == "4"
        assert requests.get(settings["STORMBPMN_BASE_URL"] + "/public-api/v1/get-diagram-list?page=0",
                            timeout=5).status_code == 401
    finally:
        process.terminate()
        process.wait(10)
