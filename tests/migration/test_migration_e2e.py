"""Taking over from Exchanger.py end to end: a realistic old state, a dry run that changes nothing, the
migration killed half way and run again, then Exchanger's daemons and the people finish the work.

Everything real: RabbitMQ (a vhost of its own), the sandbox engine and fake portal as processes, the
migration and both daemons as processes (``python -m exchanger.migration``, ``main.py``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from broker_queues import wait_for
from pydantic import SecretStr

from exchanger.amqp.connection import connect
from exchanger.camunda.client import CamundaClient
from exchanger.camunda.operations import EngineOps
from exchanger.camunda.settings import CamundaSettings
from exchanger.contracts import ParkedRecord
from exchanger.migration.inventory import queue_depth
from exchanger.migration.legacy import ERROR_TYPE
from exchanger.migration.old_tool import QUEUE_ORDER
from exchanger.settings import RabbitMQSettings
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger_sandbox import exchanger_py as old
from exchanger_sandbox.demo.people import person_webhook
from exchanger_sandbox.demo.stack import ROOT, Stack

DAEMONS = {
    "CAMUNDA_WORKER_ID": "exchanger",
    "CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS": "5000",
    "CAMUNDA_FETCH_LOCK_MINUTES": "1",
    "WORKER_HEALTH_PORT": "0",
    "WORKER_RESPONSE_RETRY_INITIAL_S": "1",
    "CREATOR_HEALTH_PORT": "0",
    "CREATOR_QUEUES": "bitrix24.queue,bitrix24.sent.queue",
    "CREATOR_CHECK_INTERVAL_S": "1",
    "CREATOR_RETRY_CONFIG": "PT1S,PT2S,PT4S",
    "BITRIX_CHECK_INTERVAL_S": "1",
    "BITRIX_RATE_PER_S": "20",
    "BITRIX_BURST": "100",
    # the procedure's step 6 for an old portal and old BPMN
    "BITRIX_ANSWER_OK_XML_ID": "ДА",
    "BITRIX_ANSWER_NO_XML_ID": "НЕТ",
    "BITRIX_COMPLETE_ON_AWAITING_CONTROL": "true",
    "BITRIX_DELETED_AS_FAILURE": "true",
    "CREATOR_MAX_TRACKING_AGE_S": "0",
}
pytestmark = pytest.mark.slow
OTHER_TENANT = "imenaDev"
QUESTIONNAIRE = {"taskId": "?", "total": 1, "has_codes": True, "items": [{"ID": "3", "CODE": "BUDGET", "questions": [
    {"ID": "9", "CODE": "AMOUNT", "NAME": "Сумма", "TYPE": "integer", "answer": "150000"},
    {"ID": "10", "CODE": "AGREED", "NAME": "Согласовано", "TYPE": "boolean"}]}]}


@dataclass
class OldState:
    """Process instance ids by scenario, and what the test expects of each."""

    instances: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)  # scenario → Camunda task id
    bitrix: dict[str, str] = field(default_factory=dict)  # scenario → Bitrix24 task id
    answer_ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "stack")
    stack.create_vhost()
    try:
        stack.start_sandbox("camunda")
        stack.start_sandbox("bitrix24", "--no-user-fields", "--rate", "20", "--burst", "100", "--ui-user", "2",
                            "--external-id-field", "UF_CAMUNDA_ID_EXTERNAL_TASK")
        stack.write_env_file(DAEMONS)
        yield stack
    finally:
        stack.stop_all()
        stack.delete_vhost()


def clients(stack: Stack) -> tuple[CamundaClient, Bitrix24Client, RabbitMQSettings]:
    camunda = CamundaClient(CamundaSettings(base_url=stack.settings["CAMUNDA_BASE_URL"], worker_id=old.WORKER_ID))
    bitrix = Bitrix24Client(Bitrix24Settings(webhook_url=SecretStr(stack.settings["BITRIX_WEBHOOK_URL"]),
                                             rate_per_s=20, burst=100))
    return camunda, bitrix, RabbitMQSettings(virtual_host=stack.vhost)


def build_old_state(stack: Stack) -> OldState:
    """Every kind of in-flight work the old tool leaves."""
    camunda, bitrix, rabbit = clients(stack)
    state = OldState()
    state.answer_ids = old.set_up_old_portal(bitrix)
    ops = EngineOps(camunda)
    ops.deploy(old.APPROVAL_BPMN, name="approval.bpmn")
    ops.deploy(old.NOTICE_BPMN, name="notice.bpmn")
    approvals = ["s_yes", "r_no", "dlq_yes", "raw_yes", "raw_unknown", "e2_yes"]
    notices = ["t_retry", "s_open", "e3_found", "stranded1", "stranded2", "stranded3", "deleted", "done"]
    for name in approvals:
        state.instances[name] = ops.start(old.APPROVAL_KEY, {"startedBy": "3", "amount": 150000})
    for name in notices:
        state.instances[name] = ops.start(old.NOTICE_KEY, {"startedBy": "3"})
    # 12. the old tool with an empty tenant fetched every tenant: a dev task under the same worker id
    ops.deploy(old.NOTICE_BPMN, name="notice.bpmn", tenant=OTHER_TENANT)
    state.instances["other_tenant"] = ops.start(old.NOTICE_KEY, {"startedBy": "3"}, tenant=OTHER_TENANT)
    dev = CamundaClient(CamundaSettings(base_url=stack.settings["CAMUNDA_BASE_URL"], worker_id=old.WORKER_ID,
                                        tenant_id=OTHER_TENANT))
    state.tasks["other_tenant"] = old.OldTool(dev, bitrix, None).fetch("bitrix_create_task", 1)[0]["task_id"]
    connection = connect(rabbit, name="old-tool", attempts=3)
    channel = connection.channel()
    old.declare_old_topology(channel)
    tool = old.OldTool(camunda, bitrix, channel)
    by_instance = {m["process_instance_id"]: m for m in tool.fetch("bitrix_create_task", 50,
                                                                      activity_names=old.ACTIVITY_NAMES)}
    messages = {name: by_instance[pid] for name, pid in state.instances.items() if name != "other_tenant"}
    state.tasks.update({name: message["task_id"] for name, message in messages.items()})
    tasks = {name: tool.create_bitrix_task(messages[name]) for name in [*approvals, *notices] if name != "t_retry"}
    state.bitrix = {name: str(task["id"]) for name, task in tasks.items()}
    sent = {name: tool.sent_record(messages[name], tasks[name]) for name in tasks}
    for name in ["r_no", "dlq_yes", "raw_yes", "raw_unknown", "e2_yes", "done"]:  # people finished before the switch
        bitrix.call("tasks.task.complete", {"taskId": state.bitrix[name]})
    bitrix.call("tasks.task.delete", {"taskId": state.bitrix["deleted"]})
    done = {**tasks["done"], "status": "5"}
    tool.complete(state.tasks["done"], {})  # the old worker applied it, but the R was redelivered

    # 1. T with headers and its retry copy
    tool.publish_task(messages["t_retry"])
    tool.put("bitrix24.queue", {**messages["t_retry"], "retry_count": 1})
    # 2. S of open tasks; the deleted one; 6. E3 whose task exists
    for name in ("s_yes", "s_open", "deleted"):
        tool.put("bitrix24.sent.queue", sent[name])
    tool.put("errors.camunda_tasks.queue", tool.e3(messages["e3_found"]))
    # 3-5, 10. responses: НЕТ with a questionnaire, ДА in the dead letters, raw enum IDs, E2, a completed task
    status5 = {name: {**tasks[name], "status": "5"} for name in tasks}
    questionnaire = {**QUESTIONNAIRE, "taskId": state.bitrix["r_no"]}
    tool.put("camunda.responses.queue", tool.response(sent["r_no"], status5["r_no"], "НЕТ", questionnaire))
    tool.put("bitrix24.dead_letter.queue", tool.response(sent["dlq_yes"], status5["dlq_yes"], "ДА"))
    tool.put("camunda.responses.queue", tool.response(sent["raw_yes"], status5["raw_yes"], state.answer_ids["ДА"]))
    tool.put("camunda.responses.queue", tool.response(sent["raw_unknown"], status5["raw_unknown"], "999"))
    tool.put("errors.camunda_tasks.queue", tool.e2(tool.response(sent["e2_yes"], status5["e2_yes"], "ДА")),
             headers={"error_type": "timeout_error", "task_id": state.tasks["e2_yes"],
                      "activity_id": old.APPROVAL_ACTIVITY, "source": "response_processing"})
    tool.put("camunda.responses.queue", tool.response(sent["done"], done))
    # unconvertible: not JSON, an E1, an unknown shape
    tool.put("bitrix24.queue", b"{not json")
    tool.put("errors.camunda_tasks.queue", tool.e1({"task_id": "0000-gone", "topic": "bitrix_create_task"}))
    tool.put("default.queue", {"hello": "world"})
    connection.close()
    camunda.close()
    bitrix.close()
    return state


def queue_contents(rabbit: RabbitMQSettings) -> dict[str, list[bytes]]:
    """Every old queue's bodies, read unacked and given back."""
    connection = connect(rabbit, name="snapshot", attempts=3)
    contents = {}
    try:
        for queue in QUEUE_ORDER:
            exists, ready, _ = queue_depth(connection, queue)
            if not exists:
                continue
            channel = connection.channel()
            contents[queue] = [channel.basic_get(queue)[2] for _ in range(ready)]
            channel.close()
    finally:
        connection.close()
    return contents


