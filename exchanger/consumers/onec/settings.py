"""Settings of the 1C consumer (``ONEC_*``); the system, queue and topic names stay ``1c``."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from exchanger.settings import ExternalSystemSettings


class OneCSettings(ExternalSystemSettings):
    model_config = SettingsConfigDict(env_prefix="ONEC_")

    base_url: str = Field(..., description="the publication's OData root, e.g. https://host/trade/odata/standard.odata")
    username: str = Field(..., min_length=1, description="infobase user (its rights and RLS apply)")
    password: SecretStr = Field(SecretStr(""), description="that user's password")
    external_id_attribute: str = Field(
        "ВнешнийИдентификатор", min_length=1, description="string attribute holding the Camunda task id"
    )
    status_attribute: str = Field("", description="attribute whose value marks a document done; empty = posted")
    status_done_value: str = Field("", description="value of status_attribute that means done")
    deleted_error_code: str = Field("ONEC_DOCUMENT_DELETED", min_length=1, description="BPMN error code")
    check_interval_s: float = Field(30.0, gt=0, description="how often the tracker reads an open document")
    posting_operational: bool = Field(False, description="PostingModeOperational of the Post action")
    read_timeout_s: float = Field(60.0, gt=0, description="posting a large document can take a while")

    @field_validator("base_url")
    @classmethod
    def _odata_root(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _status_pair(self) -> OneCSettings:
        if bool(self.status_attribute) != bool(self.status_done_value):
            raise ValueError("ONEC_STATUS_ATTRIBUTE and ONEC_STATUS_DONE_VALUE are set together or not at all")
        return self
