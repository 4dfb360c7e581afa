"""Settings of the Bitrix24 consumer (``BITRIX_*``): the portal, its limits, and the task fields used."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from exchanger.settings import TrackedSystemSettings
from exchanger.systems.bitrix24.ratelimit import DEFAULT_BURST, DEFAULT_RATE_PER_S

# https://<portal>/rest/<user id>/<webhook code>/  (the trailing slash is optional)
WEBHOOK_URL = re.compile(r"^https?://[^/\s]+(/[^\s]*)?/rest/\d+/[A-Za-z0-9_]+/?$")


class Bitrix24Settings(TrackedSystemSettings):
    model_config = SettingsConfigDict(env_prefix="BITRIX_")
    max_check_batch: ClassVar[int] = 2500  # one batch of 50 tasks.task.list commands of 50 IDs each

    webhook_url: SecretStr = Field(description="inbound webhook https://<portal>/rest/<user id>/<code>/")
    default_responsible_id: int = Field(1, ge=1, description="RESPONSIBLE_ID when the process names nobody")
    default_created_by: int | None = Field(None, ge=1, description="CREATED_BY default; empty = the webhook user")

    rate_per_s: float = Field(DEFAULT_RATE_PER_S, gt=0, description="portal leaky-bucket drain, requests/s")
    burst: int = Field(DEFAULT_BURST, ge=1, description="portal leaky-bucket size, requests")
    write_settle_s: float = TrackedSystemSettings.field_with(
        "write_settle_s", default=70.0, description="the portal stops a request after 60 s; wait past that before "
                                                    "looking up a timed-out write")
    attempts: int = TrackedSystemSettings.field_with(
        "attempts", default=5, description="tries per call for retryable errors (writes: limits, no connection)")

    external_id_field: str = Field("UF_CAMUNDA_ID_EXTERNAL_TASK", description="string UF holding the Camunda task id")
    answer_field: str = Field("UF_RESULT_ANSWER", description="enumeration UF the person answers yes/no in")
    answer_ok_xml_id: str = Field("ok", description="XML_ID of the answer field's 'yes' value")
    answer_no_xml_id: str = Field("no", description="XML_ID of the answer field's 'no' value")
    answer_ok_texts: str = Field("да", description="comma list: answer values whose text means yes (any case), "
                                                   "as the old Exchanger.py portal has them («ДА»)")
    answer_no_texts: str = Field("нет", description="comma list: answer values whose text means no («НЕТ»)")
    result_expected_field: str = Field("UF_RESULT_EXPECTED", description="boolean UF: an answer is expected")
    result_question_field: str = Field("UF_RESULT_QUESTION", description="string UF: the question asked")
    user_fields_cache_s: float = Field(300.0, gt=0, description="how long the user-field list is cached")

    complete_on_awaiting_control: bool = Field(False, description="status 4 (awaiting control) counts as done")
    deleted_error_code: str = TrackedSystemSettings.field_with("deleted_error_code", default="BITRIX_TASK_DELETED")
    check_interval_s: float = TrackedSystemSettings.field_with(
        "check_interval_s", default=300.0,
        description="how often every open task is checked in full (batched): the safety net behind change sweeps "
                    "and events (with BITRIX_SWEEP_INTERVAL_S=0 it is the only look: set 30)")
    sweep_interval_s: float = Field(
        10.0, ge=0, description="seconds between change sweeps (one tasks.task.list filtered by >CHANGED_DATE finds "
                                "the tasks finished since the last sweep); 0 = off")
    sweep_max_pages: int = Field(20, ge=1, description="pages of 50 changed tasks one sweep reads at most")
    events_token: SecretStr = Field(
        SecretStr(""),
        description="auth[application_token] the portal sends with its event calls (OnTaskUpdate), shown when the "
                    "outbound webhook or the local application is created; empty = event calls refused "
                    "(CREATOR_EVENTS_PORT serves them)")
    events_url: str = Field(
        "", description="public URL of POST /events/bitrix24 (the reverse proxy in front of CREATOR_EVENTS_PORT); "
                        "set: the task-creator binds OnTaskUpdate to it with event.bind at start (idempotent)")
    check_batch_size: int = TrackedSystemSettings.field_with(
        "check_batch_size", default=1000,
        description="open tasks checked per request (a batch of tasks.task.list commands of 50 IDs each); 1 = "
                    "one tasks.task.get per task")
    task_url_template: str = Field(
        "{portal}/company/personal/user/{user_id}/tasks/task/view/{task_id}/",
        description="link published for a task; {portal}, {user_id}, {task_id}",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_shape(cls, value: SecretStr) -> SecretStr:
        if not WEBHOOK_URL.match(value.get_secret_value().strip()):
            raise ValueError("expected https://<portal>/rest/<user id>/<webhook code>/")
        return SecretStr(value.get_secret_value().strip())

    @staticmethod
    def _texts(value: str) -> frozenset[str]:
        return frozenset(part.strip().casefold() for part in value.split(",") if part.strip())

    @property
    def ok_texts(self) -> frozenset[str]:
        return self._texts(self.answer_ok_texts)

    @property
    def no_texts(self) -> frozenset[str]:
        return self._texts(self.answer_no_texts)

    def required_user_fields(self) -> dict[str, str]:
        """Task user fields Exchanger writes or reads, with their Bitrix24 ``USER_TYPE_ID``."""
        return {
            self.external_id_field: "string",
            self.answer_field: "enumeration",
            self.result_expected_field: "boolean",
            self.result_question_field: "string",
        }
