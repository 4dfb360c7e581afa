"""Every documented variable is read by some settings class, and every setting is documented."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

import exchanger
from exchanger.errors import ConfigError
from exchanger.secrets import mask
from exchanger.settings import RabbitMQSettings, all_settings_classes, load

ROOT = Path(__file__).resolve().parents[2]
READ_BY_ENV_LOADER = {"EXCHANGER_ENV", "EXCHANGER_HOME", "EXCHANGER_INSTANCE"}


def documented_keys() -> set[str]:
    text = (ROOT / "config.env.example").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)}


def settings_keys() -> dict[str, str]:
    for module in pkgutil.walk_packages(exchanger.__path__, "exchanger."):
        if ".sandbox" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    product = [cls for cls in all_settings_classes() if cls.__module__.startswith("exchanger.")]  # not a test's system
    return {name: cls.__name__ for cls in product for name in cls.env_names()}


def test_every_documented_key_is_read_by_a_settings_class() -> None:
    unread = documented_keys() - set(settings_keys()) - READ_BY_ENV_LOADER
    assert not unread, f"documented in config.env.example but read by nothing: {sorted(unread)}"


def test_every_setting_is_documented() -> None:
    undocumented = {k: v for k, v in settings_keys().items() if k not in documented_keys()}
    assert not undocumented, f"settings missing from config.env.example: {undocumented}"


def test_the_commissioned_variable_names_still_work() -> None:
    keys = set(settings_keys()) | READ_BY_ENV_LOADER
    for name in ("EXCHANGER_ENV", "RABBITMQ_HOST", "RABBITMQ_PORT", "RABBITMQ_VIRTUAL_HOST", "RABBITMQ_USERNAME",
                 "RABBITMQ_PASSWORD", "LOG_LEVEL"):
        assert name in keys


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PORT", "seventy")
    with pytest.raises(ConfigError, match="RABBITMQ_PORT.*'seventy'"):
        load(RabbitMQSettings)


def test_secrets_are_secretstr_and_masked_once_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PASSWORD", "s3cr3t-rabbit-pw")
    settings = load(RabbitMQSettings)
    assert isinstance(settings.password, SecretStr)
    assert "s3cr3t-rabbit-pw" not in repr(settings)
    assert mask("connecting with s3cr3t-rabbit-pw") == "connecting with ***"
