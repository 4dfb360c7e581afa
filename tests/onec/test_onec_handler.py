"""1C handler and tracker against the fake infobase over real HTTP: create, post, idempotency, faults, tracking."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from exchanger.amqp.topology import sent_queue, system_queue
from exchanger.contracts import BpmnMetadata, SentRecord, TaskMessage
from exchanger.creator.base import BpmnErrorOutcome, CheckFailed, Done, StillOpen, SystemContext
from exchanger.errors import AuthError, Incident, PermanentError, TransientError
from exchanger.systems.onec.handler import OneCTaskHandler
from exchanger.systems.onec.tracker import OneCTracker
from exchanger.variables import to_typed_map
from exchanger_sandbox.onec.state import COUNTERPARTIES, PAYMENT_REQUEST, STATUS_ATTRIBUTE, STATUS_DONE_VALUE

CONTEXT = SystemContext(system="1c", queue=system_queue("1c"), sent_queue=sent_queue("1c"))
EXPENSE = {  # the demo process's activity
    "entity": PAYMENT_REQUEST,
    "field.СуммаДокумента": "${equipmentBudget}",
    "field.НазначениеПлатежа": "Equipment for ${employeeName}",
    "field.Комментарий": "Onboarding, ${department}",
}
VARIABLES = {"equipmentBudget": 1500.5, "employeeName": "Ada", "department": "HR"}


def onec_task(task_id: str = "task-1", props: dict[str, str] | None = None, topic: str = "1c_create_document",
              variables: dict[str, Any] | None = None) -> TaskMessage:
    return TaskMessage(task_id=task_id, topic_name=topic, system="1c", worker_id="w", process_instance_id="pi-1",
                       variables=to_typed_map(VARIABLES if variables is None else variables),
                       bpmn_metadata=BpmnMetadata(activity_name="Raise the equipment expense request",
                                                  extension_properties=EXPENSE if props is None else props))


@pytest.fixture
def handler(onec_settings, make_client) -> OneCTaskHandler:
    return OneCTaskHandler(CONTEXT, settings=onec_settings, client=make_client(onec_settings))


@pytest.fixture
def tracker(onec_settings, make_client) -> OneCTracker:
    return OneCTracker(CONTEXT, settings=onec_settings, client=make_client(onec_settings))


def stats(onec) -> dict:
    return requests.get(f"{onec.url}/_admin/stats", timeout=5).json()


def resource(entity: str, ref_key: str, action: str = "") -> str:
    return f"{entity}(guid'{ref_key}')" + (f"/{action}" if action else "")


def test_creates_a_document_with_typed_fields_and_posts_it(handler, client):
    item = handler.process_message(onec_task(props={**EXPENSE, "post": "true"}))
    assert item.system == "1c" and item.data == {"entity": PAYMENT_REQUEST, "number": "000000001"}
    assert item.url.endswith(f"(guid'{item.id}')?$format=json")
    doc = client.get(PAYMENT_REQUEST, item.id)
    assert doc["СуммаДокумента"] == 1500.5  # a lone ${x} keeps the number
    assert (doc["НазначениеПлатежа"], doc["Комментарий"]) == ("Equipment for Ada", "Onboarding, HR")
    assert doc["ВнешнийИдентификатор"] == "task-1"
    assert doc["Posted"] is True


def test_a_redelivered_task_finds_its_document_and_posts_it_if_the_crash_fell_in_between(handler, client, onec):
    first = handler.process_message(onec_task())  # post not asked: stays unposted
    assert handler.process_message(onec_task()).id == first.id
    assert client.get(PAYMENT_REQUEST, first.id)["Posted"] is False
    again = handler.process_message(onec_task(props={**EXPENSE, "post": "true"}))
    assert again.id == first.id and client.get(PAYMENT_REQUEST, first.id)["Posted"] is True
    assert stats(onec)["by_external_id"] == {PAYMENT_REQUEST: {"task-1": 1}}
    assert handler.get_stats()["found_existing"] == 2


def test_a_create_that_times_out_is_not_repeated_on_redelivery(handler, onec, admin, onec_settings, monkeypatch):
    search = handler.client.find_by_external_id

    def search_then_stall_the_create(*args: Any) -> Any:
        found = search(*args)  # the create uses the same path, so the fault is armed after the search
        admin("faults", delay_s=1.5, count=1)  # longer than the 0.5 s read timeout; the fake creates anyway
        return found

    monkeypatch.setattr(handler.client, "find_by_external_id", search_then_stall_the_create)
    with pytest.raises(TransientError) as raised:
        handler.process_message(onec_task())
    assert onec_settings.password.get_secret_value() not in str(raised.value)
    monkeypatch.setattr(handler.client, "find_by_external_id", search)
    deadline = time.monotonic() + 5
    while stats(onec)["documents"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    handler.process_message(onec_task())  # the redelivery, after the retry delay
    assert stats(onec)["by_external_id"] == {PAYMENT_REQUEST: {"task-1": 1}}
    assert handler.get_stats()["found_existing"] == 1


def test_injected_503s_are_retried(handler, onec, admin):
    admin("faults", status=503, count=2)  # the search: retried by the client
    handler.process_message(onec_task("task-1"))
    admin("faults", status=503, count=1, path_contains="/Post")  # posting is an action, retried too
    handler.process_message(onec_task("task-2", props={**EXPENSE, "post": "true"}))
    assert stats(onec)["by_external_id"] == {PAYMENT_REQUEST: {"task-1": 1, "task-2": 1}}


def test_a_refused_posting_is_permanent_and_carries_1cs_message(handler, admin, client, onec):
    admin("posting_failure", message="Период закрыт для изменений")
    with pytest.raises(PermanentError, match="Период закрыт для изменений") as raised:
        handler.process_message(onec_task(props={**EXPENSE, "post": "true"}))
    assert raised.value.status == 500 and raised.value.code == "-1"
    assert stats(onec)["documents"] == 1  # created, not posted; the incident's retry posts it
    item = handler.process_message(onec_task(props={**EXPENSE, "post": "true"}))
    assert client.get(PAYMENT_REQUEST, item.id)["Posted"] is True


def test_clear_incidents_for_what_no_retry_fixes(handler):
    with pytest.raises(Incident, match="topic 1c_post is not supported .*supported: 1c_create_document"):
        handler.process_message(onec_task(topic="1c_post"))
    with pytest.raises(Incident, match="property 'entity'"):
        handler.process_message(onec_task(props={"field.Комментарий": "x"}))
    with pytest.raises(Incident, match="'post' must be true or false"):
        handler.process_message(onec_task(props={**EXPENSE, "post": "yes"}))
    with pytest.raises(Incident, match="post=true needs a document"):
        handler.process_message(onec_task(props={"entity": COUNTERPARTIES, "post": "true"}))
    with pytest.raises(Incident, match="ONEC_EXTERNAL_ID_ATTRIBUTE"):
        handler.process_message(onec_task(props={**EXPENSE, "field.ВнешнийИдентификатор": "x"}))


def test_a_wrong_password_is_an_auth_error_without_the_password(onec_settings, make_client):
    wrong = onec_settings.model_copy(update={"password": SecretStr("wrong-1c-secret-987")})
    handler = OneCTaskHandler(CONTEXT, settings=wrong, client=make_client(wrong))
    with pytest.raises(AuthError) as raised:
        handler.process_message(onec_task())
    assert "wrong-1c-secret-987" not in str(raised.value)


def test_tracker_open_posted_and_deleted(handler, tracker, odata, onec_settings):
    item = handler.process_message(onec_task())
    record = SentRecord(task=onec_task(), item=item)
    assert tracker.track(record) == StillOpen("posted=False")
    odata("POST", resource(PAYMENT_REQUEST, item.id, "Post")).raise_for_status()  # a person posts it
    assert tracker.track(record) == Done(variables={"onec_ref_key": item.id, "onec_number": "000000001",
                                                    "onec_posted": True})
    odata("PATCH", resource(PAYMENT_REQUEST, item.id), json={"DeletionMark": True}).raise_for_status()
    outcome = tracker.track(record)
    assert isinstance(outcome, BpmnErrorOutcome) and outcome.code == "ONEC_DOCUMENT_DELETED"
    assert "marked for deletion" in outcome.message
    odata("DELETE", resource(PAYMENT_REQUEST, item.id)).raise_for_status()
    assert tracker.track(record).code == "ONEC_DOCUMENT_DELETED"  # type: ignore[union-attr]
    assert tracker.check_interval_s == onec_settings.check_interval_s


def test_tracker_status_attribute_and_catalog_items(handler, onec_settings, make_client, odata):
    by_status = onec_settings.model_copy(update={"status_attribute": STATUS_ATTRIBUTE,
                                                 "status_done_value": STATUS_DONE_VALUE})
    tracker = OneCTracker(CONTEXT, settings=by_status, client=make_client(by_status))
    item = handler.process_message(onec_task(props={**EXPENSE, "post": "true"}))
    record = SentRecord(task=onec_task(), item=item)
    assert tracker.track(record) == StillOpen(f"posted=True, {STATUS_ATTRIBUTE}=''")  # posted, not approved
    odata("PATCH", resource(PAYMENT_REQUEST, item.id), json={STATUS_ATTRIBUTE: STATUS_DONE_VALUE}).raise_for_status()
    assert isinstance(tracker.track(record), Done)
    catalog = handler.process_message(onec_task("task-2", props={"entity": COUNTERPARTIES, "field.ИНН": "7700000000"}))
    done = tracker.track(SentRecord(task=onec_task("task-2"), item=catalog))
    assert done == Done(variables={"onec_ref_key": catalog.id, "onec_number": "000000003", "onec_posted": False})


def test_a_404_for_a_document_that_is_still_listed_is_not_a_deletion(handler, tracker, admin):
    item = handler.process_message(onec_task())
    record = SentRecord(task=onec_task(), item=item)
    admin("faults", status=404, count=1, path_contains=item.id,
          body={"odata.error": {"code": "", "message": {"lang": "ru", "value": "not found"}}})
    with pytest.raises(CheckFailed, match="still there"):
        tracker.track(record)
    assert tracker.track(record) == StillOpen("posted=False")
