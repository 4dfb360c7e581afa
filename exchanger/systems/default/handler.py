"""Tasks nobody routes: report an incident naming the topic and how to route it, and park a copy.

Without this, a task whose topic is in no system's list would wait under its long lock forever.
"""

from __future__ import annotations

from exchanger.contracts import TaskMessage
from exchanger.creator.base import BaseMessageHandler, HandlerOutcome
from exchanger.errors import Incident


class DefaultTaskHandler(BaseMessageHandler):
    def create(self, task: TaskMessage) -> HandlerOutcome:
        topic = task.topic_name
        raise Incident(
            f"no system handles topic {topic!r}: add it to a system's topic list in ROUTING_FILE "
            f"(e.g. [systems] python = [..., \"{topic}\"]), restart camunda-worker and task-creator, "
            f"then retry this incident in Cockpit",
            details=f"task {task.task_id} of process {task.process_definition_key or task.process_definition_id} "
                    f"(activity {task.activity_id}) arrived in {self.context.queue}, the queue for unrouted topics",
        )
