"""Settings of the python system (``PYTHON_TASKS_*``): which modules hold task functions, example tasks' knobs."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from exchanger.settings import ExchangerSettings

DEFAULT_MODULES = "exchanger.systems.python.examples"


class PythonTasksSettings(ExchangerSettings):
    model_config = SettingsConfigDict(env_prefix="PYTHON_TASKS_")

    modules: str = Field(DEFAULT_MODULES, description="comma-separated modules whose @task functions are served")
    http_timeout_s: float = Field(30.0, gt=0, description="read timeout of the http_request example task")
    http_tls_verify: bool = Field(True, description="TLS verification of the http_request example task")
    notify_url: str = Field("", description="render_notification POSTs the text here; empty = only returned")

    @property
    def module_list(self) -> list[str]:
        return [m.strip() for m in self.modules.split(",") if m.strip()]
