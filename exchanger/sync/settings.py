"""Settings of camunda-sync: the StormBPMN account (``STORMBPMN_*``) and the sync itself (``CAMUNDA_SYNC_*``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from exchanger.errors import ConfigError
from exchanger.settings import ExchangerSettings, ExternalSystemSettings
from exchanger.sync.converter import DEFAULT_TOPIC, DEFAULT_TTL_DAYS, Options

DEFAULT_RATE_PER_MIN = 4.0  # the vendor allows 5 a minute per account; one spare for a person's script
DEFAULT_INTERVAL_S = 900.0  # a pass every 15 minutes: 223 diagrams cost 12 calls, 3 minutes at 4 a minute


def words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


class StormSettings(ExternalSystemSettings):
    model_config = SettingsConfigDict(env_prefix="STORMBPMN_")

    base_url: str = Field("https://stormbpmn.com", description="host root; the public API is /public-api/v1/")
    api_key: SecretStr = Field(SecretStr(""), description="X-Api-Key of the team (Команда → Настройки команды)")
    bearer_token: SecretStr = Field(SecretStr(""), description="browser token for the internal /api/v1 "
                                                               "endpoints (responsibles and checklists)")
    internal_assignees: bool = Field(False, description="read responsibles and checklists from /api/v1 (needs "
                                                        "STORMBPMN_BEARER_TOKEN; about 7 days valid)")
    rate_per_min: float = Field(DEFAULT_RATE_PER_MIN, gt=0, le=5, description="Storm calls a minute, never > 5")
    rate_window_s: float = Field(60.0, gt=0, description="the quota window; only tests and an on-premises "
                                                         "server with its own limit change it")
    read_timeout_s: float = Field(30.0, gt=0)
    attempts: int = Field(3, ge=1, description="tries of a call on network errors and 5xx (never 401/403/404)")

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class SyncSettings(ExchangerSettings):
    model_config = SettingsConfigDict(env_prefix="CAMUNDA_SYNC_")

    state_file: str = Field("", description="SQLite state; empty = state/<env>/camunda-sync.sqlite")
    interval_s: float = Field(DEFAULT_INTERVAL_S, gt=0, description="seconds between passes of the daemon")
    health_port: int = Field(9103, ge=0, le=65535, description="/healthz, /readyz, /metrics; 0 = off")
    topic: str = Field(DEFAULT_TOPIC, description="topic of converted activities (must be routed)")
    ttl_days: int = Field(DEFAULT_TTL_DAYS, ge=1, description="camunda:historyTimeToLive of every process")
    yes_words: str = Field("да", description="comma list: flow labels meaning yes")
    no_words: str = Field("нет", description="comma list: flow labels meaning no")
    service_tasks: Literal["implement", "reject"] = "implement"
    keep_timer_catches: bool = False
    key_policy: Literal["process-id", "diagram"] = "process-id"
    assignees_file: str = Field("", description="JSON {storm assignee id or name: Bitrix24 user id}")
    require_assignee: bool = False
    overrides_file: str = Field("", description="JSON {diagram id: {key, topic, element_topics, ttl_days}}")
    include_ids: str = Field("", description="comma list: only these diagrams")
    exclude_ids: str = ""
    types: str = Field("BPMN", description="comma list of Storm diagram types")
    statuses: str = Field("", description="comma list of Storm statuses (NEW, IN_PROGRESS, DONE…); empty = all")
    folders: str = Field("", description="comma list of Storm folders/teams; empty = all")
    name_pattern: str = Field("", description="regular expression the diagram name must contain")
    deployment_source: str = "camunda-sync"

    def state_path(self, root: Path, env: str) -> Path:
        return Path(self.state_file) if self.state_file else root / "state" / env / "camunda-sync.sqlite"

    def options(self, diagram_id: str = "") -> Options:
        """The converter options for one diagram, with its overrides."""
        override = self.overrides().get(diagram_id, {})
        return Options(
            topic=override.get("topic", self.topic),
            element_topics=dict(override.get("element_topics", {})),
            ttl_days=int(override.get("ttl_days", self.ttl_days)),
            yes_words=words(self.yes_words), no_words=words(self.no_words),
            service_tasks=self.service_tasks, keep_timer_catches=self.keep_timer_catches,
            assignees=self.assignees(), require_assignee=self.require_assignee,
            key_policy=self.key_policy, key=str(override.get("key", "")),
        )

    def assignees(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in _json_file(self.assignees_file, "CAMUNDA_SYNC_ASSIGNEES_FILE").items()}

    def overrides(self) -> dict[str, dict[str, Any]]:
        return _json_file(self.overrides_file, "CAMUNDA_SYNC_OVERRIDES_FILE")


def _json_file(path: str, variable: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{variable}: {path} must hold a JSON object")
    return data
