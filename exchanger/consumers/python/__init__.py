"""The python system: in-process task functions registered with ``@task`` (see :mod:`.registry`)."""

from exchanger.consumers.python.registry import task
from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(
    name="python",
    topics=("send_email", "http_request", "render_notification", "echo"),
    handler="exchanger.consumers.python.handler:PythonTaskHandler",
    settings="exchanger.consumers.python.settings:PythonTasksSettings",
)

__all__ = ["SYSTEM", "task"]
