"""The python system's handler: runs the ``@task`` function registered for the task's topic.

The function's dict completes the task at once (no tracker). Its exceptions are outcomes
(:mod:`exchanger.creator.outcomes`): ``BpmnError`` → bpmn_error, ``Incident`` → failure with retries 0,
anything else → failure with the retries decremented and the function's ``retry_timeout`` (Camunda
schedules the retry; ``retryConfig`` on the activity overrides the decorator).
"""

from __future__ import annotations

from typing import Any

from exchanger.contracts import TaskMessage
from exchanger.creator.base import BaseMessageHandler, Done, HandlerOutcome, SystemContext
from exchanger.creator.retry_policy import RetryPolicy
from exchanger.errors import Incident
from exchanger.settings import load
from exchanger.systems.python.registry import Registry, import_task_modules, registry
from exchanger.systems.python.settings import PythonTasksSettings
from exchanger.variables import to_typed_map


class PythonTaskHandler(BaseMessageHandler):
    retry_through_camunda = True

    def __init__(self, context: SystemContext, *, settings: PythonTasksSettings | None = None,
                 tasks: Registry | None = None) -> None:
        super().__init__(context)
        self.settings = settings or load(PythonTasksSettings)
        self.tasks = tasks or registry
        import_task_modules(self.settings.module_list)

    def retry_policy_for(self, task: TaskMessage) -> RetryPolicy | None:
        config = self.tasks.get(task.topic_name)
        return config.retry_policy if config else None

    def create(self, task: TaskMessage) -> HandlerOutcome:
        config = self.tasks.get(task.topic_name)
        if config is None:
            raise Incident(
                f"no python task function is registered for topic {task.topic_name!r} "
                f"(registered: {', '.join(self.tasks.topics) or 'none'}); add a @task({task.topic_name!r}) "
                f"function to a module listed in PYTHON_TASKS_MODULES, restart task-creator and retry the incident"
            )
        result: Any = config.function(task)
        if result is None:
            return Done()
        if not isinstance(result, dict):
            raise Incident(f"task function {config.name} returned {type(result).__name__}; it must return a dict "
                           f"of variables or None")
        try:
            to_typed_map(result)
        except TypeError as exc:
            raise Incident(f"task function {config.name} returned a variable Camunda cannot store: {exc}") from None
        return Done(variables=result)
