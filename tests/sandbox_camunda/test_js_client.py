"""Camunda's JS external task client (camunda-external-task-client-js 3.1.0), unchanged, against the
sandbox engine: the library parses a response only when ``Content-Type`` is exactly
``application/json``, so this is where a charset parameter would show (its workers polled forever).

tests/js/package.json and its lock pin the client; ``make test`` installs it when npm exists and
.ci/run installs Node when it is missing. The test skips, saying why, only where node cannot be had.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Api, bpmn

JS_DIR = Path(__file__).resolve().parents[1] / "js"
CLIENT = JS_DIR / "node_modules" / "camunda-external-task-client-js"

MODEL = bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f1" sourceRef="fork" targetRef="complete"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="failure"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="error"/>
    <bpmn:serviceTask id="complete" camunda:type="external" camunda:topic="js-complete"/>
    <bpmn:sequenceFlow id="f4" sourceRef="complete" targetRef="lock"/>
    <bpmn:serviceTask id="lock" camunda:type="external" camunda:topic="js-lock"/>
    <bpmn:sequenceFlow id="f5" sourceRef="lock" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:serviceTask id="failure" camunda:type="external" camunda:topic="js-failure"/>
    <bpmn:serviceTask id="error" camunda:type="external" camunda:topic="js-error"/>
    <bpmn:boundaryEvent id="caught" attachedToRef="error">
      <bpmn:errorEventDefinition errorRef="noStock" camunda:errorMessageVariable="why"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f6" sourceRef="caught" targetRef="errorEnd"/>
    <bpmn:endEvent id="errorEnd"/>""", errors='<bpmn:error id="noStock" errorCode="NO_STOCK"/>')


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (.ci/run installs nodejs and npm with apt when missing)")
    if not CLIENT.is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed, so tests/js cannot install camunda-external-task-client-js")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, capture_output=True,
                       timeout=300)
    return node


def test_js_client_fetches_completes_fails_raises_errors_and_locks(api: Api) -> None:
    node = _node()
    api.deploy_model(MODEL)
    instance = api.start(variables={"amount": {"value": 41},
                                    "customer": {"value": '{"name":"Ann"}', "type": "Json"}},
                         businessKey="order-1")

    run = subprocess.run([node, "worker.mjs", api.url], cwd=JS_DIR, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, (run.stdout, run.stderr)
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    assert seen["complete"] == {"amount": 41, "customer": {"name": "Ann"}, "customerType": "json",
                                "businessKey": "order-1"}
    assert seen["lock"] == {"extended": True, "unlocked": True, "refetched": True}
    variables = api.get(f"/process-instance/{instance['id']}/variables").json()
    assert variables["total"] == {"type": "Integer", "value": 42, "valueInfo": {}}
    assert variables["order"]["type"] == "Json" and json.loads(variables["order"]["value"]) == {
        "id": 7, "lines": ["a", "b"]}
    assert variables["approved"]["value"] is True and variables["approved"]["type"] == "Boolean"
    assert variables["when"]["type"] == "Date" and variables["when"]["value"].startswith("2024-01-15T12:00:00")
    assert "scratch" not in variables
    assert variables["why"]["value"] == "nothing left" and variables["reason"]["value"] == "stock"
    (incident,) = api.get("/incident", processInstanceId=instance["id"]).json()
    assert incident["incidentMessage"] == "printer on fire" and incident["activityId"] == "failure"
    activities = api.activities(instance["id"])
    assert {"end", "caught", "errorEnd"} <= set(activities)
