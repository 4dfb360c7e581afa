"""Settings: one pydantic-settings class per concern, read from the process environment.

``env_loader`` has already merged ``.env.<env>`` into ``os.environ`` (the real environment wins),
so every class here reads the environment only. Every field's variable name is documented in
``config.env.example``; a test proves the two lists are the same. :func:`load` turns a validation
error into a :class:`~exchanger.errors.ConfigError` that names the variable, and registers every
secret value with :mod:`exchanger.secrets` so it is masked in logs.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from exchanger.errors import ConfigError
from exchanger.secrets import register_secret

S = TypeVar("S", bound="ExchangerSettings")


class ExchangerSettings(BaseSettings):
    """Base of every settings class; subclasses set ``env_prefix`` or per-field ``alias``."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True)

    @classmethod
    def env_names(cls) -> list[str]:
        """The environment variable name of every field, as users write them."""
        prefix = (cls.model_config.get("env_prefix") or "").upper()
        names = []
        for name, field in cls.model_fields.items():
            names.append((field.alias or f"{prefix}{name}").upper())
        return names

    @classmethod
    def field_with(cls, name: str, **changes: Any) -> Any:
        """This class's field ``name`` with another ``default`` (or ``description``), its checks kept:
        a subclass changes a default by ``x: int = Base.field_with("x", default=5)`` without restating
        (and drifting from) the rest of the declaration."""
        return FieldInfo.merge_field_infos(cls.model_fields[name], **changes)


def load(cls: type[S]) -> S:
    """Instantiate ``cls`` from the environment, or raise ``ConfigError`` naming the bad variable."""
    try:
        settings = cls()
    except ValidationError as exc:
        prefix = (cls.model_config.get("env_prefix") or "").upper()
        problems = []
        for error in exc.errors():
            field_name = str(error["loc"][0]) if error["loc"] else "?"
            field = cls.model_fields.get(field_name)
            variable = (field.alias if field and field.alias else f"{prefix}{field_name}").upper()
            value = error.get("input")
            secret = field is not None and "SecretStr" in str(field.annotation)
            shown = "" if secret or isinstance(value, dict) else f" (got {value!r})"
            problems.append(f"{variable}: {error['msg']}{shown}")
        hint = " — fix it in the environment or the .env file"
        raise ConfigError("invalid setting " + "; ".join(problems) + hint) from None
    for value in settings.model_dump().values():
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
    return settings


# Modules whose settings classes hold secrets of some component besides the systems' own (those come
# from the registry); every process imports them so that it knows (and masks) every secret of the
# environment, not only those of the settings it loads itself.
SECRET_SETTINGS_MODULES = ("exchanger.camunda.settings",)


