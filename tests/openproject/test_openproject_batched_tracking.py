"""Batched OpenProject checks against the fake: one id-filtered list for many work packages, the same
outcomes as one by one, a deleted one verified alone."""

from __future__ import annotations

from test_openproject_handler import CONTEXT, handler, op_task, set_status  # noqa: F401 - handler is a fixture

from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator.base import BpmnErrorOutcome, Done, StillOpen
from exchanger.systems.openproject.settings import PAGE_SIZE
from exchanger.systems.openproject.tracker import OpenProjectTracker


def test_one_request_answers_for_a_page_of_work_packages(handler, op, api, op_settings,  # noqa: F811
                                                         make_client) -> None:
    records = []
    for n in range(30):
        task = op_task(f"batch-{n}")
        records.append(SentRecord(task=task, item=handler.process_message(task)))
    set_status(op, api, int(records[3].item.id), 5, percentageDone=100)
    set_status(op, api, int(records[4].item.id), 2)
    api.delete(f"{op.url}/api/v3/work_packages/{records[5].item.id}").raise_for_status()
    bad = SentRecord(task=op_task("bad"), item=ExternalItem(system="openproject", id="1/../2"))
    tracker = OpenProjectTracker(CONTEXT, settings=op_settings, client=make_client(op_settings))
    assert tracker.batch_size == PAGE_SIZE
    before = op.app.api_calls
    results = tracker.track_many([*records, bad])
    # one list; the deleted one is read alone (404) and its deletion confirmed by a list; the bad id is
    # refused before any call
    assert op.app.api_calls - before == 3
    assert results[3] == Done(variables={"op_work_package_id": int(records[3].item.id), "op_status": "Closed",
                                         "op_url": records[3].item.url, "op_percentage_done": 100})
    assert results[3] == OpenProjectTracker(CONTEXT, settings=op_settings,
                                            client=make_client(op_settings)).track(records[3])
    assert results[4] == StillOpen("status In progress")
    assert isinstance(results[5], BpmnErrorOutcome) and results[5].code == "OP_WORK_PACKAGE_DELETED"
    assert isinstance(results[30], Exception)
    assert [type(r) for n, r in enumerate(results[:30]) if n not in (3, 4, 5)] == [StillOpen] * 27
