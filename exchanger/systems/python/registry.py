"""The python system's task registry: functions registered by topic with ``@task`` (the pyzeebe router).

::

    from exchanger.systems.python import task

    @task("send_invoice", retries=3, retry_timeout="PT5M")
    def send_invoice(job: TaskMessage) -> dict:
        ...                                   # returned dict → complete with these variables
        raise BpmnError("NO_CUSTOMER", "…")   # → bpmn_error, caught by a boundary event
        raise Incident("…")                   # → failure with retries 0: an incident at once
        # any other exception                 → failure with retries decremented and retry_timeout

The modules holding task functions are named by ``PYTHON_TASKS_MODULES``; importing them registers
their functions. A topic registered twice is refused when the second one registers.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchanger.contracts import TaskMessage
from exchanger.creator.retry_policy import RetryPolicy, parse_duration_ms
from exchanger.errors import ConfigError

DEFAULT_RETRIES = 3  # Camunda retries of a task function after its first failure
DEFAULT_RETRY_TIMEOUT = "PT5M"  # wait before each of them

TaskFunction = Callable[[TaskMessage], dict[str, Any] | None]


class DuplicateTask(ConfigError):
    """Two functions were registered for one topic."""


@dataclass(frozen=True)
class TaskConfig:
    topic: str
    function: TaskFunction
    retries: int
    retry_timeout_ms: int

    @property
    def name(self) -> str:
        return f"{self.function.__module__}.{self.function.__qualname__}"

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy((self.retry_timeout_ms,) * self.retries, source=f"@task({self.topic!r})")


class Registry:
    """Topic → task function; thread-safe, refuses duplicates."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskConfig] = {}
        self._lock = threading.Lock()

    def task(
        self, topic: str, *, retries: int = DEFAULT_RETRIES, retry_timeout: str = DEFAULT_RETRY_TIMEOUT
    ) -> Callable[[TaskFunction], TaskFunction]:
        """Register the decorated function for ``topic``; it is returned unchanged."""
        if retries < 0:
            raise ConfigError(f"@task({topic!r}): retries must be 0 or more, got {retries}")
        try:
            timeout_ms = parse_duration_ms(retry_timeout)
        except ValueError as exc:
            raise ConfigError(f"@task({topic!r}): retry_timeout {exc}") from None

        def register(function: TaskFunction) -> TaskFunction:
            self.add(TaskConfig(topic, function, retries, timeout_ms))
            return function

        return register

    def add(self, config: TaskConfig) -> None:
        with self._lock:
            existing = self._tasks.get(config.topic)
            if existing is not None and existing.function is not config.function:
                raise DuplicateTask(f"topic {config.topic!r} is already registered by {existing.name}; "
                                    f"{config.name} cannot register it too")
            self._tasks[config.topic] = config

    def get(self, topic: str) -> TaskConfig | None:
        return self._tasks.get(topic)

    @property
    def topics(self) -> list[str]:
        return sorted(self._tasks)


registry = Registry()  # the registry @task writes to and the python handler reads
task = registry.task


def import_task_modules(modules: list[str]) -> None:
    """Import each module so that its ``@task`` functions register; stop the start naming a bad one."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - any import failure stops the start, named
            raise ConfigError(f"PYTHON_TASKS_MODULES: cannot import {name}: {type(exc).__name__}: {exc}") from exc
