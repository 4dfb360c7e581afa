from __future__ import annotations

from datetime import UTC, datetime

from exchanger.contracts import BpmnMetadata, TaskMessage
from exchanger.templates import description, render, render_value
from exchanger.variables import to_typed_map


def task(**values) -> TaskMessage:
    return TaskMessage(task_id="t", topic_name="x", system="s", worker_id="w", process_instance_id="p",
                       variables=to_typed_map(values),
                       bpmn_metadata=BpmnMetadata(documentation="Hello ${name}, please act."))


def test_render_fills_known_names_keeps_unknown_and_reaches_into_json() -> None:
    values = {"name": "Аня", "order": {"customer": {"city": "Kazan"}}, "ok": True, "n": None}
    assert render("${name} from ${order.customer.city} ${ok}${n} ${missing}", values) == \
        "Аня from Kazan true ${missing}"


def test_render_value_keeps_the_type_of_a_single_placeholder() -> None:
    values = {"amount": 1500.5, "when": datetime(2026, 1, 2, tzinfo=UTC)}
    assert render_value("${amount}", values) == 1500.5
    assert render_value("Sum ${amount}", values) == "Sum 1500.5"
    assert render_value("${when}", values) == datetime(2026, 1, 2, tzinfo=UTC)


def test_description_is_documentation_plus_chosen_variables() -> None:
    text = description(task(name="Bob", department="IT", secret="x"), "name, department, absent")
    assert text == "Hello Bob, please act.\n\nname: Bob\ndepartment: IT"