def migration(stack: Stack, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update({"EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(stack.workdir)})
    command = [sys.executable, "-m", "exchanger.cli.main", "migrate", "from-exchanger-py",
               "--old-lock-file", str(stack.workdir / "old.lock"),
               "--adopt-rate", "20", "--batch-size", "2", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_migration(stack: Stack, *args: str) -> tuple[int, str]:
    process = migration(stack, *args)
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def camunda_view(stack: Stack) -> list[tuple[str, Any, Any]]:
    ops = EngineOps(CamundaClient(CamundaSettings(base_url=stack.settings["CAMUNDA_BASE_URL"])))
    return sorted((t["id"], t.get("workerId"), t.get("lockExpirationTime")) for t in ops.open_tasks())


def portal_stats(stack: Stack) -> dict[str, Any]:
    origin = stack.settings["BITRIX_WEBHOOK_URL"].split("/rest/")[0]
    stats = requests.get(f"{origin}/_admin/stats", timeout=5).json()
    return {k: v for k, v in stats.items() if k not in ("requests", "rejected")}


def test_take_over_from_exchanger_py(stack: Stack) -> None:
    state = build_old_state(stack)
    rabbit = RabbitMQSettings(virtual_host=stack.vhost)

    # a dry run changes nothing: queues (bodies, order), Camunda locks, the portal
    before = (queue_contents(rabbit), camunda_view(stack), portal_stats(stack))
    code, output = run_migration(stack)
    assert code == 3, output  # a dry run that found work: nothing done
    assert (queue_contents(rabbit), camunda_view(stack), portal_stats(stack)) == before
    assert "dry run" in output and "stranded (held, no message): 3" in output, output
    assert re.search(r"universal-worker +tenant imenaDev +bitrix_create_task +locked +1\n", output), output
    (stack.workdir / "dry-run.txt").write_text(output, encoding="utf-8")

    # killed half way (kill -9), then run again
    process = migration(stack, "--yes")
    journal = stack.workdir / "state" / "migration" / "dev" / "journal.jsonl"
    wait_for(lambda: journal.exists() and journal.read_text(encoding="utf-8").count("\n") >= 2, 60, "progress")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    code, output = run_migration(stack, "--yes")
    (stack.workdir / "yes.txt").write_text(output, encoding="utf-8")
    assert code == 0, output
    assert "OK: 13 task(s) held before, 0 unaccounted" in output, output
    # still held by the old id: the parked response's task (as it was) and the other tenant's (its own
    # environment's migration); nothing else
    held = EngineOps(CamundaClient(CamundaSettings(base_url=stack.settings["CAMUNDA_BASE_URL"]))).get(
        "/external-task", workerId=old.WORKER_ID, locked="true")
    assert {t["id"] for t in held} == {state.tasks["raw_unknown"], state.tasks["other_tenant"]}

    # Exchanger's daemons take over; people finish what is open
    stack.start_daemon("camunda-worker")
    stack.start_daemon("task-creator")
    person = Bitrix24Client(Bitrix24Settings(webhook_url=SecretStr(person_webhook(stack.settings)),
                                             rate_per_s=100, burst=100))
    ops = EngineOps(CamundaClient(CamundaSettings(base_url=stack.settings["CAMUNDA_BASE_URL"])))
    finishing = [name for name in state.instances if name not in ("raw_unknown", "deleted", "other_tenant")]

    def people_done() -> bool:
        open_tasks = person.call("tasks.task.list", {"filter": {"STATUS": ["2", "3"]}, "select": ["ID"]})["tasks"]
        for task in open_tasks:
            if str(task["id"]) == state.bitrix["s_yes"]:
                person.call("tasks.task.update", {"taskId": task["id"],
                                                  "fields": {"UF_RESULT_ANSWER": state.answer_ids["ДА"]}})
            person.call("tasks.task.complete", {"taskId": task["id"]})
        finished = {i["id"] for key in (old.APPROVAL_KEY, old.NOTICE_KEY) for i in ops.finished_instances(key)}
        return all(state.instances[name] in finished for name in finishing) and bool(ops.incidents())

    wait_for(people_done, 90, "every process to end")

    # each process ended once, on the path its answer chose; each Camunda task done once
    def ended_at(name: str) -> list[str]:
        return [a["activityId"] for a in ops.activity_history(processInstanceId=state.instances[name])
                if a["activityType"] == "noneEndEvent"]

    for name in ("s_yes", "dlq_yes", "raw_yes", "e2_yes"):
        assert ended_at(name) == ["End_Approved"], name
    assert ended_at("r_no") == ["End_Rejected"]
    for name in ("t_retry", "s_open", "e3_found", "stranded1", "stranded2", "stranded3", "done"):
        assert ended_at(name) == ["End"], name
    for name in [name for name in state.instances if name != "other_tenant"]:
        runs = [a for a in ops.activity_history(processInstanceId=state.instances[name])
                if a["activityType"] == "serviceTask"]
        assert len(runs) == 1, (name, runs)
    # no duplicate Bitrix24 task: one task per Camunda task, the T's created once by Exchanger
    stats = portal_stats(stack)
    assert stats["duplicates"] == {}
    assert stats["by_external_id"][state.tasks["t_retry"]] == 1
    assert stats["created"] == len(state.instances) - 1  # the other tenant's task was never made

    # the deleted task is an incident; the unknown answer stays parked, its task untouched
    incidents = ops.incidents()
    assert [i["processInstanceId"] for i in incidents] == [state.instances["deleted"]]
    assert ops.get(f"/external-task/{state.tasks['raw_unknown']}")["workerId"] == old.WORKER_ID
    connection = connect(rabbit, name="parked", attempts=3)
    channel = connection.channel()
    parked: list[ParkedRecord] = []
    while (got := channel.basic_get("errors.camunda_tasks.queue", auto_ack=True))[0] is not None:
        record = ParkedRecord.from_bytes(got[2])
        if record.error_type == ERROR_TYPE:  # the creator parks a copy of the deleted task's failure too
            parked.append(record)
    assert Counter(p.source_queue for p in {p.body_text: p for p in parked}.values()) == Counter(
        {"bitrix24.queue": 1, "errors.camunda_tasks.queue": 1, "default.queue": 1, "camunda.responses.queue": 1})
    assert any("enum ID 999" in p.reason and p.task_id == state.tasks["raw_unknown"] for p in parked)
    # the old-only queues are gone
    assert not queue_depth(connection, "python-services.queue")[0]
    connection.close()

    # running it again afterwards finds nothing to do and still accounts for every task
    code, output = run_migration(stack, "--yes")
    assert code == 0, output
    json.dumps(output)
