"""The python system: in-process task functions registered with ``@task`` (see :mod:`.registry`)."""

from exchanger.systems import SystemSpec
from exchanger.systems.python.registry import task

SYSTEM = SystemSpec(
    name="python",
    topics=("send_email", "http_request", "render_notification", "echo"),
    handler="exchanger.systems.python.handler:PythonTaskHandler",
    settings="exchanger.systems.python.settings:PythonTasksSettings",
)

__all__ = ["SYSTEM", "task"]
