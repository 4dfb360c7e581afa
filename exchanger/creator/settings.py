"""Settings of the task-creator (``CREATOR_*``): what it serves, how it retries and tracks, its endpoints."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from exchanger.creator.base import DEFAULT_CHECK_INTERVAL_S
from exchanger.creator.event_receiver import DEFAULT_MAX_BYTES as DEFAULT_EVENTS_MAX_BYTES
from exchanger.creator.item_events import DEFAULT_SWEEP_OVERLAP_S
from exchanger.creator.outcomes import DEFAULT_MAX_CHECK_ERRORS, DEFAULT_MAX_RETRY_AFTER_S
from exchanger.creator.retry_policy import DEFAULT_RETRY_CONFIG, RetryPolicy, policy_setting
from exchanger.settings import ExchangerSettings

DEFAULT_CHECK_BATCH_WINDOW_S = 1.0  # how long a batched tracker waits for due records to join a batch
DEFAULT_HEALTH_PORT = 9102  # camunda-worker uses the port below it
# SIGTERM: how long in-flight messages may take before the process exits anyway; longer than the
# slowest read timeout (1C: 60 s) so a write under way is answered, not abandoned to a redelivery;
# shorter than the unit's TimeoutStopSec (90 s)
DEFAULT_DRAIN_S = 75.0


class HandlerSpec(BaseModel):
    """``QUEUE_HANDLERS`` entry: where the handler class of a queue lives."""

    module: str
    handler_class: str


class TrackerSpec(BaseModel):
    """``TRACKER_HANDLERS`` entry: where the tracker class of a sent queue lives, and where results go."""

    module: str
    tracker_class: str
    target_queue: str = ""  # empty: AMQP_RESPONSES_QUEUE


class CreatorSettings(ExchangerSettings):
    model_config = SettingsConfigDict(env_prefix="CREATOR_")

    queues: str = Field("", description="comma-separated queues served; empty = every queue whose module imports")
    queue_handlers: dict[str, HandlerSpec] = Field(
        default_factory=dict, description="JSON {queue: {module, handler_class}} added to / replacing the defaults")
    sent_queues_mapping: dict[str, str] = Field(
        default_factory=dict, description="JSON {queue: sent queue} added to / replacing the defaults")
    tracker_handlers: dict[str, TrackerSpec] = Field(
        default_factory=dict, description="JSON {sent queue: {module, tracker_class, target_queue}}")
    prefetch: dict[str, int] = Field(
        default_factory=dict, description="JSON {queue: prefetch}; others use RABBITMQ_PREFETCH")
    retry_config: str = Field(DEFAULT_RETRY_CONFIG, description="default retry policy (R3/PT5M or PT10S,PT1M,…)")
    check_interval_s: float = Field(DEFAULT_CHECK_INTERVAL_S, gt=0,
                                    description="tracker re-check interval for systems that set none")
    check_batch_window_s: float = Field(
        DEFAULT_CHECK_BATCH_WINDOW_S, gt=0, le=60,
        description="a tracker that checks many items per request waits this long for due records to join a batch")
    max_tracking_age_s: float = Field(0.0, ge=0, description="give up tracking an item after this long; 0 = never")
    max_check_errors: int = Field(DEFAULT_MAX_CHECK_ERRORS, ge=1,
                                  description="checks in a row failing with a non-transient error before an incident")
    max_retry_after_s: float = Field(DEFAULT_MAX_RETRY_AFTER_S, gt=0,
                                     description="cap of a server's Retry-After before a retry, seconds")
    drain_s: float = Field(DEFAULT_DRAIN_S, gt=0, description="SIGTERM: deadline for in-flight messages")
    health_port: int = Field(DEFAULT_HEALTH_PORT, ge=0, le=65535, description="/healthz /readyz /metrics; 0 = off")
    health_host: str = Field("127.0.0.1", description="address the health endpoint listens on")
    events_port: int = Field(0, ge=0, le=65535,
                             description="POST /events/<system>: calls a system pushes when an item changes "
                                         "(Bitrix24 OnTaskUpdate); 0 = off")
    events_host: str = Field("127.0.0.1", description="address the event endpoint listens on (0.0.0.0 for all; "
                                                      "put a TLS reverse proxy in front)")
    events_max_bytes: int = Field(DEFAULT_EVENTS_MAX_BYTES, ge=1024, description="largest event call accepted")
    sweep_overlap_s: float = Field(DEFAULT_SWEEP_OVERLAP_S, ge=0,
                                   description="a change sweep looks back this far behind the previous one "
                                               "(clock skew, changes committed while listing)")
    lock_dir: str = Field("", description="folder of the instance lock file; empty = run/ under the project root")
    legacy_lock_file: str = Field(
        "/tmp/exchanger-task-creator-{env}.lock",
        description="Exchanger.py's task-creator lock file, held shared so that the two never run at once; "
                    "empty = off")

    @field_validator("retry_config")
    @classmethod
    def _valid_policy(cls, value: str) -> str:
        RetryPolicy.parse(value)  # a ValueError becomes "CREATOR_RETRY_CONFIG: …" in load()
        return value

    @field_validator("prefetch")
    @classmethod
    def _positive_prefetch(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [queue for queue, n in value.items() if n < 1]
        if bad:
            raise ValueError(f"prefetch must be at least 1 (queues {', '.join(bad)})")
        return value

    @property
    def served_queues(self) -> list[str]:
        return [q.strip() for q in self.queues.split(",") if q.strip()]

    @property
    def retry_policy(self) -> RetryPolicy:
        return policy_setting(self.retry_config, "CREATOR_RETRY_CONFIG")
