"""Bitrix24Client against the fake portal over real HTTP: results, typed errors, retries, limits, batch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from b24_helpers import TOKEN, client_for, inject, new_task

from exchanger.backoff import Backoff
from exchanger.errors import (
    AuthError,
    ConfigError,
    IntegrationError,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
    UnexpectedAnswer,
    Unreachable,
)
from exchanger.secrets import mask
from exchanger.settings import load
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger_sandbox.bitrix24.server import PortalServer, start
from exchanger_sandbox.http import App, json_response
from exchanger_sandbox.http import start as start_app

EXTERNAL_ID = "UF_CAMUNDA_ID_EXTERNAL_TASK"


def assert_no_token(exc: BaseException) -> None:
    assert TOKEN not in str(exc) and TOKEN not in repr(exc)
    assert TOKEN not in str(getattr(exc, "details", "") or "")
    assert exc.__cause__ is None or TOKEN not in str(exc.__cause__)


def test_call_returns_the_result(client: Bitrix24Client) -> None:
    assert client.call("user.current")["ID"] == "1"
    task = client.add_task({"TITLE": "Pay", "RESPONSIBLE_ID": 2, EXTERNAL_ID: "ext-1"})
    assert task["responsibleId"] == "2"
    got = client.get_task(task["id"], ["ID", "STATUS", EXTERNAL_ID])
    assert got == {"id": task["id"], "status": "2", "ufCamundaIdExternalTask": "ext-1"}
    assert client.envelope("tasks.task.list", {})["total"] == 1


def test_wrong_webhook_is_an_auth_error_without_the_token(portal: PortalServer) -> None:
    wrong = Bitrix24Client(Bitrix24Settings(webhook_url=portal.url + f"/rest/2/{TOKEN}/"))
    with pytest.raises(AuthError) as caught:
        wrong.call("user.current")
    assert caught.value.code == "NO_AUTH_FOUND" and caught.value.status == 401
    assert_no_token(caught.value)
    assert portal.portal.stats()["requests"] == 1  # never retried


def test_validation_and_not_found_are_permanent_and_readable(client: Bitrix24Client) -> None:
    with pytest.raises(PermanentError) as caught:
        client.add_task({"RESPONSIBLE_ID": 2})
    assert not isinstance(caught.value, NotFound)
    assert caught.value.code == "ERROR_CORE" and str(caught.value).endswith("Task title is not specified")  # no <br>
    assert_no_token(caught.value)
    with pytest.raises(NotFound):
        client.get_task(4040)
    with pytest.raises(NotFound) as unknown:
        client.call("tasks.task.fly")
    assert unknown.value.code == "ERROR_METHOD_NOT_FOUND"


def test_deleted_task_reads_as_not_found(client: Bitrix24Client, portal: PortalServer) -> None:
    task = client.add_task({"TITLE": "Gone soon", "RESPONSIBLE_ID": 2})
    client.call("tasks.task.delete", {"taskId": task["id"]})
    with pytest.raises(NotFound) as caught:
        client.get_task(task["id"], ["STATUS"])
    assert_no_token(caught.value)
    with pytest.raises(NotFound):
        client.task_results(task["id"])


def test_reads_retry_injected_5xx_and_timeouts(client: Bitrix24Client, portal: PortalServer) -> None:
    task = new_task(portal.webhook_url)
    inject(portal, status=500, count=1, body={"error": "INTERNAL_SERVER_ERROR", "error_description": "boom"})
    inject(portal, status=None, delay_s=1.0, count=1, path_contains="tasks.task.get")  # past the read timeout
    assert client.get_task(task["id"])["id"] == task["id"]
    assert portal.portal.stats()["requests"] == 2  # the timed-out request never reached the method


def test_a_proxy_page_in_a_200_is_a_typed_transient_error(client: Bitrix24Client, portal: PortalServer) -> None:
    """A 200 whose body is a proxy's HTML page is not the portal's refusal: transient (the caller tries again
    later), not the permanent failure it was, and without the webhook token in the message."""
    task = new_task(portal.webhook_url)
    inject(portal, status=200, count=1, raw="<html><body>Proxy login</body></html>", content_type="text/html")
    with pytest.raises(UnexpectedAnswer, match="Proxy login") as caught:
        client.get_task(task["id"])
    assert TOKEN not in str(caught.value)
    assert client.get_task(task["id"])["id"] == task["id"]


def test_rate_limit_answers_are_retried_even_for_writes(client: Bitrix24Client, portal: PortalServer) -> None:
    limit = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    inject(portal, status=503, count=2, body=limit)
    task = client.add_task({"TITLE": "Once", "RESPONSIBLE_ID": 2, EXTERNAL_ID: "ext-rl"})
    assert portal.portal.stats()["by_external_id"] == {"ext-rl": 1}
    assert client.get_task(task["id"])["title"] == "Once"


def test_operation_time_limit_waits_until_the_reset(portal: PortalServer) -> None:
    client = Bitrix24Client(Bitrix24Settings(webhook_url=portal.webhook_url), backoff=Backoff(0.01, 2.0, 1.0, 0.0))
    body = {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked", "time": {}}
    body["time"]["operating_reset_at"] = time.time() + 0.3
    inject(portal, status=429, count=1, body=body)
    started = time.monotonic()
    assert client.call("user.current")["ID"] == "1"
    assert time.monotonic() - started >= 0.2


def test_rate_limit_that_never_ends_raises_rate_limited(client: Bitrix24Client, portal: PortalServer) -> None:
    inject(portal, status=503, count=10, body={"error": "QUERY_LIMIT_EXCEEDED", "error_description": "slow down"})
    with pytest.raises(RateLimited) as caught:
        client.call("user.current")
    assert caught.value.status == 503 and caught.value.code == "QUERY_LIMIT_EXCEEDED"


def test_a_write_is_not_repeated_after_an_ambiguous_failure(client: Bitrix24Client, portal: PortalServer) -> None:
    inject(portal, status=500, count=1, path_contains="tasks.task.add")
    with pytest.raises(TransientError) as server_error:
        client.add_task({"TITLE": "x", "RESPONSIBLE_ID": 2, EXTERNAL_ID: "ext-500"})
    assert_no_token(server_error.value)
    inject(portal, status=None, delay_s=1.0, count=1, path_contains="tasks.task.add")
    with pytest.raises(Unreachable) as timeout:
        client.add_task({"TITLE": "x", "RESPONSIBLE_ID": 2, EXTERNAL_ID: "ext-timeout"})
    assert_no_token(timeout.value)
    time.sleep(0.6)  # the portal finishes the request the client gave up on...
    found = client.find_task_by_external_id(EXTERNAL_ID, "ext-timeout")
    assert found is not None  # ...so the caller finds it instead of creating it twice
    assert portal.portal.stats()["by_external_id"] == {"ext-timeout": 1}


def test_find_task_by_external_id(client: Bitrix24Client, portal: PortalServer) -> None:
    assert client.find_task_by_external_id(EXTERNAL_ID, "nothing") is None
    first = new_task(portal.webhook_url, UF_CAMUNDA_ID_EXTERNAL_TASK="ext-7")
    new_task(portal.webhook_url, UF_CAMUNDA_ID_EXTERNAL_TASK="ext-8")
    new_task(portal.webhook_url, UF_CAMUNDA_ID_EXTERNAL_TASK="ext-7")
    found = client.find_task_by_external_id(EXTERNAL_ID, "ext-7", select=["DEADLINE"])
    assert found is not None and found["id"] == first["id"] and "deadline" in found  # the oldest of two


def test_a_failed_lookup_raises_never_none(client: Bitrix24Client, portal: PortalServer) -> None:
    inject(portal, status=502, count=5, path_contains="tasks.task.list")
    with pytest.raises(TransientError):
        client.find_task_by_external_id(EXTERNAL_ID, "ext-1")


def test_a_filter_the_portal_ignores_is_detected() -> None:
    with start(0, token=TOKEN, with_user_fields=False, rate_per_s=1000, burst=1000) as server:
        new_task(server.webhook_url)
        with pytest.raises(PermanentError, match="ignored the filter on UF_CAMUNDA_ID_EXTERNAL_TASK"):
            client_for(server).find_task_by_external_id(EXTERNAL_ID, "ext-1")


def test_batch_results_and_typed_errors(client: Bitrix24Client, portal: PortalServer) -> None:
    calls = {
        "add": ("tasks.task.add", {"fields": {"TITLE": "In a batch", "RESPONSIBLE_ID": 2, "AUDITORS": [3, 4]}}),
        "check": ("task.checklistitem.add", {"TASKID": "$result[add][task][id]", "FIELDS": {"TITLE": "Step"}}),
        "bad": ("tasks.task.get", {"taskId": 999}),
        "users": ("user.get", {"FILTER": {"ACTIVE": True}}),
    }
    batch = client.batch(calls)
    task = batch.get("add")["task"]
    assert task["auditors"] == ["3", "4"]
    assert isinstance(batch.get("check"), int)
    with pytest.raises(NotFound):
        batch.get("bad")
    assert batch.totals["users"] == 4
    halted = client.batch(calls | {"bad": ("tasks.task.get", {"taskId": 999})}, halt=True)
    with pytest.raises(PermanentError, match="not run"):
        halted.get("users")
    with pytest.raises(ValueError):
        client.batch({str(i): ("user.current", {}) for i in range(51)})


def test_checklist_dependencies_users_results(client: Bitrix24Client, portal: PortalServer) -> None:
    first = client.add_task({"TITLE": "First", "RESPONSIBLE_ID": 2})
    second = client.add_task({"TITLE": "Second", "RESPONSIBLE_ID": 3})
    group = client.add_checklist_item(second["id"], "Documents", parent_id=0)
    client.add_checklist_item(second["id"], "Passport", parent_id=group)
    assert [row["TITLE"] for row in client.checklist_items(second["id"])] == ["Documents", "Passport"]
    assert client.add_dependency(first["id"], second["id"]) is True
    assert client.add_dependency(first["id"], second["id"]) is False  # already there: resume, not fail
    assert client.user(2)["LAST_NAME"] == "Petrova"
    assert client.user(99) is None
    comment = client.call("task.commentitem.add", {"TASKID": second["id"], "FIELDS": {"POST_MESSAGE": "Checked"}})
    client.call("tasks.task.result.addFromComment", {"commentId": comment})
    assert [r["text"] for r in client.task_results(second["id"])] == ["Checked"]
    url = client.task_url(second["id"])
    assert url == f"{portal.url}/company/personal/user/1/tasks/task/view/{second['id']}/" and TOKEN not in url


def test_check_user_fields(client: Bitrix24Client) -> None:
    required = client.settings.required_user_fields()
    assert client.check_user_fields(required) == []
    with start(0, with_user_fields=False) as bare:
        problems = client_for(bare).check_user_fields(required)
        assert [p.field for p in problems] == list(required)
        assert all(p.found is None for p in problems)
        assert "task.item.userfield.add" in str(problems[1]) and '"XML_ID": "ok"' in str(problems[1])
        client_for(bare).call(
            "task.item.userfield.add", {"PARAMS": {"FIELD_NAME": "RESULT_ANSWER", "USER_TYPE_ID": "string"}}
        )
        wrong = {p.field: p for p in client_for(bare).check_user_fields(required)}
        assert wrong["UF_RESULT_ANSWER"].found == "string" and "expected enumeration" in str(wrong["UF_RESULT_ANSWER"])


def test_the_limiter_keeps_a_burst_under_the_portal_limit() -> None:
    with start(0, token=TOKEN, rate_per_s=25, burst=6) as server:
        limited = client_for(server, rate_per_s=25, burst=6)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda _: limited.call("user.current")["ID"], range(60)))
        elapsed = time.monotonic() - started
        assert answers == ["1"] * 60
        assert server.portal.stats()["rejected"] == 0  # the client waited instead
        assert elapsed >= (60 - 4) / 25 * 0.9  # 4 = burst minus the headroom, then 25 a second


def test_a_shared_portal_bucket_is_survived() -> None:
    with start(0, token=TOKEN, rate_per_s=5, burst=3) as server:
        greedy = client_for(server, rate_per_s=1000, burst=1000, attempts=10)  # believes it may burst
        answers = [greedy.call("user.current")["ID"] for _ in range(6)]
        assert answers == ["1"] * 6
        assert server.portal.stats()["rejected"] >= 1  # refused, slowed down, retried


def test_a_moved_portal_is_followed_with_the_body() -> None:
    with start(0, token=TOKEN, rate_per_s=1000, burst=1000) as server:
        old = App("old-portal")
        seen: list[str] = []

        def moved(request):  # type: ignore[no-untyped-def]
            seen.append(request.method)
            response = json_response(302, {})
            response.headers["Location"] = server.webhook_url + request.params["method"]
            return response

        old.add_route("POST", "/rest/{user}/{token}/{method}", moved)
        with start_app(old) as old_server:
            b24 = client_for(server)
            b24.http.base_url = f"{old_server.url}/rest/1/{TOKEN}"
            task = b24.add_task({"TITLE": "Moved", "RESPONSIBLE_ID": 2})
            assert task["title"] == "Moved" and seen == ["POST"]


def test_settings_validate_and_mask_the_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITRIX_WEBHOOK_URL", "https://portal.example.com/rest/x/notvalid")
    with pytest.raises(ConfigError, match="BITRIX_WEBHOOK_URL") as caught:
        load(Bitrix24Settings)
    assert "notvalid" not in str(caught.value)
    monkeypatch.setenv("BITRIX_WEBHOOK_URL", "https://portal.example.com/rest/7/Sup3rSecretCode9/")
    settings = load(Bitrix24Settings)
    assert settings.rate_per_s == 2.0 and settings.burst == 50 and settings.deleted_error_code == "BITRIX_TASK_DELETED"
    assert "Sup3rSecretCode9" not in mask("calling https://portal.example.com/rest/7/Sup3rSecretCode9/user.get")


def test_errors_never_carry_the_token_even_when_the_portal_is_down() -> None:
    server = start(0, token=TOKEN)
    b24 = client_for(server, attempts=2)
    server.stop()
    with pytest.raises(Unreachable) as caught:
        b24.call("user.current")
    assert_no_token(caught.value)
    assert isinstance(caught.value, IntegrationError)


def test_client_is_thread_safe_on_one_session(client: Bitrix24Client, portal: PortalServer) -> None:
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            client.add_task({"TITLE": f"T{index}", "RESPONSIBLE_ID": 2, EXTERNAL_ID: f"ext-{index}"})
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and portal.portal.stats()["created"] == 20 and not portal.portal.stats()["duplicates"]
