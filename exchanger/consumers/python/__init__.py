"""The python system: in-process task functions registered with ``@task`` (see :mod:`.registry`)."""

from exchanger.consumers.python.registry import task

__all__ = ["task"]
