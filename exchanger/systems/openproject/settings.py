"""Settings of the OpenProject consumer (``OPENPROJECT_*``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from exchanger.settings import WebServiceSettings

PAGE_SIZE = 100  # work packages per page of a list: a batched check asks for one page


class OpenProjectSettings(WebServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPENPROJECT_")
    max_check_batch: ClassVar[int] = PAGE_SIZE

    base_url: str = WebServiceSettings.field_with(
        "base_url", description="server root, e.g. https://openproject.example.com (no /api/v3)")
    api_key: SecretStr = Field(..., description="API token of the integration user (sent as Basic apikey:<token>)")
    external_id_field: str = Field(
        "customField1",
        pattern=r"^customField\d+$",
        description="string custom field holding the Camunda task id (idempotency key)",
    )
    default_project: str = Field("", description="project id or identifier when the activity names none")
    deleted_error_code: str = WebServiceSettings.field_with("deleted_error_code", default="OP_WORK_PACKAGE_DELETED")
    check_interval_s: float = WebServiceSettings.field_with(
        "check_interval_s", default=300.0,
        description="how often the tracker reads every open work package (batched): the safety net behind the "
                    "change sweep and the webhooks, so it can be slow")
    check_batch_size: int = WebServiceSettings.field_with("check_batch_size", default=PAGE_SIZE)
    sweep_interval_s: float = Field(
        10.0, ge=0,
        description="how often the tracker lists the work packages closed since its last sweep (updatedAt); "
                    "0 = no sweeps, every open work package is read each check interval")
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="signature secret of the OpenProject webhook that calls POST /events/openproject "
                    "(X-OP-Signature); empty = webhooks refused")
    conflict_retries: int = Field(2, ge=0, description="re-reads of lockVersion after a 409 on update")
