"""Retry policy, routing/loader validation and outcome mapping, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from creator_testkit import make_task

from exchanger.contracts import ExternalItem, SentRecord
from exchanger.creator import outcomes
from exchanger.creator.base import Done, StillOpen
from exchanger.creator.item_events import AnsweredLedger
from exchanger.creator.loader import load_components
from exchanger.creator.retry_policy import RetryPolicy, parse_duration_ms
from exchanger.creator.routing_config import CreatorRouting, queue_handlers, tracker_handlers
from exchanger.creator.settings import CreatorSettings, HandlerSpec
from exchanger.errors import ConfigError, NotFound, RateLimited, TransientError
from exchanger.http_client import retry_after_seconds
from exchanger.settings import load

# --- retry policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ms"), [("PT5M", 300_000), ("PT1H30M", 5_400_000), ("P1D", 86_400_000),
                                          ("PT0.5S", 500), ("pt10s", 10_000)])
def test_iso_durations(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["5m", "PT", "P", "PT5X", ""])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration_ms(text)


def test_repeat_and_list_forms():
    assert RetryPolicy.parse("R3/PT5M").delays_ms == (300_000,) * 3
    assert RetryPolicy.parse("PT10S, PT1M,PT5M").delays_ms == (10_000, 60_000, 300_000)
    assert RetryPolicy.parse("").retries == 0


def test_queue_retries_and_camunda_retries_read_the_same_policy():
    policy = RetryPolicy.parse("PT10S,PT1M,PT5M")
    assert [policy.delay_for_attempt(n) for n in (1, 2, 3, 4)] == [10_000, 60_000, 300_000, None]
    assert policy.retries_left(None) == 3 and policy.timeout_for(3) == 10_000
    assert policy.retries_left(3) == 2 and policy.timeout_for(2) == 60_000
    assert policy.retries_left(1) == 0 and policy.timeout_for(0) is None


def test_the_activity_retry_config_wins_and_a_bad_one_falls_back():
    default = RetryPolicy.parse("R1/PT1S", source="CREATOR_RETRY_CONFIG")
    task = make_task("t", "x", "python")
    assert RetryPolicy.for_task(task, default) is default
    task.bpmn_metadata.extension_properties["retryConfig"] = "R5/PT2M"
    assert RetryPolicy.for_task(task, default).delays_ms == (120_000,) * 5
    task.bpmn_metadata.extension_properties["retryConfig"] = "every five minutes"
    assert RetryPolicy.for_task(task, default) is default


def test_a_bad_retry_setting_stops_the_start_naming_it(monkeypatch):
    monkeypatch.setenv("CREATOR_RETRY_CONFIG", "sometimes")
    with pytest.raises(ConfigError, match="CREATOR_RETRY_CONFIG"):
        load(CreatorSettings)


# --- routing and loading ----------------------------------------------------------------------------


def test_defaults_follow_the_seeds_and_settings_override_them(monkeypatch):
    assert queue_handlers()["bitrix24.queue"].handler_class == "Bitrix24TaskHandler"
    assert queue_handlers()["1c.queue"].module == "exchanger.systems.onec.handler"
    assert tracker_handlers()["openproject.sent.queue"].tracker_class == "OpenProjectTracker"
    monkeypatch.setenv("CREATOR_QUEUE_HANDLERS", '{"crm.queue": {"module": "acme.crm", "handler_class": "Crm"}}')
    monkeypatch.setenv("CREATOR_SENT_QUEUES_MAPPING", '{"crm.queue": "crm.sent.queue"}')
    routing = CreatorRouting.from_settings(load(CreatorSettings))
    assert routing.queue_handlers["crm.queue"] == HandlerSpec(module="acme.crm", handler_class="Crm")
    assert routing.sent_queues["crm.queue"] == "crm.sent.queue" and "python.queue" in routing.queue_handlers


def _routing(**handlers: tuple[str, str]) -> CreatorRouting:
    return CreatorRouting({q: HandlerSpec(module=m, handler_class=c) for q, (m, c) in handlers.items()}, {}, {})


@pytest.mark.parametrize(("module", "cls", "message"), [
    ("no_such_pkg.handler", "H", "queue x.queue: no_such_pkg.handler:H cannot be loaded: module no_such_pkg.handler "
                                 "does not exist"),
    ("creator_testkit", "Missing", "creator_testkit:Missing cannot be loaded: module creator_testkit has no Missing"),
    ("creator_testkit", "NotAHandler", "does not implement the contract: it must subclass "
                                       "exchanger.creator.base.BaseMessageHandler"),
    ("creator_testkit", "HalfAHandler", "does not implement the contract: missing create"),
])
def test_an_explicitly_served_queue_that_cannot_load_stops_the_start_naming_it(module, cls, message):
    with pytest.raises(ConfigError) as error:
        load_components(CreatorSettings(queues="x.queue"), _routing(**{"x.queue": (module, cls)}), "responses")
    assert message in str(error.value)


def test_a_handler_whose_settings_are_missing_stops_an_explicit_start_and_is_skipped_otherwise(monkeypatch):
    monkeypatch.delenv("TESTKIT_STORE_DIR", raising=False)  # StoreHandler reads it in its constructor
    routing = _routing(**{"x.queue": ("creator_testkit", "StoreHandler"),
                          "y.queue": ("no_such_pkg.handler", "H"),
                          "default.queue": ("exchanger.systems.default.handler", "DefaultTaskHandler")})
    with pytest.raises(ConfigError, match="queue x.queue: creator_testkit:StoreHandler cannot start: KeyError"):
        load_components(CreatorSettings(queues="x.queue"), routing, "responses")
    # a KeyError is a bug, not missing settings: it stops even the automatic start
    with pytest.raises(ConfigError, match="StoreHandler cannot start"):
        load_components(CreatorSettings(), routing, "responses")
    del routing.queue_handlers["x.queue"]
    components = load_components(CreatorSettings(), routing, "responses")
    assert list(components.handlers) == ["default.queue"]
    assert "does not exist" in components.skipped["y.queue"]


def test_an_unknown_served_queue_is_named():
    with pytest.raises(ConfigError, match="CREATOR_QUEUES names nope.queue"):
        load_components(CreatorSettings(queues="nope.queue"), _routing(), "responses")


# --- outcome mapping --------------------------------------------------------------------------------


def _record() -> tuple[SentRecord, datetime]:
    return SentRecord(task=make_task("o1", "x", "1c"), item=ExternalItem(system="1c", id="9")), datetime.now(UTC)


def test_a_result_camunda_cannot_store_or_a_non_outcome_is_an_incident_not_a_lost_message():
    task = make_task("o1", "x", "python")
    action = outcomes.for_task(task, Done(variables={"tags": {"a", "b"}}), attempt=1, policy=RetryPolicy(()))
    assert isinstance(action, outcomes.Respond) and action.response.retries == 0 and action.park_reason
    assert "cannot store" in action.response.error_message
    action = outcomes.for_task(task, None, attempt=1, policy=RetryPolicy(()))  # type: ignore[arg-type]
    assert isinstance(action, outcomes.Respond) and "returned NoneType" in action.response.error_message
    record, now = _record()
    action = outcomes.for_check(record, "done", now=now)  # type: ignore[arg-type]
    assert isinstance(action, outcomes.Respond) and "tracker returned str" in action.response.error_message


def test_a_tracker_error_that_is_not_permanent_means_check_again_later():
    record, now = _record()
    action = outcomes.for_check(record, TransientError("timeout"), now=now)
    assert isinstance(action, outcomes.Track) and action.record.checks == 1 and action.record.last_checked_at == now
    action = outcomes.for_check(record, NotFound("document 9 is gone"), now=now)
    assert isinstance(action, outcomes.Respond) and action.response.error_message == "1c item 9: document 9 is gone"


def test_an_absurd_retry_after_is_capped_and_the_cap_logged():
    task = make_task("o2", "x", "bitrix24")
    policy = RetryPolicy((10_000,))
    for seconds in (1e9, 365 * 86400.0):  # the broker refuses the first as a TTL; the second is a year
        action = outcomes.for_task(task, RateLimited("slow down", retry_after_s=seconds), attempt=1, policy=policy,
                                   max_retry_after_s=600)
        assert isinstance(action, outcomes.Retry) and action.delay_ms == 600_000
    action = outcomes.for_task(task, RateLimited("slow down", retry_after_s=30), attempt=1, policy=policy,
                               max_retry_after_s=600)
    assert isinstance(action, outcomes.Retry) and action.delay_ms == 30_000


@pytest.mark.parametrize("header", ["1e999", "nan", "-5", "soon"])
def test_a_retry_after_that_is_not_a_finite_wait_is_ignored(header):
    response = requests.Response()
    response.headers["Retry-After"] = header
    assert retry_after_seconds(response) is None


def test_unexpected_check_errors_are_bounded_and_an_open_answer_resets_the_count():
    record, now = _record()
    for expected in (1, 2):
        action = outcomes.for_check(record, ValueError("bad date"), now=now, max_check_errors=3)
        assert isinstance(action, outcomes.Track) and action.record.failed_checks == expected
        record = action.record
    transient = outcomes.for_check(record, TransientError("down"), now=now, max_check_errors=3)
    assert isinstance(transient, outcomes.Track) and transient.record.failed_checks == 2  # waiting is not failing
    action = outcomes.for_check(record, ValueError("bad date"), now=now, max_check_errors=3)
    assert isinstance(action, outcomes.Respond) and action.response.retries == 0 and action.park_reason
    assert "failed 3 times in a row" in action.response.error_message
    reset = outcomes.for_check(record, StillOpen(), now=now, max_check_errors=3)
    assert isinstance(reset, outcomes.Track) and reset.record.failed_checks == 0


def test_the_answered_ledger_lets_one_claim_of_a_task_through_until_released_or_forgotten():
    now = [100.0]
    ledger = AnsweredLedger(ttl_s=60, clock=lambda: now[0])
    record = SentRecord(task=make_task("t-claim", "store_task", "1c"), item=ExternalItem(system="1c", id="i-1"))
    assert ledger.claim(record)  # the check, say
    assert not ledger.claim(record)  # the event of the same item, a moment later: no second response
    assert ledger.task_answered("t-claim") and ledger.item_answered("i-1")
    ledger.release(record)  # the publish failed: the next one answers
    assert not ledger.task_answered("t-claim") and ledger.claim(record)
    now[0] += 61
    assert ledger.claim(record)  # forgotten after the ttl
