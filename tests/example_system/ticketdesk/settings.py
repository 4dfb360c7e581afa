"""Settings of TicketDesk (``TICKETDESK_*``): what every tracked web service has (base URL, timeouts,
check interval, deleted-item policy, …), nothing of its own but a shorter check interval."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from exchanger.settings import WebServiceSettings


class TicketDeskSettings(WebServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TICKETDESK_")

    base_url: str = WebServiceSettings.field_with("base_url", description="root of the TicketDesk API")
    check_interval_s: float = WebServiceSettings.field_with("check_interval_s", default=0.2)
    deleted_error_code: str = WebServiceSettings.field_with("deleted_error_code", default="TICKET_DELETED")
