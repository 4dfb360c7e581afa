"""The python system and the default system at the queue boundary (real broker).

Tasks go in as camunda-worker publishes them; what comes out in ``camunda.responses.queue`` and the
parking lot is what camunda-worker would report to Camunda.
"""

from __future__ import annotations

import json

import creator_testkit
import pytest
from creator_testkit import context, make_task

from exchanger.contracts import ResponseStatus
from exchanger.errors import ConfigError
from exchanger.systems.default.handler import DefaultTaskHandler
from exchanger.systems.python.handler import PythonTaskHandler
from exchanger.systems.python.registry import DuplicateTask, Registry
from exchanger.systems.python.settings import PythonTasksSettings
from exchanger.variables import from_typed_map


@pytest.fixture
def python_handler() -> PythonTaskHandler:
    return PythonTaskHandler(context("python", tracked=False), settings=PythonTasksSettings(modules=""),
                             tasks=creator_testkit.tasks)


def test_a_task_function_completes_with_its_variables(start_service, queues, python_handler):
    start_service(handlers={"python.queue": python_handler})
    queues.publish_task(make_task("t1", "t_ok", "python", {"name": "Ada", "n": 41}, tenant_id="imenaDev"))
    (response,) = queues.responses()
    assert response.status == ResponseStatus.COMPLETE
    assert (response.task_id, response.tenant_id, response.worker_id) == ("t1", "imenaDev", "test-worker")
    assert from_typed_map(response.variables) == {"greeting": "hello Ada", "n": 42, "nested": {"a": [1, 2]}}
    assert response.variables["nested"]["type"] == "Json"
    assert response.task_created_at is not None and response.item is None
    assert python_handler.get_stats()["completed_tasks"] == 1


def test_bpmn_error_becomes_a_bpmn_error_response(start_service, queues, python_handler):
    start_service(handlers={"python.queue": python_handler})
    queues.publish_task(make_task("t2", "t_bpmn", "python"))
    (response,) = queues.responses()
    assert response.status == ResponseStatus.BPMN_ERROR
    assert (response.error_code, response.error_message) == ("EMAIL_BOUNCED", "the address does not exist")
    assert from_typed_map(response.variables) == {"bounced": True}
    assert queues.depth("errors.camunda_tasks.queue") == 0


def test_incident_becomes_a_failure_with_retries_0_and_a_parked_copy(start_service, queues, python_handler):
    start_service(handlers={"python.queue": python_handler})
    task = make_task("t3", "t_incident", "python")
    queues.publish_task(task)
    (response,) = queues.responses()
    assert response.status == ResponseStatus.FAILURE
    assert (response.error_message, response.retries) == ("the template is broken", 0)
    assert response.error_details == "line 3: unknown placeholder"
    (parked,) = queues.parked()
    assert parked.task_id == "t3" and parked.reason == "the template is broken" and parked.error_type == "Incident"
    assert parked.source_queue == "python.queue" and json.loads(parked.original_body())["task_id"] == "t3"


def test_other_exceptions_decrement_retries_with_the_timeout_until_an_incident(start_service, queues, python_handler):
    start_service(handlers={"python.queue": python_handler})
    queues.publish_task(make_task("t4a", "t_flaky", "python"))  # first fetch: Camunda sends retries null
    queues.publish_task(make_task("t4b", "t_flaky", "python", retries=2))
    queues.publish_task(make_task("t4c", "t_flaky", "python", retries=1))  # the last retry fails too
    by_id = {r.task_id: r for r in queues.responses(3)}
    first, second, last = by_id["t4a"], by_id["t4b"], by_id["t4c"]
    assert all(r.status == ResponseStatus.FAILURE for r in (first, second, last))
    assert (first.retries, first.retry_timeout_ms) == (2, 30_000)
    assert (second.retries, second.retry_timeout_ms) == (1, 30_000)
    assert (last.retries, last.retry_timeout_ms) == (0, None)
    assert "TransientError: SMTP server answered 451" in first.error_message
    assert "no retries left" in last.error_message
    (parked,) = queues.parked()
    assert parked.task_id == "t4c"


