"""Settings of the OpenProject consumer (``OPENPROJECT_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from exchanger.settings import ExternalSystemSettings


class OpenProjectSettings(ExternalSystemSettings):
    model_config = SettingsConfigDict(env_prefix="OPENPROJECT_")

    base_url: str = Field(..., description="server root, e.g. https://openproject.example.com (no /api/v3)")
    api_key: SecretStr = Field(..., description="API token of the integration user (sent as Basic apikey:<token>)")
    external_id_field: str = Field(
        "customField1",
        pattern=r"^customField\d+$",
        description="string custom field holding the Camunda task id (idempotency key)",
    )
    default_project: str = Field("", description="project id or identifier when the activity names none")
    deleted_error_code: str = Field("OP_WORK_PACKAGE_DELETED", min_length=1, description="BPMN error code")
    check_interval_s: float = Field(
        300.0, gt=0,
        description="how often the tracker reads every open work package (batched): the safety net behind the "
                    "change sweep and the webhooks, so it can be slow")
    sweep_interval_s: float = Field(
        10.0, ge=0,
        description="how often the tracker lists the work packages closed since its last sweep (updatedAt); "
                    "0 = no sweeps, every open work package is read each check interval")
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="signature secret of the OpenProject webhook that calls POST /events/openproject "
                    "(X-OP-Signature); empty = webhooks refused")
    conflict_retries: int = Field(2, ge=0, description="re-reads of lockVersion after a 409 on update")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")
