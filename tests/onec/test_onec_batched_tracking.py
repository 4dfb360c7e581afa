"""Batched 1C checks against the fake infobase: one ``$filter … or …`` list per entity for many
documents, the same outcomes as one by one, a deleted one verified alone, a malformed key never in a filter."""

from __future__ import annotations

from test_onec_handler import CONTEXT, handler, onec_task, resource  # noqa: F401 - handler is a fixture

from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator.base import BpmnErrorOutcome, Done, StillOpen
from exchanger.systems.onec.settings import CHECK_BATCH
from exchanger.systems.onec.tracker import OneCTracker
from exchanger_sandbox.onec.state import COUNTERPARTIES, PAYMENT_REQUEST


def test_one_request_per_entity_answers_for_many_documents(handler, onec, odata, onec_settings,  # noqa: F811
                                                           make_client) -> None:
    records = []
    for n in range(12):
        task = onec_task(f"batch-{n}")
        records.append(SentRecord(task=task, item=handler.process_message(task)))
    catalog = handler.process_message(onec_task("cat", props={"entity": COUNTERPARTIES, "field.ИНН": "7700000001"}))
    records.append(SentRecord(task=onec_task("cat"), item=catalog))
    odata("POST", resource(PAYMENT_REQUEST, records[2].item.id, "Post")).raise_for_status()
    odata("PATCH", resource(PAYMENT_REQUEST, records[3].item.id), json={"DeletionMark": True}).raise_for_status()
    odata("DELETE", resource(PAYMENT_REQUEST, records[4].item.id)).raise_for_status()
    bad = SentRecord(task=onec_task("bad"), item=ExternalItem(system="1c", id="x' or true or 'y",
                                                              data={"entity": PAYMENT_REQUEST}))
    tracker = OneCTracker(CONTEXT, settings=onec_settings, client=make_client(onec_settings))
    assert tracker.batch_size == CHECK_BATCH
    before = onec.app.api_calls
    results = tracker.track_many([*records, bad])
    # one list per entity (2); the deleted one read alone (404) and its absence confirmed (2); the bad key: none
    assert onec.app.api_calls - before == 4
    assert results[2] == Done(variables={"onec_ref_key": records[2].item.id, "onec_number": "000000003",
                                         "onec_posted": True})
    assert results[2] == OneCTracker(CONTEXT, settings=onec_settings,
                                     client=make_client(onec_settings)).track(records[2])
    assert isinstance(results[3], BpmnErrorOutcome) and "marked for deletion" in results[3].message
    assert isinstance(results[4], BpmnErrorOutcome) and results[4].code == "ONEC_DOCUMENT_DELETED"
    assert isinstance(results[12], Done)  # a catalog item is done once it exists
    assert isinstance(results[13], Exception)
    assert [type(r) for n, r in enumerate(results[:12]) if n not in (2, 3, 4)] == [StillOpen] * 9
