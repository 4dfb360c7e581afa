"""Logs: env label on every line, files per component, secrets never written."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from loguru import logger

from env_loader import Environment
from exchanger.logs import setup_logging
from exchanger.secrets import mask, register_secret
from exchanger.settings import LoggingSettings

ROOT = Path(__file__).resolve().parents[2]


def test_every_line_carries_the_env_label_and_no_secret_reaches_any_file(tmp_path: Path, capsys) -> None:
    environment = Environment(name="dev", root=tmp_path, env_file=tmp_path / ".env.dev", logs_dir=tmp_path / "logs")
    register_secret("p4ssw0rd-camunda")
    setup_logging("unit", environment, LoggingSettings(json_file=True))
    logger.info("calling https://portal.example/rest/1/abcdef123456/tasks.task.add")
    logger.info("camunda password is p4ssw0rd-camunda, header Authorization: Basic dXNlcjpwYXNz")
    try:
        raise RuntimeError("failed with amqp://guest:hunter22@broker:5672/")
    except RuntimeError:
        logger.exception("boom")
    logger.remove()
    stdout = capsys.readouterr().out
    files = {p.name: p.read_text() for p in (tmp_path / "logs").iterdir()}
    assert set(files) == {"unit.log", "unit.errors.log", "unit.json"}
    for text in (stdout, *files.values()):
        for secret in ("abcdef123456", "p4ssw0rd-camunda", "dXNlcjpwYXNz", "hunter22"):
            assert secret not in text
    assert all("[DEV]" in line for line in files["unit.log"].splitlines() if line[:2] == "20")
    assert "boom" in files["unit.errors.log"] and "calling" not in files["unit.errors.log"]
    assert "/rest/1/***/tasks.task.add" in stdout


def test_mask_patterns() -> None:
    assert mask("https://user:pw123@host/x") == "https://user:***@host/x"
    assert mask("api_key=abc123def") == "api_key=***"
    assert mask('{"password": "xyz987"}') == '{"password": "***"}'
    assert mask("nothing secret here") == "nothing secret here"


@pytest.mark.parametrize("unit", ["camunda-worker", "task-creator"])
@pytest.mark.parametrize("case", ["file-in-the-way", "directory-in-the-way", "unwritable"])
def test_a_bad_log_directory_stops_the_start_with_one_line(tmp_path: Path, unit: str, case: str) -> None:
    logs = tmp_path / "logs"
    if case == "file-in-the-way":
        logs.write_text("not a folder")
    elif case == "directory-in-the-way":
        (logs / f"{unit}.log").mkdir(parents=True)
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        logs.mkdir()
        logs.chmod(0o500)
    (tmp_path / ".env.dev").write_text(f"LOG_DIR={logs}\n")
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT / unit,
        env={"EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(logs) in lines[0] and "LOG_DIR" in lines[0]


def test_log_files_are_created_readable_by_owner_and_group_only(tmp_path: Path) -> None:
    environment = Environment(name="dev", root=tmp_path, env_file=tmp_path / ".env.dev", logs_dir=tmp_path / "logs")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "unit.log").write_text("from an older version\n")
    (tmp_path / "logs" / "unit.log").chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        setup_logging("unit", environment, LoggingSettings(json_file=True))
        logger.error("something")
    finally:
        logger.remove()
        os.umask(old_umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "logs").iterdir()}
    assert modes == {"unit.log": 0o640, "unit.errors.log": 0o640, "unit.json": 0o640}
