"""The Camunda 7 REST client: thin methods over one :class:`~exchanger.http_client.HttpClient`.

Why our own and not camunda-external-task-client-python3: that worker loop opens a connection per
call, has no TLS options, no tenant filter, no extendLock/unlock and sleeps 300 s on any error. Here
the session, auth, TLS, timeouts and retries are the shared HTTP client's; this module only knows the
endpoints and turns Camunda's error body ``{type, message, code}`` into typed errors:

* 404 → :class:`CamundaNotFound` (the task is gone: completed, cancelled, or never existed);
* 400 → :class:`CamundaConflict` (locked by another worker, lock expired, a refused value);
* 401/403 → :class:`~exchanger.errors.AuthError`;
* 5xx → :class:`CamundaEngineError` (transient: the command was rolled back, try again later);
* no answer → :class:`~exchanger.errors.Unreachable`.
"""

from __future__ import annotations

from typing import Any

import requests
from loguru import logger

from exchanger.backoff import Backoff
from exchanger.camunda.settings import CamundaSettings
from exchanger.errors import (
    AuthError,
    Conflict,
    IntegrationError,
    NotFound,
    PermanentError,
    TransientError,
    UnexpectedAnswer,
)
from exchanger.http_client import DEFAULT_POOL_SIZE, HttpClient, TlsOptions, json_body, segment
from exchanger.secrets import mask

SYSTEM = "camunda"

Variables = dict[str, dict[str, Any]]  # Camunda's name → VariableValueDto


class CamundaNotFound(NotFound):
    """404: the external task (or definition) does not exist any more."""


class CamundaConflict(Conflict):
    """400: the engine refused the command (another worker's lock, an expired lock, a bad value)."""


class CamundaEngineError(TransientError):
    """5xx: the engine failed and rolled the command back; worth retrying later."""


