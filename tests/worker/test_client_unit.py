"""The Camunda client without an engine: error classification, request shapes, settings."""

from __future__ import annotations

import json

import pytest
import requests

from exchanger.camunda.client import CamundaConflict, CamundaEngineError, CamundaNotFound, classify
from exchanger.camunda.settings import CamundaSettings
from exchanger.errors import AuthError, NotFound, TransientError


def response(status: int, body: object) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return r


@pytest.mark.parametrize(
    ("status", "kind", "family"),
    [(404, CamundaNotFound, NotFound), (400, CamundaConflict, Exception), (500, CamundaEngineError, TransientError),
     (503, CamundaEngineError, TransientError), (401, AuthError, AuthError)],
)
def test_camunda_error_bodies_become_typed_errors(status: int, kind: type, family: type) -> None:
    error = classify(response(status, {"type": "RestException", "message": "External task with id x does not exist",
                                       "code": 0}))
    assert isinstance(error, kind) and isinstance(error, family)
    assert error.status == status
    assert error.code == "0"
    assert "RestException: External task with id x does not exist" in error.message


def test_a_body_that_is_not_json_still_classifies() -> None:
    error = classify(response(502, b"<html>bad gateway</html>"))
    assert isinstance(error, CamundaEngineError)
    assert "bad gateway" in error.message


def test_settings_defaults_and_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMUNDA_BASE_URL", "https://camunda.example/engine-rest/")
    monkeypatch.setenv("CAMUNDA_FETCH_VARIABLES", "a, b,,c")
    monkeypatch.setenv("CAMUNDA_TLS_VERIFY", "false")
    settings = CamundaSettings()
    assert settings.base_url == "https://camunda.example/engine-rest"
    assert settings.lock_duration == 31_536_000_000
    assert settings.fetch_lock_ms == 300_000
    assert settings.variable_names == ["a", "b", "c"]
    assert settings.tls_mode == "TLS, verification OFF"
    assert CamundaSettings(fetch_variables="*").variable_names is None
