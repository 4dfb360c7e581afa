"""Example task functions the demo and the benchmark use; a template for a company's own modules.

* ``echo`` — completes with the task's own variables (``echo_bpmn_error`` / ``echo_incident`` /
  ``echo_fail`` make it raise, to show each outcome);
* ``http_request`` — one HTTP call; 4xx becomes BPMN error ``HTTP_<status>``, 5xx or no answer a
  failure that Camunda retries;
* ``render_notification`` — fills a ``${name}`` template (:mod:`exchanger.templates`) with process
  variables and, when ``PYTHON_TASKS_NOTIFY_URL`` is set, POSTs it there.

Inputs come from the activity's extension properties first, then from process variables.
"""

from __future__ import annotations

import json
from typing import Any

from exchanger.contracts import TaskMessage
from exchanger.errors import BpmnError, Incident, PermanentError
from exchanger.http_client import IDEMPOTENT_METHODS, HttpClient, TlsOptions
from exchanger.settings import load
from exchanger.systems.python.registry import task
from exchanger.systems.python.settings import PythonTasksSettings
from exchanger.templates import render


def _input(job: TaskMessage, name: str, default: Any = None) -> Any:
    """An extension property of the activity, else a process variable, else ``default``."""
    value = job.prop(name)
    return value if value not in (None, "") else job.value(name, default)


@task("echo", retries=3, retry_timeout="PT10S")
def echo(job: TaskMessage) -> dict[str, Any]:
    """Complete with the variables received (a no-op step for demos and benchmarks)."""
    values = job.values()
    if values.get("echo_bpmn_error"):
        raise BpmnError(str(values["echo_bpmn_error"]), "echo was asked to raise this BPMN error")
    if values.get("echo_incident"):
        raise Incident(str(values["echo_incident"]))
    if values.get("echo_fail"):
        raise RuntimeError(str(values["echo_fail"]))
    return {name: value for name, value in values.items() if not name.startswith("echo_")}


@task("http_request", retries=3, retry_timeout="PT1M")
def http_request(job: TaskMessage) -> dict[str, Any]:
    """``url`` (required), ``method`` (GET), ``body`` (JSON), ``headers`` → ``http_status``, ``http_response``."""
    url = _input(job, "url")
    if not url:
        raise Incident("http_request needs a url: set the extension property 'url' or the process variable 'url'")
    method = str(_input(job, "method", "GET")).upper()
    body = _input(job, "body")
    headers = _input(job, "headers") or {}
    if isinstance(headers, str):
        headers = json.loads(headers)
    settings = load(PythonTasksSettings)
    client = HttpClient(url, system="http_request", tls=TlsOptions(verify=settings.http_tls_verify),
                        read_timeout_s=settings.http_timeout_s, attempts=1)
    try:
        response = client.request(method, "", idempotent=method in IDEMPOTENT_METHODS,
                                  json=body if body is not None else None, headers=headers)
    except PermanentError as exc:  # a 4xx: the request is wrong; let the model decide with a boundary event
        raise BpmnError(f"HTTP_{exc.status or 'ERROR'}", exc.message) from exc
    finally:
        client.close()
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    return {"http_status": response.status_code, "http_response": payload}


@task("render_notification", retries=3, retry_timeout="PT1M")
def render_notification(job: TaskMessage) -> dict[str, Any]:
    """Fill ``template`` (``${name}`` placeholders) → ``notification_text``; POST it if configured."""
    template = _input(job, "template")
    if not template:
        raise Incident("render_notification needs a template: the extension property or variable 'template'")
    variables = {k: v for k, v in job.values().items() if k != "template"}
    variables.setdefault("business_key", job.business_key or "")
    text = render(str(template), variables)
    settings = load(PythonTasksSettings)
    sent = False
    if settings.notify_url:
        client = HttpClient(settings.notify_url, system="notify", tls=TlsOptions(verify=settings.http_tls_verify),
                            read_timeout_s=settings.http_timeout_s, attempts=1)
        try:
            message = {"to": _input(job, "notify_to", ""), "text": text, "task_id": job.task_id,
                       "business_key": job.business_key}
            client.request("POST", "", idempotent=False, json=message)  # a repeat would notify twice
        finally:
            client.close()
        sent = True
    return {"notification_text": text, "notification_sent": sent}
