"""The ``exchanger`` command against the sandbox engine and the real broker: one test (or more) per subcommand."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from broker_queues import Queues
from ops_sandbox import EXCHANGER, WORKER_ID, Sandbox
from prometheus_client import CollectorRegistry

from exchanger.amqp.connection import connect
from exchanger.amqp.inspect import list_queues, peek
from exchanger.contracts import ExternalItem, ParkedRecord, ResponseMessage, ResponseStatus, SentRecord, TaskMessage
from exchanger.health import HealthServer
from exchanger.instances import PORT_STEP


def _task_message(task: dict, system: str = "bitrix24") -> TaskMessage:
    return TaskMessage(task_id=task["id"], topic_name=task["topicName"], system=system, worker_id=WORKER_ID,
                       process_instance_id=task["processInstanceId"])


def _park(queues: Queues, task_id: str, source: str = "bitrix24.queue") -> None:
    queues.publisher.park(ParkedRecord.for_body(f'{{"task_id": "{task_id}"}}'.encode(), reason="Bitrix24 400",
                                                error_type="PermanentError", source_queue=source, task_id=task_id))


# --- the command itself ------------------------------------------------------------------------------


def test_help_is_fast_and_every_group_has_help() -> None:
    started = time.monotonic()
    result = subprocess.run([str(EXCHANGER), "--help"], capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 0 and "exit codes" in result.stdout
    assert elapsed < 1.0, f"exchanger --help took {elapsed:.2f}s"
    for group in ("status", "tasks", "recover", "parking", "queues", "process", "sync", "config"):
        assert group in result.stdout
        assert subprocess.run([str(EXCHANGER), group, "--help"], capture_output=True, timeout=30).returncode == 0


def test_an_unknown_environment_is_a_configuration_error(cli) -> None:
    result = cli("tasks", "list", "--env", "staging", expect=2)
    assert "EXCHANGER_ENV='staging' is not a known environment" in result.stderr


# --- status ------------------------------------------------------------------------------------------


def _health(checks: dict) -> HealthServer:
    return HealthServer(0, CollectorRegistry(), checks).start()


def test_status_green_then_a_stopped_daemon_a_parked_message_and_a_growing_queue(cli, queues: Queues) -> None:
    worker = _health({"camunda": lambda: (True, "ok"), "broker": lambda: (True, "consuming")})
    creator = _health({"consumers": lambda: (True, "5 consumers")})
    cli.settings.update(WORKER_HEALTH_PORT=str(worker.port), CREATOR_HEALTH_PORT=str(creator.port))
    try:
        result = cli("status", "--sample", "0")
        assert result.stdout.startswith("Exchanger dev: GREEN"), result.stdout
        assert "camunda-worker" in result.stdout and "ready (camunda, broker ok)" in result.stdout
        status = json.loads(cli("status", "--sample", "0", "--json").stdout)
        assert status["status"] == "green" and {c["name"] for c in status["checks"]} >= {
            "camunda", "rabbitmq", "parking lot", "camunda-worker", "task-creator", "incidents", "camunda-sync"}

        _park(queues, "t-parked")
        result = cli("status", "--sample", "0", expect=1)
        assert "Exchanger dev: YELLOW" in result.stdout
        assert "YELLOW because:\n  parking lot: 1 parked message(s) (exchanger parking list)" in result.stdout

        # a consumer that takes one message and never acks: the queue grows while status samples it
        connection = connect(queues.settings, name="slow-consumer", attempts=3)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume("bitrix24.queue", lambda *a: None)
        stop = threading.Event()

        def produce() -> None:
            publisher = type(queues.publisher)(queues.settings, queues.topology, name="grower")
            while not stop.wait(0.2):
                publisher.publish("", "bitrix24.queue", b"{}")
            publisher.close()

        producer = threading.Thread(target=produce)
        producer.start()
        try:
            time.sleep(0.6)
            result = cli("status", "--sample", "1.5", expect=1)
        finally:
            stop.set()
            producer.join()
            connection.close()
        line = next(line for line in result.stdout.splitlines() if "bitrix24.queue" in line and "YELLOW" in line)
        assert "growing (" in line and "1 consumer(s)" in line

        # nobody consumes a queue with messages: red
        result = cli("status", "--sample", "0", expect=2)
        assert "bitrix24.queue" in result.stdout and "nobody consumes it" in result.stdout

        queues.channel.queue_purge("bitrix24.queue")
        worker.stop()  # the worker is gone
        result = cli("status", "--sample", "0", expect=2)
        assert f"camunda-worker: not running: nothing answers on 127.0.0.1:{worker.port}" in result.stdout
    finally:
        creator.stop()


def test_status_names_an_unready_daemon_and_an_unreachable_camunda(cli, topology) -> None:
    creator = _health({"consumers": lambda: (False, "bitrix24.queue: reconnecting")})
    cli.settings.update(CREATOR_HEALTH_PORT=str(creator.port), CAMUNDA_BASE_URL="http://127.0.0.1:9/engine-rest")
    try:
        result = cli("status", "--sample", "0", expect=2)
    finally:
        creator.stop()
    assert "not ready: consumers: bitrix24.queue: reconnecting" in result.stdout
    assert "RED     camunda" in result.stdout


def test_status_shows_a_second_instance_that_runs_and_not_those_that_do_not(cli, topology) -> None:
    first = _health({"consumers": lambda: (True, "5 consumers")})
    second = HealthServer(first.port + PORT_STEP, CollectorRegistry(),  # EXCHANGER_INSTANCE=2's port
                          {"consumers": lambda: (False, "python.queue: reconnecting")}).start()
    cli.settings.update(CREATOR_HEALTH_PORT=str(first.port))
    try:
        result = cli("status", "--sample", "0", "--json", expect=2)
    finally:
        first.stop()
        second.stop()
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["task-creator"]["level"] == "green"
    assert checks["task-creator-2"]["detail"] == "not ready: consumers: python.queue: reconnecting"
    assert not {f"task-creator-{n}" for n in range(3, 10)} & set(checks)  # not running: not listed


# --- tasks -------------------------------------------------------------------------------------------


def test_tasks_list_show_unlock_retries_and_incidents(cli, sandbox: Sandbox) -> None:
    sandbox.deploy("deal", "bitrix_create_task")
    sandbox.deploy("wp", "op_create_task")
    for _ in range(2):
        sandbox.start("deal")
    sandbox.start("wp")
    mine = sandbox.lock("bitrix_create_task", count=2)
    other = sandbox.lock("op_create_task", worker_id="someone-else")[0]

    listed = json.loads(cli("tasks", "list", "--json").stdout)
    assert {t["id"] for t in listed} == {t["id"] for t in mine}
    assert {t["id"] for t in json.loads(cli("tasks", "list", "--all", "--json").stdout)} >= {other["id"]}
    assert json.loads(cli("tasks", "list", "--older-than", "1h", "--json").stdout) == []
    assert mine[0]["id"] in cli("tasks", "list").stdout
    assert json.loads(cli("tasks", "show", mine[0]["id"]).stdout)["workerId"] == WORKER_ID

    result = cli("tasks", "unlock", expect=2)
    assert "needs task ids or a filter" in result.stderr
    result = cli("tasks", "unlock", "--topic", "bitrix_create_task", expect=3)
    assert "would unlock 2 task(s)" in result.stdout and "add --yes" in result.stdout
    assert sandbox.task(mine[0]["id"])["workerId"] == WORKER_ID  # nothing done
    result = cli("tasks", "unlock", other["id"], "--yes", expect=2)
    assert "not locked by this environment's worker" in result.stderr
    result = cli("tasks", "unlock", mine[0]["id"], "--yes")
    assert "unlocking 1 task(s)" in result.stdout
    assert sandbox.task(mine[0]["id"])["workerId"] is None
    assert sandbox.task(mine[1]["id"])["workerId"] == WORKER_ID

    cli("tasks", "retries", mine[1]["id"], "0")
    incidents = json.loads(cli("tasks", "incidents", "--json").stdout)
    assert [i["configuration"] for i in incidents] == [mine[1]["id"]]
    cli("tasks", "retries", mine[1]["id"], "3")
    assert "no open incidents" in cli("tasks", "incidents").stdout


def test_tasks_of_another_tenant_are_invisible_and_refused(cli, sandbox: Sandbox) -> None:
    for tenant in ("t1", "t2"):
        sandbox.deploy("deal", "bitrix_create_task", tenant=tenant)
        sandbox.start("deal", tenant=tenant)
    (theirs,) = sandbox.lock("bitrix_create_task", tenant="t2")
    (ours,) = sandbox.lock("bitrix_create_task", tenant="t1")
    cli.settings["CAMUNDA_TENANT_ID"] = "t1"
    assert [t["id"] for t in json.loads(cli("tasks", "list", "--all", "--json").stdout)] == [ours["id"]]
    result = cli("tasks", "unlock", theirs["id"], "--yes", expect=2)
    assert "belongs to tenant 't2'" in result.stderr
    assert sandbox.task(theirs["id"])["workerId"] == WORKER_ID


# --- recover -----------------------------------------------------------------------------------------


def test_recover_finds_the_lost_task_and_nothing_else(cli, sandbox: Sandbox, queues: Queues) -> None:
    sandbox.deploy("deal", "bitrix_create_task")
    for _ in range(6):
        sandbox.start("deal")
    in_queue, tracked, responded, parked, lost = sandbox.lock("bitrix_create_task", count=5)
    (publishing,) = sandbox.lock("bitrix_create_task", lock_ms=5 * 60_000)  # short lock: being published now
    queues.publish_task(_task_message(in_queue))
    record = SentRecord(task=_task_message(tracked), item=ExternalItem(system="bitrix24", id="88"))
    queues.publisher.publish_delayed("bitrix24.sent.queue", 60_000, record.to_bytes(),
                                     correlation_id=None)  # the id is only in the body
    queues.respond(ResponseMessage(task_id=responded["id"], worker_id=WORKER_ID, status=ResponseStatus.COMPLETE))
    _park(queues, parked["id"])

    result = cli("recover", "--older-than", "0", expect=1)
    assert "would unlock 1 task(s)" in result.stdout and lost["id"] in result.stdout, result.stdout
    for other in (in_queue, tracked, responded, parked, publishing):
        assert other["id"] not in result.stdout
    assert "no lost tasks" in cli("recover").stdout  # default age: 30 minutes; these are fresh

    assert json.loads(cli("recover", "--older-than", "0", "--yes", "--json").stdout)["tasks"] == [lost["id"]]
    assert sandbox.task(lost["id"])["workerId"] is None  # handed back: the worker fetches it again
    for other in (in_queue, tracked, responded, parked, publishing):
        assert sandbox.task(other["id"])["workerId"] == WORKER_ID
    # the messages were only looked at: all still there
    assert queues.depth("bitrix24.queue") == 1 and queues.depth("errors.camunda_tasks.queue") == 1
    assert queues.depth("camunda.responses.queue") == 1 and queues.depth("exchanger.delay.60s") == 1


# --- parking -----------------------------------------------------------------------------------------


def test_parking_list_show_replay_and_purge(cli, queues: Queues) -> None:
    for task_id in ("p-1", "p-2", "p-3"):
        _park(queues, task_id, source="openproject.queue" if task_id == "p-3" else "bitrix24.queue")
    listed = json.loads(cli("parking", "list", "--json").stdout)
    assert [r["task_id"] for r in listed] == ["p-1", "p-2", "p-3"]
    assert "Bitrix24 400" in cli("parking", "list").stdout
    assert json.loads(cli("parking", "show", "--task", "p-2").stdout)[0]["body_text"] == '{"task_id": "p-2"}'

    assert "needs --task ID, --source QUEUE or --all" in cli("parking", "replay", expect=2).stderr
    assert "would replay 1 parked message(s)" in cli("parking", "replay", "--task", "p-1", expect=3).stdout
    assert queues.depth("errors.camunda_tasks.queue") == 3
    assert "replayed 1 message(s)" in cli("parking", "replay", "--task", "p-1", "--yes").stdout
    assert queues.get("bitrix24.queue")[2] == b'{"task_id": "p-1"}'

    assert "would purge 1" in cli("parking", "purge", "--source", "openproject.queue", expect=3).stdout
    assert "purged 1 message(s)" in cli("parking", "purge", "--source", "openproject.queue", "--yes").stdout
    assert [r["task_id"] for r in json.loads(cli("parking", "list", "--json").stdout)] == ["p-2"]


# --- queues ------------------------------------------------------------------------------------------


def test_queues_list_and_a_peek_that_leaves_the_order_alone(cli, queues: Queues) -> None:
    for n in range(4):
        queues.publish_raw("python.queue", f'{{"n": {n}}}'.encode(), correlation_id=f"task-{n}")
    listing = json.loads(cli("queues", "--json").stdout)
    rows = {row["name"]: row for row in listing["items"]}
    assert rows["python.queue"]["ready"] == 4 and listing["source"] in ("rabbitmqctl", "management")
    assert "python.queue" in cli("queues").stdout
    assert json.loads(cli("queues", "python.queue", "--json").stdout)["items"][0]["ready"] == 4

    peeked = json.loads(cli("queues", "python.queue", "--peek", "2", "--json").stdout)
    assert [row["task_id"] for row in peeked] == ["task-0", "task-1"]
    assert peeked[0]["age_s"] is not None and peeked[0]["age_s"] < 60
    assert [json.loads(body)["n"] for body in queues.drain("python.queue")] == [0, 1, 2, 3]  # same order, all there


def test_without_management_api_or_rabbitmqctl_passive_declares_still_see_the_delay_queues(
        queues: Queues, rabbit_settings, topology) -> None:
    queues.publisher.publish_delayed("python.queue", 45_000, b"{}", correlation_id="later")
    listing = list_queues(rabbit_settings, topology, use_rabbitmqctl=False)
    found = listing.by_name()
    assert listing.source == "passive" and listing.complete
    assert found["exchanger.delay.45s"].ready == 1 and found["python.queue"].ready == 0
    assert all(q.exists for q in listing.queues if q.name.startswith("exchanger.delay."))  # unused steps: unlisted


def test_a_peek_of_a_quorum_queue_keeps_its_order(queues: Queues, rabbit_settings) -> None:
    queues.channel.queue_declare("ops-quorum-peek", durable=True, arguments={"x-queue-type": "quorum"})
    try:
        for n in range(3):
            queues.publish_raw("ops-quorum-peek", str(n).encode())
        assert [m.body for m in peek(rabbit_settings, ["ops-quorum-peek"], 2)] == [b"0", b"1"]
        assert queues.drain("ops-quorum-peek") == [b"0", b"1", b"2"]
    finally:
        queues.channel.queue_delete("ops-quorum-peek")


# --- process -----------------------------------------------------------------------------------------


def test_process_list_start_with_typed_variables_and_stats(cli, sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.deploy("deal", "bitrix_create_task")
    sandbox.deploy("deal", "bitrix_create_task")  # version 2
    listed = json.loads(cli("process", "list", "--json").stdout)
    assert [(d["key"], d["version"]) for d in listed] == [("deal", 2)]

    (tmp_path / "vars.toml").write_text('amount = 12\nticket = { value = "7", type = "Long" }\n'
                                        'when = { value = "2026-11-29T10:00:00.000+0000", type = "Date" }\n')
    started = json.loads(cli("process", "start", "deal", "name=Anna", "count:Integer=3", "flag=true",
                             'data={"a": [1, 2]}', "code:String=007", "--vars", '{"x": 1.5}',
                             "--vars-file", str(tmp_path / "vars.toml"), "--business-key", "B-1", "--version", "1",
                             "--json").stdout)
    assert started["version"] == 1
    variables = sandbox.ops.get(f"/process-instance/{started['id']}/variables")
    types = {name: (v["type"], v["value"]) for name, v in variables.items()}
    assert types["name"] == ("String", "Anna") and types["count"] == ("Integer", 3)
    assert types["flag"] == ("Boolean", True) and types["code"] == ("String", "007")
    assert types["data"][0] == "Json" and json.loads(types["data"][1]) == {"a": [1, 2]}
    assert types["x"] == ("Double", 1.5) and types["amount"][1] == 12 and types["ticket"] == ("Long", 7)
    assert types["when"][0] == "Date"
    assert "is not a valid Integer" in cli("process", "start", "deal", "n:Integer=abc", expect=2).stderr

    sandbox.lock("bitrix_create_task")
    rows = json.loads(cli("process", "stats", "--json").stdout)
    by_topic = {(r["process"], r["topic"]): r for r in rows}
    assert by_topic[("deal", "")]["instances"] == 1
    assert by_topic[("deal", "bitrix_create_task")]["locked"] == 1
    assert "bitrix_create_task" in cli("process", "stats").stdout


# --- config and sync ---------------------------------------------------------------------------------


def test_config_check_reaches_the_systems_and_masks_secrets(cli, topology, tmp_path: Path) -> None:
    cli.settings.update(CAMUNDA_AUTH_PASSWORD="hunter22-secret", RABBITMQ_PASSWORD="guest")
    result = cli("config", "check")
    assert "OK   camunda: Camunda 7" in result.stdout and "OK   rabbitmq:" in result.stdout
    assert "CAMUNDA_AUTH_PASSWORD=***" in result.stdout and "hunter22-secret" not in result.stdout
    assert f"CAMUNDA_WORKER_ID={WORKER_ID}" in result.stdout

    cli.settings["CAMUNDA_MAX_TASKS"] = "0"
    result = cli("config", "check", expect=2)
    assert "CAMUNDA_MAX_TASKS" in result.stdout
    cli.settings["CAMUNDA_MAX_TASKS"] = "10"
    cli.settings["CAMUNDA_BASE_URL"] = "http://127.0.0.1:9/engine-rest"
    assert "ERR  camunda" in cli("config", "check", expect=1).stdout


def test_config_diff_shows_what_differs_and_hides_secret_values(cli, tmp_path: Path) -> None:
    cli.settings.update(CAMUNDA_AUTH_PASSWORD="prod-secret-1")
    cli("tasks", "--help", env="prod")  # writes .env.prod
    cli.settings.update(CAMUNDA_AUTH_PASSWORD="dev-secret-2", CAMUNDA_TENANT_ID="dev")
    rows = json.loads(cli("config", "diff", "prod", "dev", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["CAMUNDA_TENANT_ID"]["dev"] == "dev"
    assert by_name["CAMUNDA_AUTH_PASSWORD"]["prod"] == "*** (differs)"
    assert "secret" not in json.dumps(rows)
    assert "CAMUNDA_WORKER_ID" not in by_name


def test_sync_says_camunda_sync_is_not_built(cli) -> None:
    from exchanger.cli.sync import built

    if built():
        return  # camunda-sync exists: its own tests cover the modes
    assert "camunda-sync not built" in cli("sync", "once", expect=2).stdout


def test_config_check_reaches_bitrix24_openproject_and_1c_when_configured(cli, topology) -> None:
    from exchanger_sandbox.bitrix24.server import start as bitrix24
    from exchanger_sandbox.onec.server import start as onec
    from exchanger_sandbox.openproject.server import start as openproject

    portal, op, ib = bitrix24(), openproject(), onec()
    try:
        cli.settings.update(BITRIX_WEBHOOK_URL=portal.webhook_url, **op.settings_env, **ib.settings_env)
        result = cli("config", "check")
        for system in ("bitrix24: webhook user", "openproject: http://", "1c: http://"):
            assert f"OK   {system}" in result.stdout, result.stdout
        token = portal.webhook_url.rstrip("/").rsplit("/", 1)[1]
        assert token not in result.stdout and "BITRIX_WEBHOOK_URL=***" in result.stdout
        cli.settings["ONEC_PASSWORD"] = "wrong-password"
        assert "ERR  1c:" in cli("config", "check", expect=1).stdout
    finally:
        for server in (portal, op, ib):
            server.stop()


class _ManagementApi:
    """The one call `exchanger queues` makes to the RabbitMQ management API, answered from a real broker's
    figures (the plugin is not enabled on the test broker)."""

    def __init__(self, rows: list[dict]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        api = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.paths.append(self.path)
                body = json.dumps(rows).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_queues_come_from_the_management_api_when_it_is_configured(cli, rabbit_settings) -> None:
    api = _ManagementApi([{"name": "python.queue", "messages_ready": 3, "messages_unacknowledged": 2,
                           "consumers": 1}])
    cli.settings["RABBITMQ_MANAGEMENT_URL"] = api.url
    try:
        listing = json.loads(cli("queues", "--json").stdout)
    finally:
        api.stop()
    assert listing["source"] == "management"
    assert listing["items"] == [{"name": "python.queue", "ready": 3, "unacked": 2, "consumers": 1}]
    vhost = rabbit_settings.virtual_host
    assert api.paths[0].startswith(f"/api/queues/{vhost}?columns=")