def test_retry_config_on_the_activity_overrides_the_decorator(start_service, queues, python_handler):
    start_service(handlers={"python.queue": python_handler})
    task = make_task("t5", "t_flaky", "python")
    task.bpmn_metadata.extension_properties["retryConfig"] = "PT5S,PT1M,PT10M"
    queues.publish_task(task)
    (response,) = queues.responses()
    assert (response.retries, response.retry_timeout_ms) == (3, 5_000)


def test_an_unregistered_python_topic_is_an_incident_naming_it(start_service, queues, python_handler):
    start_service(handlers={"python.queue": python_handler})
    queues.publish_task(make_task("t6", "t_missing", "python"))
    (response,) = queues.responses()
    assert response.status == ResponseStatus.FAILURE and response.retries == 0
    assert "'t_missing'" in response.error_message and "PYTHON_TASKS_MODULES" in response.error_message
    queues.parked()


def test_an_unknown_topic_reaches_the_default_consumer_and_becomes_an_incident_naming_it(start_service, queues):
    start_service(handlers={"default.queue": DefaultTaskHandler(context("default", tracked=False))})
    queues.publish_task(make_task("t7", "nobody_routes_me", "default"))
    (response,) = queues.responses()
    assert response.status == ResponseStatus.FAILURE and response.retries == 0
    assert "no system handles topic 'nobody_routes_me'" in response.error_message
    assert "ROUTING_FILE" in response.error_message
    (parked,) = queues.parked()
    assert parked.source_queue == "default.queue" and parked.task_id == "t7"


def test_poison_is_parked_and_the_queue_keeps_flowing(start_service, queues, python_handler):
    start_service(handlers={"python.queue": python_handler}, prefetch={"python.queue": 1})
    queues.publish_raw("python.queue", b"\xff\xfe not json", correlation_id="poison-1")
    queues.publish_raw("python.queue", json.dumps({"task_id": "poison-2"}).encode(), correlation_id="poison-2")
    queues.publish_task(make_task("t8", "t_ok", "python", {"name": "after"}))
    (response,) = queues.responses()
    assert response.task_id == "t8" and response.status == ResponseStatus.COMPLETE
    first, second = queues.parked(2)
    assert first.task_id == "poison-1" and first.original_body() == b"\xff\xfe not json"
    assert second.task_id == "poison-2" and "topic_name: Field required" in second.reason


def test_the_example_tasks_echo_and_render_notification(start_service, queues):
    handler = PythonTaskHandler(context("python", tracked=False),
                                settings=PythonTasksSettings(modules="exchanger.systems.python.examples"))
    start_service(handlers={"python.queue": handler})
    queues.publish_task(make_task("e1", "echo", "python", {"amount": 1500.5, "who": "Ada"}))
    notify = make_task("e2", "render_notification", "python", {"employee": {"name": "Ada"}}, business_key="HR-7")
    notify.bpmn_metadata.extension_properties["template"] = "Welcome ${employee.name} (${business_key})"
    queues.publish_task(notify)
    queues.publish_task(make_task("e3", "echo", "python", {"echo_bpmn_error": "ECHO_CODE"}))
    by_id = {r.task_id: r for r in queues.responses(3)}
    assert from_typed_map(by_id["e1"].variables) == {"amount": 1500.5, "who": "Ada"}
    assert from_typed_map(by_id["e2"].variables) == {"notification_text": "Welcome Ada (HR-7)",
                                                      "notification_sent": False}
    assert by_id["e3"].status == ResponseStatus.BPMN_ERROR and by_id["e3"].error_code == "ECHO_CODE"


def test_a_topic_registered_twice_is_refused_at_registration():
    registry = Registry()

    @registry.task("send_email")
    def first(job):
        return {}

    with pytest.raises(DuplicateTask, match="'send_email' is already registered by .*first"):
        @registry.task("send_email")
        def second(job):
            return {}


def test_bad_task_options_and_modules_stop_the_start():
    with pytest.raises(ConfigError, match="retry_timeout"):
        Registry().task("x", retry_timeout="five minutes")
    with pytest.raises(ConfigError, match="PYTHON_TASKS_MODULES: cannot import no_such_module_here"):
        PythonTaskHandler(context("python", tracked=False), settings=PythonTasksSettings(modules="no_such_module_here"),
                          tasks=Registry())