def classify(response: requests.Response) -> IntegrationError:
    """Camunda's ``ExceptionDto`` → a typed error carrying the engine's type, message and code."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        kind, text, code = str(body.get("type") or ""), str(body.get("message") or ""), body.get("code")
    else:
        kind, text, code = "", response.text[:500], None
    message = mask(f"Camunda {status} {kind}: {text}".replace(" : ", ": "))
    kwargs: dict[str, Any] = {"system": SYSTEM, "status": status, "code": "" if code is None else str(code),
                              "details": {"type": kind, "message": mask(text)}}
    if status == 404:
        return CamundaNotFound(message, **kwargs)
    if status == 400:
        return CamundaConflict(message, **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    if status >= 500 or status in (408, 429):
        return CamundaEngineError(message, **kwargs)
    return PermanentError(message, **kwargs)


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token.removeprefix('Bearer ').strip()}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.header
        return request


class CamundaClient:
    """External-task and definition endpoints for one worker id and tenant."""

    def __init__(self, settings: CamundaSettings, *, attempts: int | None = None,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:
        """``pool_size``: keep-alive connections kept; at least the calls made at once (more are opened and
        closed again for every call)."""
        self.settings = settings
        self.worker_id = settings.worker_id
        auth: requests.auth.AuthBase | tuple[str, str] | None = None
        if settings.auth_bearer_token.get_secret_value():
            auth = _BearerAuth(settings.auth_bearer_token.get_secret_value())
        elif settings.auth_username:
            auth = (settings.auth_username, settings.auth_password.get_secret_value())
        if not settings.tls_verify:
            logger.warning("CAMUNDA_TLS_VERIFY=false: the Camunda server certificate is NOT verified")
        self.http = HttpClient(
            settings.base_url,
            system=SYSTEM,
            auth=auth,
            headers={"Accept": "application/json"},
            tls=TlsOptions(settings.tls_verify, settings.tls_ca_bundle, settings.tls_client_cert,
                           settings.tls_client_key),
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            attempts=attempts or settings.http_attempts,
            backoff=Backoff(initial_s=settings.backoff_initial_s, max_s=settings.backoff_max_s),
            classify=classify,
            pool_size=pool_size,
        )

    def close(self) -> None:
        self.http.close()

    # --- helpers ------------------------------------------------------------------------------

    def _command(self, task_id: str, command: str, body: dict[str, Any], *, lean: bool = False) -> None:
        """One command on an external task, idempotent for the retry engine: the worker's lock guards it,
        so a repeat after a lost answer acts the same again or is refused (404: the task is already
        completed), never a second effect."""
        self.http.request("POST", f"/external-task/{segment(task_id)}/{command}", idempotent=True, json=body,
                          lean=lean)

    def _get_json(self, path: str, params: dict[str, Any] | None = None,
                  expected: type | tuple[type, ...] = (dict, list)) -> Any:
        return json_body(self.http.request("GET", path, params=params), expected, f"Camunda GET {path}")

    def tenant_filter(self) -> dict[str, Any]:
        """``tenantIdIn`` for a tenant, ``withoutTenantId`` when none is configured."""
        if self.settings.tenant_id:
            return {"tenantIdIn": [self.settings.tenant_id]}
        return {"withoutTenantId": True}

    # --- fetching -----------------------------------------------------------------------------

    def fetch_and_lock(
        self,
        topics: list[str],
        *,
        lock_duration_ms: int | None = None,
        max_tasks: int | None = None,
        async_response_timeout_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """One long-polling fetchAndLock for every topic; returns the locked tasks (maybe ``[]``).

        Not retried here: a retry after a lost answer could lock tasks twice; the fetch loop owns the
        backoff. The read timeout is the long poll plus ``CAMUNDA_LONG_POLL_MARGIN_S``.
        """
        s = self.settings
        poll_ms = s.async_response_timeout_ms if async_response_timeout_ms is None else async_response_timeout_ms
        topic_common = {
            "lockDuration": lock_duration_ms or s.fetch_lock_ms,
            "variables": s.variable_names,
            "deserializeValues": s.deserialize_values,
            "includeExtensionProperties": True,
            **self.tenant_filter(),
        }
        body: dict[str, Any] = {
            "workerId": self.worker_id,
            "maxTasks": max_tasks or s.max_tasks,
            "usePriority": s.use_priority,
            "topics": [{"topicName": topic, **topic_common} for topic in topics],
        }
        if poll_ms:
            body["asyncResponseTimeout"] = poll_ms
        response = self.http.request("POST", "/external-task/fetchAndLock", idempotent=False, retry=False, json=body,
                                     read_timeout_s=poll_ms / 1000 + s.long_poll_margin_s, lean=True)
        tasks = json_body(response, list, "Camunda fetchAndLock")
        if not all(isinstance(t, dict) and isinstance(t.get("id"), str) and isinstance(t.get("topicName"), str)
                   for t in tasks):
            raise UnexpectedAnswer(f"Camunda fetchAndLock: not a list of locked tasks: {mask(str(tasks)[:200])!r}",
                                   system=SYSTEM, status=response.status_code)
        return tasks

    def topic_names(self, *, with_unlocked_tasks: bool = True, with_retries_left: bool = True) -> list[str]:
        params = {"withUnlockedTasks": str(with_unlocked_tasks).lower(),
                  "withRetriesLeft": str(with_retries_left).lower()}
        return list(self._get_json("/external-task/topic-names", params, list))

    # --- per-task commands (204 on success) ---------------------------------------------------

    def complete(self, task_id: str, *, variables: Variables | None = None,
                 local_variables: Variables | None = None, worker_id: str | None = None) -> None:
        self._command(task_id, "complete", {
            "workerId": worker_id or self.worker_id,
            "variables": variables or {},
            "localVariables": local_variables or {},
        }, lean=True)

    def failure(self, task_id: str, *, error_message: str, error_details: str | None = None, retries: int,
                retry_timeout_ms: int = 0, variables: Variables | None = None,
                local_variables: Variables | None = None, worker_id: str | None = None) -> None:
        """Report a failure; ``retries`` 0 makes Camunda raise an incident."""
        body: dict[str, Any] = {
            "workerId": worker_id or self.worker_id,
            "errorMessage": error_message,
            "retries": retries,
            "retryTimeout": retry_timeout_ms,
            "variables": variables or {},
            "localVariables": local_variables or {},
        }
        if error_details is not None:
            body["errorDetails"] = error_details
        self._command(task_id, "failure", body)

    def bpmn_error(self, task_id: str, *, error_code: str, error_message: str | None = None,
                   variables: Variables | None = None, worker_id: str | None = None) -> None:
        body: dict[str, Any] = {"workerId": worker_id or self.worker_id, "errorCode": error_code,
                                "variables": variables or {}}
        if error_message is not None:
            body["errorMessage"] = error_message
        self._command(task_id, "bpmnError", body)

    def extend_lock(self, task_id: str, new_duration_ms: int, *, worker_id: str | None = None) -> None:
        self._command(task_id, "extendLock",
                   {"workerId": worker_id or self.worker_id, "newDuration": new_duration_ms}, lean=True)

    def lock(self, task_id: str, lock_duration_ms: int, *, worker_id: str | None = None) -> None:
        """``POST …/lock`` (Camunda 7.15+): take an unlocked or expired task; refused while another worker's
        lock runs. The migration hands the old tool's tasks over with it."""
        self._command(task_id, "lock",
                   {"workerId": worker_id or self.worker_id, "lockDuration": lock_duration_ms})

    def unlock(self, task_id: str) -> None:
        self._command(task_id, "unlock", {})

    def set_retries(self, task_id: str, retries: int) -> None:
        self.http.request("PUT", f"/external-task/{segment(task_id)}/retries", json={"retries": retries})

    # --- queries ------------------------------------------------------------------------------

    def get_task(self, task_id: str) -> dict[str, Any]:
        return dict(self._get_json(f"/external-task/{segment(task_id)}", expected=dict))

    def list_tasks(self, **filters: Any) -> list[dict[str, Any]]:
        """``GET /external-task`` with Camunda's query parameters (``workerId=…``, ``locked=true`` …)."""
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items()}
        return list(self._get_json("/external-task", params, list))

    def process_definition_xml(self, definition_id: str) -> str:
        body = self._get_json(f"/process-definition/{segment(definition_id)}/xml", expected=dict)
        if not isinstance(body.get("bpmn20Xml"), str):
            raise UnexpectedAnswer(f"Camunda GET /process-definition/{definition_id}/xml: no bpmn20Xml in "
                                   f"{mask(str(body)[:200])!r}", system=SYSTEM)
        return str(body["bpmn20Xml"])

    def version(self) -> str:
        """``GET /version``, not retried: the cheapest "is the engine there" call (readiness)."""
        body = json_body(self.http.request("GET", "/version", retry=False), dict, "Camunda GET /version")
        return str(body.get("version", ""))