def register_environment_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Register for masking the value of every secret setting found in the environment, whichever component
    reads it: an error body of one system may echo another's password (task-creator never loads the Camunda
    settings, yet a Camunda answer echoing ``CAMUNDA_AUTH_PASSWORD`` reaches its logs and parked records)."""
    environ = os.environ if environ is None else environ
    upper = {name.upper(): value for name, value in environ.items()}
    from exchanger.systems import settings_modules  # the registry imports the systems' packages: not at import

    for module in (*SECRET_SETTINGS_MODULES, *settings_modules()):
        importlib.import_module(module)
    for cls in all_settings_classes():
        prefix = (cls.model_config.get("env_prefix") or "").upper()
        for name, field in cls.model_fields.items():
            if "SecretStr" in str(field.annotation):
                register_secret((upper.get((field.alias or f"{prefix}{name}").upper()) or "").strip())


def all_settings_classes() -> list[type[ExchangerSettings]]:
    """Every settings class defined anywhere in the package (subclasses, recursively)."""
    found: list[type[ExchangerSettings]] = []
    pending = list(ExchangerSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        if not cls.__dict__.get("abstract_settings", False):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


class ExternalSystemSettings(ExchangerSettings):
    """Transport settings every external-system client has, under its own prefix (``BITRIX_``, …).

    Subclasses redeclare a field only to change its default.
    """

    abstract_settings: ClassVar[bool] = True  # a base, not read on its own

    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    attempts: int = Field(4, ge=1, description="tries of one call on transient errors (first included); a "
                          "call that is not idempotent only when it cannot have been done (429, no connection)")
    tls_verify: bool = Field(True, description="verify the server certificate; off only on purpose")
    tls_ca_file: str | None = Field(None, description="PEM bundle of a private CA")
    write_settle_s: float = Field(
        90.0, ge=0,
        description="after a create (a call that is not idempotent) whose answer timed out, wait this long before "
                    "looking it up and "
                    "trying again: longer than the server may still take to finish the original request",
    )


class TrackedSystemSettings(ExternalSystemSettings):
    """What every system whose work items are tracked has: how often and how many at a time an open item
    is checked, and what a deleted item means for the process. Under the system's own prefix, so the
    variables stay ``BITRIX_CHECK_INTERVAL_S``, ``OPENPROJECT_DELETED_ERROR_CODE``, … as users have them.

    A subclass sets its own ``deleted_error_code`` default with :meth:`field_with`, and
    ``max_check_batch`` when its tracker can check many items in one request.
    """

    abstract_settings: ClassVar[bool] = True
    max_check_batch: ClassVar[int] = 1  # items one check request can answer about; 1 = no check_many

    check_interval_s: float = Field(30.0, gt=0, description="how often the tracker looks at an open item, seconds")
    check_batch_size: int = Field(1, ge=1, description="open items checked per request; 1 = one request per item")
    deleted_error_code: str = Field("ITEM_DELETED", min_length=1,
                                    description="BPMN error code sent when the tracked item was deleted")
    deleted_as_failure: bool = Field(False, description="report a deleted item as a failure (an incident) instead "
                                                        "of the BPMN error")

    @model_validator(mode="after")
    def _batch_fits(self) -> TrackedSystemSettings:
        if self.check_batch_size > self.max_check_batch:
            raise ValueError(f"check_batch_size: at most {self.max_check_batch} items per check request")
        return self


class WebServiceSettings(TrackedSystemSettings):
    """A tracked system reached at one base URL (``<PREFIX>BASE_URL``)."""

    abstract_settings: ClassVar[bool] = True

    base_url: str = Field(..., description="root URL of the system's API")

    @field_validator("base_url")
    @classmethod
    def _http_root(cls, value: str) -> str:
        """http(s), no trailing slash (paths are appended with a leading one)."""
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]


class LoggingSettings(ExchangerSettings):
    model_config = SettingsConfigDict(env_prefix="LOG_")

    level: LogLevel = "INFO"
    json_file: bool = Field(False, description="also write logs/<env>/<component>.json (one JSON object a line)")
    rotation: str = Field("50 MB", description="loguru rotation of the log files")
    retention: str = Field("14 days", description="loguru retention of rotated files")
    dir: str = Field("", description="log folder; empty = logs/<env>/ under the project root")


class RabbitMQSettings(ExchangerSettings):
    model_config = SettingsConfigDict(env_prefix="RABBITMQ_")

    host: str = "localhost"
    port: int = Field(5672, ge=1, le=65535)
    virtual_host: str = "/"
    username: str = "guest"
    password: SecretStr = SecretStr("guest")
    heartbeat_s: int = Field(30, ge=0, description="AMQP heartbeat; long handlers run off the I/O thread")
    blocked_connection_timeout_s: float = Field(60.0, gt=0)
    connection_attempts: int = Field(3, ge=1)
    use_tls: bool = False
    tls_ca_file: str | None = None
    tls_verify: bool = True
    queue_type: Literal["classic", "quorum"] = "classic"
    prefetch: int = Field(10, ge=1, description="unacked deliveries per consumer")
    reconnect_max_s: float = Field(30.0, gt=0, description="cap of the reconnect backoff")
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024,
                                   description="a consumed message above this size is refused at once: parked "
                                               "truncated with the reason (a task: an incident), never processed")
    management_url: str = Field("", description="management API root (http://host:15672) for `exchanger queues`, "
                                                "`status` and `recover`; empty = rabbitmqctl or passive declares")


class TopologySettings(ExchangerSettings):
    """Names of exchanges and queues; every name is configurable (``AMQP_*``)."""

    model_config = SettingsConfigDict(env_prefix="AMQP_")

    tasks_exchange: str = "camunda.external.tasks"
    unrouted_exchange: str = "camunda.unrouted.tasks"
    responses_exchange: str = "camunda.task.responses"
    responses_queue: str = "camunda.responses.queue"
    parking_queue: str = "errors.camunda_tasks.queue"
    delay_exchange: str = "exchanger.delay"
    redeliver_exchange: str = "exchanger.redeliver"
