"""Logs: env label on every line, files per component, secrets never written."""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from env_loader import Environment
from exchanger.logs import setup_logging
from exchanger.secrets import mask, register_secret
from exchanger.settings import LoggingSettings


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
