"""No path segment is built from unescaped input: ids from messages, models or replies cannot
move a request to another endpoint. Every client is driven against a real HTTP server that records paths."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from exchanger.camunda.client import CamundaClient
from exchanger.camunda.settings import CamundaSettings
from exchanger.errors import IntegrationError, PermanentError
from exchanger.http_client import segment
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger.systems.onec.client import OneCClient
from exchanger.systems.onec.settings import OneCSettings
from exchanger.systems.openproject.client import OpenProjectClient, link
from exchanger.systems.openproject.settings import OpenProjectSettings
from exchanger_sandbox import http
from exchanger_sandbox.http import App, Request, Response, json_response

EVIL = "../process-definition/key/deal/tenant-id/acme/start?x="


class Recorder(App):
    """Answers 404 to everything and remembers the raw paths asked for."""

    def __init__(self) -> None:
        super().__init__("recorder")
        self.paths: list[str] = []

    def not_found(self, request: Request) -> Response:
        self.paths.append(request.path)
        return json_response(404, {"error": "recorded"})


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    app = Recorder()
    server = http.start(app)
    yield app, server.url
    server.stop()


def one_segment_holds(paths: list[str], prefix: str, value: str) -> None:
    """Every path is ``prefix`` + one segment that decodes to ``value`` (+ maybe a fixed tail)."""
    assert paths
    for path in paths:
        assert path.startswith(prefix), path
        escaped = path[len(prefix):].split("/")[0]
        assert unquote(escaped) == value, path
        assert "?" not in path and "/../" not in path


def test_segment_escapes_and_refuses_dot_segments() -> None:
    assert segment("invoice:1:abc") == "invoice:1:abc"
    assert segment(EVIL) == "..%2Fprocess-definition%2Fkey%2Fdeal%2Ftenant-id%2Facme%2Fstart%3Fx%3D"
    assert segment(42) == "42"
    for bad in ("", ".", ".."):
        with pytest.raises(PermanentError):
            segment(bad)


def test_camunda_client(recorder: tuple[Recorder, str]) -> None:
    app, url = recorder
    client = CamundaClient(CamundaSettings(base_url=url + "/engine-rest", worker_id="w", http_attempts=1))
    for call in (lambda: client.complete(EVIL), lambda: client.failure(EVIL, error_message="x", retries=0),
                 lambda: client.bpmn_error(EVIL, error_code="E"), lambda: client.extend_lock(EVIL, 1000),
                 lambda: client.unlock(EVIL), lambda: client.set_retries(EVIL, 1), lambda: client.get_task(EVIL),
                 lambda: client.process_definition_xml(EVIL)):
        with pytest.raises(IntegrationError):
            call()
    tasks = [p for p in app.paths if p.startswith("/engine-rest/external-task/")]
    one_segment_holds(tasks, "/engine-rest/external-task/", EVIL)
    one_segment_holds([p for p in app.paths if p not in tasks], "/engine-rest/process-definition/", EVIL)
    client.close()


def test_openproject_client(recorder: tuple[Recorder, str]) -> None:
    app, url = recorder
    client = OpenProjectClient(OpenProjectSettings(base_url=url, api_key="k" * 40, attempts=1))
    for call in (lambda: client.project(EVIL), lambda: client.project_types(EVIL)):
        with pytest.raises(IntegrationError):
            call()
    one_segment_holds(app.paths, "/api/v3/projects/", EVIL)
    assert unquote(link("users", EVIL)["href"].split("/users/")[1]) == EVIL
    assert "/../" not in client.work_package_url(EVIL)  # type: ignore[arg-type]
    client.close()


def test_onec_client(recorder: tuple[Recorder, str]) -> None:
    app, url = recorder
    client = OneCClient(OneCSettings(base_url=url + "/odata/standard.odata", username="u", password="p", attempts=1))
    for ref_key in (EVIL, "00000000-0000-0000-0000-000000000001') or (1 eq 1"):
        with pytest.raises(PermanentError, match="not a Ref_Key"):
            client.get("Catalog_Partners", ref_key)
    with pytest.raises(PermanentError, match="invalid resource name"):
        client.get("Catalog_X/../Users", "00000000-0000-0000-0000-000000000001")
    assert app.paths == []  # refused before any request


def test_bitrix24_client(recorder: tuple[Recorder, str]) -> None:
    app, url = recorder
    client = Bitrix24Client(Bitrix24Settings(webhook_url=f"{url}/rest/1/abcdef123456/", attempts=1))
    with pytest.raises(IntegrationError):
        client.call("../../../profile?x=")
    one_segment_holds(app.paths, "/rest/1/abcdef123456/", "../../../profile?x=")
    assert "/../" not in client.task_url(EVIL)
    client.close()
