"""Settings of TicketDesk (``TICKETDESK_*``): the transport settings every system has, plus its URL."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from exchanger.settings import ExternalSystemSettings


class TicketDeskSettings(ExternalSystemSettings):
    model_config = SettingsConfigDict(env_prefix="TICKETDESK_")

    base_url: str = Field(..., description="root of the TicketDesk API")
    check_interval_s: float = Field(0.2, gt=0, description="how often the tracker reads an open ticket")
