"""Exchanger.py's setting names keep working where they mean the same thing, each with a warning naming the
new name; names with no equivalent are reported as not read."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from loguru import logger

from env_loader import load_environment
from exchanger.camunda.settings import CamundaSettings
from exchanger.logs import setup_logging
from exchanger.settings import LoggingSettings, RabbitMQSettings, TopologySettings
from exchanger.systems.bitrix24.settings import Bitrix24Settings

OLD_FILE = """RABBITMQ_HEARTBEAT=600
RABBITMQ_RESPONSES_QUEUE_NAME=old.responses
CAMUNDA_HTTP_TIMEOUT_MILLIS=45000
RETRY_ATTEMPTS=3
RETRY_DELAY=5
HEARTBEAT_INTERVAL=30
BITRIX_WEBHOOK_URL=https://portal.example/rest/1/abcdef/
CAMUNDA_SLEEP_SECONDS=10
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".env.prod").write_text(OLD_FILE, encoding="utf-8")
    monkeypatch.setenv("EXCHANGER_HOME", str(tmp_path))
    return tmp_path


def test_an_old_env_file_is_read_under_the_new_names_with_warnings(home: Path, monkeypatch: pytest.MonkeyPatch):
    environ: dict[str, str] = {"CAMUNDA_READ_TIMEOUT_S": "12"}  # a new name set explicitly wins
    environment = load_environment(environ)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert RabbitMQSettings().heartbeat_s == 600
    assert TopologySettings().responses_queue == "old.responses"
    camunda = CamundaSettings()
    assert (camunda.read_timeout_s, camunda.failure_max_retries, camunda.failure_retry_timeout_ms) == (12, 2, 5000)
    assert Bitrix24Settings().check_interval_s == 30
    warnings = "\n".join(environment.warnings)
    assert "RABBITMQ_HEARTBEAT (Exchanger.py) read as RABBITMQ_HEARTBEAT_S=600; rename it" in warnings
    assert "RETRY_ATTEMPTS (Exchanger.py) read as CAMUNDA_FAILURE_MAX_RETRIES=2" in warnings
    assert "CAMUNDA_HTTP_TIMEOUT_MILLIS (Exchanger.py) is ignored: CAMUNDA_READ_TIMEOUT_S is set" in warnings
    assert "CAMUNDA_SLEEP_SECONDS (Exchanger.py) is not read by Exchanger" in warnings


def test_the_warnings_are_logged_once_logging_is_set_up(home: Path) -> None:
    environment = load_environment({})
    console = io.StringIO()
    setup_logging("test", environment, LoggingSettings(dir=str(home / "logs")), console=console)
    logger.remove()
    assert "HEARTBEAT_INTERVAL (Exchanger.py) read as BITRIX_CHECK_INTERVAL_S=30; rename it" in console.getvalue()
