"""Typed variables and message contracts: round trips and clear contract errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchanger.contracts import ParkedRecord, ResponseMessage, ResponseStatus, TaskMessage
from exchanger.errors import ContractError
from exchanger.routing import RoutingTable, load_routing
from exchanger.variables import format_date, from_typed, from_typed_map, parse_date, to_typed, to_typed_map

VALUES = {
    "text": "Привет, 世界 🚀",
    "big_text": "x" * 200_000,
    "small": 42,
    "long": 2**40,
    "negative_long": -(2**35),
    "ratio": 0.25,
    "yes": True,
    "nothing": None,
    "when": datetime(2026, 11, 22, 9, 30, 15, 123000, tzinfo=UTC),
    "nested": {"a": [1, 2, {"b": "ü", "c": [True, None]}], "d": {"e": 1.5}},
    "items": ["one", {"two": 2}],
    "blob": b"\x00\x01binary",
}


def test_types_are_the_ones_camunda_expects() -> None:
    typed = to_typed_map(VALUES)
    assert {k: v["type"] for k, v in typed.items()} == {
        "text": "String", "big_text": "String", "small": "Integer", "long": "Long", "negative_long": "Long",
        "ratio": "Double", "yes": "Boolean", "nothing": "Null", "when": "Date", "nested": "Json",
        "items": "Json", "blob": "Bytes",
    }
    assert typed["when"]["value"] == "2026-11-22T09:30:15.123+0000"


def test_values_round_trip_through_a_message() -> None:
    task = TaskMessage(task_id="t", topic_name="echo", system="python", worker_id="w", process_instance_id="p",
                       variables=to_typed_map(VALUES))
    again = TaskMessage.from_bytes(task.to_bytes(), {"x-exchanger-schema": "exchanger.task/1"})
    assert again.values() == VALUES
    assert from_typed_map(again.variables)["nested"]["a"][2]["b"] == "ü"


def test_dates_in_camunda_and_iso_formats() -> None:
    assert parse_date("2026-01-02T03:04:05.006+0300").utcoffset().total_seconds() == 3 * 3600
    assert parse_date("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert format_date(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000+0000"
    assert from_typed({"type": "Date", "value": None}) is None


def test_unsupported_values_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="cannot send a set"):
        to_typed({1, 2})


def test_contract_errors_name_the_field_and_a_wrong_schema() -> None:
    with pytest.raises(ContractError, match="status"):
        ResponseMessage.from_bytes(b'{"task_id": "t", "worker_id": "w", "status": "maybe"}')
    with pytest.raises(ContractError, match="expected schema exchanger.response/1"):
        ResponseMessage.from_bytes(b"{}", {"x-exchanger-schema": "exchanger.task/1"})
    ok = ResponseMessage(task_id="t", worker_id="w", status=ResponseStatus.COMPLETE)
    assert ResponseMessage.from_bytes(ok.to_bytes()).status is ResponseStatus.COMPLETE


def test_parked_records_keep_any_bytes() -> None:
    for body in (b"plain text", b"\xff\xfe binary"):
        record = ParkedRecord.for_body(body, reason="r", error_type="E", source_queue="q")
        assert ParkedRecord.from_bytes(record.to_bytes()).original_body() == body


def test_routing_defaults_file_override_and_default_system(tmp_path) -> None:
    table = RoutingTable()
    assert table.routing_key("bitrix_create_task") == "bitrix24.bitrix_create_task"
    assert table.routing_key("1c_create_document") == "1c.1c_create_document"
    assert table.system_for("something.else-entirely") == "default"
    routes = tmp_path / "routes.toml"
    routes.write_text('[systems]\npython = ["my.custom-task"]\nhr = ["hire"]\n')
    from exchanger.routing import RoutingSettings

    custom = load_routing(RoutingSettings(ROUTING_FILE=str(routes)))
    assert custom.routing_key("my.custom-task") == "python.my.custom-task"
    assert custom.system_for("send_email") == "default"  # the python system was replaced by the file
    assert "hr" in custom.systems and custom.system_for("op_create_task") == "openproject"


def test_the_message_errors_are_exchanger_errors_and_keep_their_old_import_paths():
    from exchanger import contracts, errors
    from exchanger.amqp import consumer

    for error in (errors.ContractError, errors.RetryLater, errors.ParkMessage):
        assert issubclass(error, errors.ExchangerError)
    assert issubclass(errors.ContractError, ValueError)  # pydantic validators and `except ValueError` callers
    assert contracts.ContractError is errors.ContractError
    assert (consumer.RetryLater, consumer.ParkMessage) == (errors.RetryLater, errors.ParkMessage)
