"""OpenProjectClient against the fake over real HTTP: lookups, idempotency search, locking, errors, retries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from loguru import logger
from pydantic import SecretStr

from exchanger.errors import (
    AuthError,
    ConfigError,
    Conflict,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
    UnexpectedAnswer,
    Unreachable,
)
from exchanger.settings import load
from exchanger.systems.openproject.client import OpenProjectClient, classify, link
from exchanger.systems.openproject.settings import OpenProjectSettings

THROTTLED_BODY = {
    "_type": "Error",
    "errorIdentifier": "urn:openproject-org:api:v3:errors:Throttled",
    "message": "You have reached the request limit for this resource.",
}


def new_wp(client: OpenProjectClient, external_id: str = "task-1", **extra: object) -> dict:
    return client.create_work_package("exchanger", {"subject": "Approve", "customField1": external_id, **extra})


def test_lookups_by_name_and_create_with_links(client):
    project = client.project("exchanger")
    kind = client.type_by_name("bug")
    priority = client.priority_by_name("High")
    user = client.user_by_name("Ivan Sidorov")
    assert client.user_by_name("isidorov")["id"] == user["id"]
    wp = client.create_work_package(
        project["identifier"],
        {
            "subject": "Check contract",
            "customField1": "task-7",
            "_links": {"type": link("types", kind["id"]), "priority": link("priorities", priority["id"]),
                       "assignee": link("users", user["id"])},
        },
        notify=False,
    )
    again = client.get_work_package(wp["id"])
    assert again["_embedded"]["type"]["name"] == "Bug"
    assert again["_embedded"]["assignee"]["login"] == "isidorov"
    assert client.work_package_url(wp["id"]).endswith(f"/work_packages/{wp['id']}")
    with pytest.raises(NotFound, match="Closed|known"):
        client.status_by_name("Nonexistent")


def test_find_by_custom_field_includes_closed_ones(client, api, op):
    wp = new_wp(client)
    new_wp(client, "task-2")
    closed = client.status_by_name("Closed")
    client.update_work_package(wp["id"], {"_links": {"status": link("statuses", closed["id"])}})
    found = client.find_work_package_by_custom_field("customField1", "task-1")
    assert found is not None and found["id"] == wp["id"]
    assert found["_embedded"]["status"]["isClosed"] is True
    assert client.find_work_package_by_custom_field("customField1", "task-1", project="exchanger")["id"] == wp["id"]
    assert client.find_work_package_by_custom_field("customField1", "nope") is None


def test_update_rereads_lock_version_after_conflict(client, api, op):
    wp = new_wp(client)
    # a person edits it after we read it: our lockVersion 0 is now stale
    person = api.patch(f"{op.url}/api/v3/work_packages/{wp['id']}", json={"subject": "Edited", "lockVersion": 0})
    assert person.status_code == 200
    updated = client.update_work_package(wp["id"], {"percentageDone": 50}, lock_version=wp["lockVersion"])
    assert updated["percentageDone"] == 50 and updated["subject"] == "Edited" and updated["lockVersion"] == 2


def test_update_gives_up_with_conflict_after_configured_retries(op_settings, make_client, api, op):
    settings = op_settings.model_copy(update={"conflict_retries": 0})
    client = make_client(settings)
    wp = new_wp(client)
    api.patch(f"{op.url}/api/v3/work_packages/{wp['id']}", json={"subject": "Edited", "lockVersion": 0})
    with pytest.raises(Conflict) as info:
        client.update_work_package(wp["id"], {"percentageDone": 50}, lock_version=0)
    assert info.value.status == 409 and info.value.code == "UpdateConflict"


def test_errors_are_typed_from_error_identifiers(client, op):
    with pytest.raises(NotFound) as missing:
        client.get_work_package(999)
    assert missing.value.code == "NotFound" and "work package does not exist" in str(missing.value)
    with pytest.raises(NotFound):
        client.project("secret")  # invisible projects are 404, as OpenProject hides them
    with pytest.raises(AuthError) as forbidden:
        client.create_work_package("archive", {"subject": "x"})
    assert forbidden.value.code == "MissingPermission"
    with pytest.raises(PermanentError) as invalid:
        client.create_work_package("exchanger", {"subject": ""})
    assert not isinstance(invalid.value, TransientError)
    assert invalid.value.status == 422 and "attribute subject" in str(invalid.value)


def test_wrong_api_key_is_auth_error_without_the_key(op_settings, make_client):
    secret = "opapi-wrong-but-secret-key-123"
    client = make_client(op_settings.model_copy(update={"api_key": SecretStr(secret)}))
    with pytest.raises(AuthError) as info:
        client.get_work_package(1)
    assert info.value.status == 401 and info.value.code == "Unauthenticated"
    assert secret not in str(info.value) and secret not in repr(info.value.details)


def test_injected_503_and_429_are_retried(client, fault):
    wp = new_wp(client)
    fault(status=503, count=2, path_contains="/work_packages/")
    assert client.get_work_package(wp["id"])["id"] == wp["id"]
    fault(status=429, count=1, body=THROTTLED_BODY)
    assert client.find_work_package_by_custom_field("customField1", "task-1")["id"] == wp["id"]
    fault(status=503, count=5)
    with pytest.raises(TransientError):
        client.get_work_package(wp["id"])  # 3 attempts, then the error surfaces


def test_a_proxy_page_in_a_200_is_a_typed_transient_error(client, fault):
    """A 200 whose body is a proxy's HTML page, not the API's JSON: a typed, transient error the caller's
    retry knows (before: a bare JSONDecodeError out of ``.json()``); the next answer is read as usual."""
    wp = new_wp(client)
    fault(status=200, count=1, raw="<html><body>Proxy login</body></html>", content_type="text/html",
          path_contains=f"/work_packages/{wp['id']}")
    with pytest.raises(UnexpectedAnswer, match="Proxy login"):
        client.get_work_package(wp["id"])
    assert client.get_work_package(wp["id"])["id"] == wp["id"]


def test_timeout_is_retried_for_reads(client, fault):
    wp = new_wp(client)
    fault(delay_s=1.0, count=1, path_contains=f"/work_packages/{wp['id']}")
    started = time.monotonic()
    assert client.get_work_package(wp["id"])["id"] == wp["id"]
    assert time.monotonic() - started < 1.0  # the retry did not wait for the stalled answer


def test_create_is_not_retried_blindly_and_search_finds_it(client, fault, op):
    fault(delay_s=1.0, count=1, path_contains="/work_packages")
    with pytest.raises(Unreachable):
        new_wp(client, "task-9")  # ambiguous: the server still creates it after we gave up
    time.sleep(0.8)
    assert client.find_work_package_by_custom_field("customField1", "task-9") is not None
    assert requests.get(f"{op.url}/_admin/stats").json()["by_external_id"] == {"task-9": 1}


def test_a_create_refused_for_rate_is_retried_and_made_once(client, fault, op):
    """A 429 means OpenProject did nothing, so even a create is tried again, after its Retry-After."""
    fault(status=429, count=1, body=THROTTLED_BODY, headers={"Retry-After": "0.04"}, path_contains="/work_packages")
    started = time.monotonic()
    new_wp(client, "task-rl")
    assert time.monotonic() - started >= 0.04  # the server's wait (within the test backoff's 0.05 s cap)
    assert requests.get(f"{op.url}/_admin/stats").json()["by_external_id"] == {"task-rl": 1}


def test_classify_reads_retry_after_and_ratelimit_reset():
    def response(headers: dict[str, str]) -> requests.Response:
        r = requests.Response()
        r.status_code = 429
        r.headers.update({"Content-Type": "application/hal+json", **headers})
        r._content = json.dumps(THROTTLED_BODY).encode()
        return r

    assert isinstance(classify(response({"Retry-After": "7"})), RateLimited)
    assert classify(response({"Retry-After": "7"})).retry_after_s == 7.0
    assert classify(response({"RateLimit-Reset": "3"})).retry_after_s == 3.0
    html = requests.Response()
    html.status_code, html._content = 502, b"<html>Bad gateway</html>"
    assert isinstance(classify(html), TransientError)


def test_no_secret_in_logs_while_retrying(client, fault, op_settings):
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    try:
        fault(status=503, count=2)
        client.project("exchanger")
    finally:
        logger.remove(sink)
    assert any("retry" in line for line in lines)
    assert not any(op_settings.api_key.get_secret_value() in line for line in lines)


def test_settings_are_validated_and_documented(monkeypatch):
    monkeypatch.setenv("OPENPROJECT_BASE_URL", "openproject.local")
    monkeypatch.setenv("OPENPROJECT_API_KEY", "x" * 20)
    with pytest.raises(ConfigError, match="OPENPROJECT_BASE_URL"):
        load(OpenProjectSettings)
    documented = (Path(__file__).parents[2] / "config.env.example").read_text("utf-8")
    for name in OpenProjectSettings.env_names():
        assert f"\n{name}=" in documented, name
