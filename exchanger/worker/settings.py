"""camunda-worker's own settings (``WORKER_*``); Camunda's are in :mod:`exchanger.camunda.settings`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from exchanger.settings import ExchangerSettings


class WorkerSettings(ExchangerSettings):
    model_config = SettingsConfigDict(env_prefix="WORKER_")

    health_port: int = Field(9101, ge=0, le=65535, description="/healthz /readyz /metrics; 0 = off")
    health_host: str = "127.0.0.1"
    ready_max_poll_age_s: float = Field(120.0, gt=0, description="not ready when the last good poll is older")

    response_prefetch: int = Field(10, ge=1, description="responses applied to Camunda at once")
    response_max_attempts: int = Field(8, ge=1, description="tries of a response Camunda refuses before it becomes "
                                       "an incident (and is parked); an unreachable Camunda is waited for")
    response_retry_initial_s: float = Field(2.0, gt=0, description="first delayed retry; doubles each time")
    response_retry_max_s: float = Field(300.0, gt=0)

    lock_extend_after_s: float = Field(30.0, ge=0, description="a published task whose response has not been "
                                       "applied this long gets the in-flight lock (CAMUNDA_LOCK_DURATION); "
                                       "0 = right after the confirm; at most half the fetch lock")
    publish_window: int = Field(100, ge=1, description="task messages published and not yet confirmed at once")

    metadata_cache_size: int = Field(500, ge=1, description="process definitions kept")
    metadata_cache_ttl_s: float = Field(3600.0, gt=0)
    metadata_failure_ttl_s: float = Field(5.0, ge=0, description="a failed XML fetch is remembered this long")

    shutdown_deadline_s: float = Field(30.0, gt=0, description="stop fetching, unlock, drain and close within")
    lock_dir: str = Field("", description="folder of the instance lock file; empty = run/ under the project root")
