"""Camunda connection and fetch settings (``CAMUNDA_*``), shared by every daemon that talks to the engine.

The names the product was commissioned with keep working: ``CAMUNDA_BASE_URL``, ``CAMUNDA_WORKER_ID``,
``CAMUNDA_TENANT_ID``, ``CAMUNDA_AUTH_USERNAME``, ``CAMUNDA_AUTH_PASSWORD`` and ``CAMUNDA_LOCK_DURATION``
(the long in-flight lock, milliseconds, one year by default).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from exchanger.settings import ExchangerSettings

ONE_YEAR_MS = 31_536_000_000  # the in-flight lock: a task waits in a queue and an external system that long
MAX_ASYNC_RESPONSE_TIMEOUT_MS = 1_800_000  # Camunda refuses longer long polls with 400


class CamundaSettings(ExchangerSettings):
    model_config = SettingsConfigDict(env_prefix="CAMUNDA_")

    base_url: str = Field("http://localhost:8080/engine-rest", description="the /engine-rest root")
    worker_id: str = Field("exchanger", min_length=1, description="workerId of every lock")
    tenant_id: str = Field("", description="fetch only this tenant's tasks; empty = tasks without tenant")
    auth_username: str = ""
    auth_password: SecretStr = SecretStr("")
    auth_bearer_token: SecretStr = SecretStr("")

    tls_verify: bool = Field(True, description="verify the server certificate; off only on purpose (warns)")
    tls_ca_bundle: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0, description="read timeout of every call except the long poll")
    long_poll_margin_s: float = Field(5.0, gt=0, description="read timeout of fetchAndLock = poll + this")
    http_attempts: int = Field(4, ge=1, description="tries of a call on a transient error (not fetchAndLock)")
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)

    lock_duration: int = Field(ONE_YEAR_MS, gt=0, description="ms; the lock once the broker confirmed the task")
    fetch_lock_minutes: float = Field(5.0, gt=0, description="the short lock of fetchAndLock, until confirmed")
    async_response_timeout_ms: int = Field(20_000, ge=0, le=MAX_ASYNC_RESPONSE_TIMEOUT_MS)
    max_tasks: int = Field(10, ge=1)
    use_priority: bool = True
    fetch_variables: str = Field("*", description="'*' = all variables, else a comma-separated list of names")
    deserialize_values: bool = True
    topic_discovery: bool = Field(False, description="also fetch topics nobody routed; they go to default")
    topic_discovery_interval_s: float = Field(60.0, gt=0)

    failure_max_retries: int = Field(3, ge=0, description="retries reported on a task's first failure")
    failure_retry_timeout_ms: int = Field(60_000, ge=0, description="wait before a failed task is fetched again")

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def fetch_lock_ms(self) -> int:
        return max(1, int(self.fetch_lock_minutes * 60_000))

    @property
    def variable_names(self) -> list[str] | None:
        """None = all variables (Camunda's ``variables: null``)."""
        if self.fetch_variables.strip() == "*":
            return None
        return [name.strip() for name in self.fetch_variables.split(",") if name.strip()]

    @property
    def tls_mode(self) -> str:
        """For the start-up banner."""
        if not self.base_url.startswith("https://"):
            return "plain HTTP"
        if not self.tls_verify:
            return "TLS, verification OFF"
        mode = f"TLS, verified with {self.tls_ca_bundle}" if self.tls_ca_bundle else "TLS, verified"
        return mode + (", client certificate" if self.tls_client_cert else "")
