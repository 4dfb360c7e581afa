"""The shared base of tracked systems (exchanger.creator.tracked) and the tracker's ``check`` rename,
without a broker: settings under each system's prefix, one client per system, the deleted-item policy."""

from __future__ import annotations

import warnings

import pytest
from creator_testkit import context, make_task

from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator.base import BaseTracker, BpmnErrorOutcome, Done, Failed, TrackerOutcome
from exchanger.creator.loader import load_components
from exchanger.creator.routing_config import CreatorRouting
from exchanger.creator.settings import CreatorSettings, TrackerSpec
from exchanger.creator.tracked import deleted, shared_clients
from exchanger.errors import ConfigError, Incident
from exchanger.settings import load
from exchanger.systems.onec.settings import OneCSettings
from exchanger.systems.openproject.handler import OpenProjectTaskHandler
from exchanger.systems.openproject.settings import OpenProjectSettings
from exchanger.systems.openproject.tracker import OpenProjectTracker

RECORD = SentRecord(task=make_task("t-1", "x", "x"), item=ExternalItem(system="x", id="7"))


def test_the_variables_users_have_keep_their_names_and_the_new_common_ones_follow_the_prefix(monkeypatch):
    monkeypatch.setenv("OPENPROJECT_BASE_URL", "https://op.example.com/")
    monkeypatch.setenv("OPENPROJECT_API_KEY", "k" * 40)
    monkeypatch.setenv("OPENPROJECT_DELETED_ERROR_CODE", "GONE")
    monkeypatch.setenv("OPENPROJECT_DELETED_AS_FAILURE", "true")
    monkeypatch.setenv("OPENPROJECT_CHECK_INTERVAL_S", "12")
    settings = load(OpenProjectSettings)
    assert (settings.base_url, settings.deleted_error_code, settings.deleted_as_failure, settings.check_interval_s,
            settings.check_batch_size) == ("https://op.example.com", "GONE", True, 12.0, 100)
    monkeypatch.setenv("OPENPROJECT_CHECK_BATCH_SIZE", "101")  # more than one page
    with pytest.raises(ConfigError, match="at most 100 items per check request"):
        load(OpenProjectSettings)
    monkeypatch.setenv("ONEC_BASE_URL", "ftp://1c")
    monkeypatch.setenv("ONEC_USERNAME", "u")
    with pytest.raises(ConfigError, match="ONEC_BASE_URL: .*http:// or https://"):
        load(OneCSettings)


def test_a_subclass_changes_a_default_and_keeps_the_checks_and_the_description():
    field = OneCSettings.model_fields["deleted_error_code"]
    assert field.default == "ONEC_DOCUMENT_DELETED" and field.description
    with pytest.raises(ValueError, match="at least 1 character"):
        OneCSettings(base_url="http://1c", username="u", deleted_error_code="")


def test_a_deleted_item_is_the_bpmn_error_or_by_choice_a_failure():
    settings = OpenProjectSettings(base_url="http://op", api_key="k" * 40)
    assert deleted(settings, "gone", {"id": 7}) == BpmnErrorOutcome("OP_WORK_PACKAGE_DELETED", "gone", {"id": 7})
    as_failure = settings.model_copy(update={"deleted_as_failure": True})
    assert deleted(as_failure, "gone", {"id": 7}) == Failed(reason="gone")


def test_the_handler_and_tracker_of_a_system_share_one_client_closed_with_the_last():
    settings = OpenProjectSettings(base_url="http://127.0.0.1:9", api_key="k" * 40)  # nothing is called
    handler = OpenProjectTaskHandler(context("openproject"), settings=settings)
    tracker = OpenProjectTracker(context("openproject"), settings=settings)
    assert handler.client is tracker.client
    assert (handler.write_settle_s, tracker.check_interval_s, tracker.batch_size) == (90.0, 300.0, 100)
    closed: list[bool] = []
    handler.client.http.session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    handler.cleanup()
    assert not closed
    tracker.cleanup()
    assert closed == [True]
    assert OpenProjectTracker(context("openproject"), settings=settings).client is not handler.client  # a new one
    shared_clients.release(OpenProjectTracker(context("openproject"), settings=settings).client)


def test_a_topic_the_system_does_not_know_is_an_incident_before_any_call():
    settings = OpenProjectSettings(base_url="http://127.0.0.1:9", api_key="k" * 40)
    handler = OpenProjectTaskHandler(context("openproject"), settings=settings)
    try:
        with pytest.raises(Incident, match="topic op_close_task is not supported by the openproject handler"):
            handler.process_message(make_task("t-2", "op_close_task", "openproject"))
        assert handler.get_stats() == {"total_messages": 1, "raised_Incident": 1, "failed_tasks": 1}
    finally:
        handler.cleanup()


def test_a_tracker_written_for_the_old_name_check_task_status_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match="check_task_status is now called check"):
        class OldTracker(BaseTracker):
            def check_task_status(self, record: SentRecord) -> TrackerOutcome:
                return Done(variables={"old": True})

    tracker = OldTracker(context("x"))
    assert tracker.track(RECORD) == Done(variables={"old": True})
    assert tracker.check(RECORD) == Done(variables={"old": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class NewTracker(BaseTracker):
            def check(self, record: SentRecord) -> TrackerOutcome:
                return Done()

    assert NewTracker(context("x")).check_task_status(RECORD) == Done()  # old callers reach the new name


def test_a_tracker_without_check_is_refused_at_start():
    routing = CreatorRouting(queue_handlers={}, sent_queues={},
                             tracker_handlers={"x.sent.queue": TrackerSpec(module="creator_testkit",
                                                                           tracker_class="NoCheckTracker")})
    with pytest.raises(ConfigError, match="does not implement the contract: missing check"):
        load_components(CreatorSettings(queues="x.sent.queue"), routing, "responses")
