"""Settings of the 1C consumer (``ONEC_*``); the system, queue and topic names stay ``1c``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from exchanger.settings import WebServiceSettings

CHECK_BATCH = 40  # objects per check request: 40 Ref_Key clauses are a URL of about 2.5 kB


class OneCSettings(WebServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ONEC_")
    max_check_batch: ClassVar[int] = CHECK_BATCH  # longer URLs than that meet web servers' limits

    base_url: str = WebServiceSettings.field_with(
        "base_url", description="the publication's OData root, e.g. https://host/trade/odata/standard.odata")
    username: str = Field(..., min_length=1, description="infobase user (its rights and RLS apply)")
    password: SecretStr = Field(SecretStr(""), description="that user's password")
    external_id_attribute: str = Field(
        "ВнешнийИдентификатор", min_length=1, description="string attribute holding the Camunda task id"
    )
    status_attribute: str = Field("", description="attribute whose value marks a document done; empty = posted")
    status_done_value: str = Field("", description="value of status_attribute that means done")
    deleted_error_code: str = WebServiceSettings.field_with("deleted_error_code", default="ONEC_DOCUMENT_DELETED")
    check_batch_size: int = WebServiceSettings.field_with("check_batch_size", default=CHECK_BATCH)
    posting_operational: bool = Field(False, description="PostingModeOperational of the Post action")
    read_timeout_s: float = WebServiceSettings.field_with(
        "read_timeout_s", default=60.0, description="posting a large document can take a while")

    @model_validator(mode="after")
    def _status_pair(self) -> OneCSettings:
        if bool(self.status_attribute) != bool(self.status_done_value):
            raise ValueError("ONEC_STATUS_ATTRIBUTE and ONEC_STATUS_DONE_VALUE are set together or not at all")
        return self
