"""Settings written before the folder of systems was renamed (``exchanger.consumers`` → ``exchanger.systems``).

A company's routing table and ``PYTHON_TASKS_MODULES`` may still name ``exchanger.consumers.<system>``:
they load the very same classes and task registry, and the log says which name to write instead.
Run in a fresh interpreter so that the old names are imported (and logged) for the first time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    from loguru import logger
    logger.remove()
    logger.add(sys.stdout, format="LOG {message}")
    from exchanger.creator.loader import load_components
    from exchanger.creator.routing_config import CreatorRouting
    from exchanger.creator.settings import CreatorSettings
    from exchanger.settings import load
    from exchanger.systems import resolve
    from exchanger.systems.bitrix24.handler import Bitrix24TaskHandler
    from exchanger.systems.python.handler import PythonTaskHandler
    from exchanger.systems.python.registry import registry

    settings = load(CreatorSettings)
    components = load_components(settings, CreatorRouting.from_settings(settings), "responses")
    print("HANDLER", type(components.handlers["legacy.queue"].handler) is PythonTaskHandler)
    print("TOPICS", "echo" in registry.topics)
    print("RESOLVED", resolve("exchanger.consumers.bitrix24.handler:Bitrix24TaskHandler") is Bitrix24TaskHandler)
""")


def test_a_routing_table_and_task_modules_naming_exchanger_consumers_still_load():
    env = {**os.environ,
           "CREATOR_QUEUE_HANDLERS": json.dumps({"legacy.queue": {"module": "exchanger.consumers.python.handler",
                                                                  "handler_class": "PythonTaskHandler"}}),
           "CREATOR_QUEUES": "legacy.queue",
           "PYTHON_TASKS_MODULES": "exchanger.consumers.python.examples"}
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert {"HANDLER True", "TOPICS True", "RESOLVED True"} <= set(lines), run.stdout
    assert ("LOG exchanger.consumers.python.handler is the old name of exchanger.systems.python.handler (the folder "
            "of systems was renamed); write the new name in routing tables, settings and imports") in lines
