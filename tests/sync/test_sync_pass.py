"""Passes of camunda-sync against the fake StormBPMN and the sandbox engine (both real HTTP, in-process):
deploy-changed-only per tenant, no StormBPMN call for an unchanged listing, exactly one new version on a
change, broken diagrams named and skipped, Camunda as the truth, crash safety, dry-run, outages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_storm import upload

from exchanger.camunda.settings import CamundaSettings
from exchanger.sync.daemon import Sync, serve
from exchanger.sync.ratelimit import StormRateLimiter
from exchanger.sync.settings import StormSettings, SyncSettings
from exchanger.sync.state import SyncState
from exchanger_sandbox.camunda.server import CamundaSandbox
from exchanger_sandbox.camunda.server import start as start_engine
from exchanger_sandbox.stormbpmn.seed import ONBOARDING
from exchanger_sandbox.stormbpmn.server import API_KEY, BEARER_TOKEN, StormServer
from exchanger_sandbox.stormbpmn.server import start as start_storm

TENANT = "imenaDev"
BROKEN = ONBOARDING.replace('<bpmn:startEvent id="StartEvent_1" name="Кандидат принял оффер" />', "")


@pytest.fixture
def storm() -> Iterator[StormServer]:
    server = start_storm(0, seeded=True, per_window=50, window_s=1.0)
    yield server
    server.stop()


@pytest.fixture
def engine() -> Iterator[CamundaSandbox]:
    sandbox = start_engine()
    yield sandbox
    sandbox.stop()


def make_sync(storm: StormServer, engine: CamundaSandbox, state: Path, *, limiter: StormRateLimiter | None = None,
              **settings: object) -> Sync:
    storm_settings = StormSettings(base_url=storm.url, api_key=API_KEY, bearer_token=BEARER_TOKEN,
                                   internal_assignees=True)
    sync_settings = SyncSettings(state_file=str(state), **settings)
    return Sync(state, storm_settings=storm_settings, sync_settings=sync_settings,
                camunda_settings=CamundaSettings(base_url=engine.url, tenant_id=TENANT),
                limiter=limiter or StormRateLimiter(50, window_s=1.0))


def deployments(engine: CamundaSandbox) -> list[dict]:
    return requests.get(engine.url + "/deployment", timeout=5).json()


def definitions(engine: CamundaSandbox, key: str) -> list[dict]:
    return requests.get(engine.url + "/process-definition", params={"key": key}, timeout=5).json()


def test_deploys_per_tenant_then_only_what_changed(storm: StormServer, engine: CamundaSandbox, tmp_path: Path) -> None:
    sync = make_sync(storm, engine, tmp_path / "state.sqlite")
    first = sync.run_pass()
    assert [o.action for o in first.outcomes] == ["deployed"] * 3 and first.exit_code == 0
    assert {d["tenantId"] for d in deployments(engine)} == {TENANT}
    assert {d["source"] for d in deployments(engine)} == {"camunda-sync"}
    assert all(d["name"].startswith("storm-") for d in deployments(engine))
    line = next(o.line() for o in first.outcomes if o.name == "Согласование договора")
    assert "→ deployed Process_contract version 1 (tenant imenaDev)" in line

    requests_before = storm.app.stats()["requests"]
    second = sync.run_pass()
    assert [o.action for o in second.outcomes] == ["unchanged"] * 3
    assert storm.app.stats()["requests"] == requests_before + 1  # only the list: no body was fetched
    assert len(deployments(engine)) == 3

    upload(storm, [{"id": "onboarding", "name": "Приём сотрудника", "xml": ONBOARDING.replace(
        "Подготовить рабочее место", "Подготовить рабочее место и пропуск")}])
    third = sync.run_pass()
    assert sorted(o.action for o in third.outcomes) == ["deployed", "unchanged", "unchanged"]
    assert sorted(d["version"] for d in definitions(engine, "storm_onboarding")) == [1, 2]  # exactly one more
    sync.close()


def test_a_broken_diagram_is_named_and_skipped_and_not_retried(storm: StormServer, engine: CamundaSandbox,
                                                                 tmp_path: Path) -> None:
    upload(storm, [{"id": "broken", "name": "Сломанная", "xml": BROKEN}])
    sync = make_sync(storm, engine, tmp_path / "state.sqlite")
    report = sync.run_pass()
    assert report.exit_code == 1 and len([o for o in report.outcomes if o.action == "deployed"]) == 3
    (failed,) = report.failed
    assert failed.line().startswith("«Сломанная» ") and "FAILED: " in failed.line()
    assert "Flow_1" in failed.detail and "StartEvent_1" in failed.detail  # the flow to nowhere, by id
    requests_before = storm.app.stats()["requests"]
    again = sync.run_pass()
    assert [o.action for o in again.outcomes if o.name == "Сломанная"] == ["failed"]
    assert storm.app.stats()["requests"] == requests_before + 1  # not fetched again until it changes
    sync.close()


def test_camunda_is_the_truth_an_engine_without_the_model_gets_it(storm: StormServer, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with start_engine() as first_engine:
        sync = make_sync(storm, first_engine, state)
        assert sync.run_pass().exit_code == 0
        sync.close()
    with start_engine() as fresh_engine:  # a new, empty engine; the state still says "deployed"
        sync = make_sync(storm, fresh_engine, state)
        report = sync.run_pass()
        assert [o.action for o in report.outcomes] == ["deployed"] * 3
        assert len(deployments(fresh_engine)) == 3
        sync.close()


def test_a_crash_between_deploy_and_record_neither_loses_nor_duplicates(storm: StormServer, engine: CamundaSandbox,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    state_path = tmp_path / "state.sqlite"
    sync = make_sync(storm, engine, state_path, include_ids=_id_of(storm, "Отпуск сотрудника"))
    original = SyncState.save
    calls = {"n": 0}

    def crash_on_record(self: SyncState, st: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the first save writes pending, the second would record the deployment
            raise KeyboardInterrupt("killed")
        original(self, st)  # type: ignore[arg-type]

    monkeypatch.setattr(SyncState, "save", crash_on_record)
    with pytest.raises(KeyboardInterrupt):
        sync.run_pass()
    monkeypatch.setattr(SyncState, "save", original)
    sync.close()
    assert len(deployments(engine)) == 1  # deployed, not recorded
    sync = make_sync(storm, engine, state_path, include_ids=_id_of(storm, "Отпуск сотрудника"))
    assert sync.state.pending()  # the next pass knows
    report = sync.run_pass()
    (outcome,) = report.outcomes
    assert outcome.action == "unchanged" and "already in Camunda: Process_vacation version 1" in outcome.detail
    assert len(deployments(engine)) == 1 and not sync.state.pending()
    assert sync.state.all()[0].definitions[0]["key"] == "Process_vacation"
    sync.close()


def _id_of(storm: StormServer, name: str) -> str:
    return next(d.id for d in storm.team.diagrams.values() if d.name == name)


def test_dry_run_shows_the_diff_and_deploys_nothing(storm: StormServer, engine: CamundaSandbox, tmp_path: Path) -> None:
    sync = make_sync(storm, engine, tmp_path / "state.sqlite")
    onboarding = _id_of(storm, "Приём сотрудника")
    preview = sync.run_pass(dry_run=True, only=[onboarding])
    (outcome,) = preview.outcomes
    assert outcome.action == "would deploy" and outcome.detail == "(new)" and "+++ converted" in outcome.diff
    assert deployments(engine) == [] and sync.state.all() == []
    sync.run_pass(only=[onboarding])
    upload(storm, [{"id": "onboarding", "name": "Приём сотрудника",
                    "xml": ONBOARDING.replace("Сотрудник принят", "Принят")}])
    changed = sync.run_pass(dry_run=True, only=[onboarding]).outcomes[0]
    assert changed.detail == "(changed)"
    assert '-<bpmn:endEvent id="Event_hired" name="Сотрудник принят">' in changed.diff.replace("    ", "")
    assert len(deployments(engine)) == 1
    sync.close()


def test_camunda_refusing_a_deployment_is_recorded_and_not_retried(storm: StormServer, engine: CamundaSandbox,
                                                                    tmp_path: Path) -> None:
    body = {"type": "ParseException", "message": "ENGINE-09005 Could not parse BPMN process: boom",
            "details": {}}
    requests.post(engine.server.url + "/_admin/faults", json={"status": 400, "count": 1, "body": body,
                                                       "path_contains": "/deployment/create"}, timeout=5)
    sync = make_sync(storm, engine, tmp_path / "state.sqlite", include_ids=_id_of(storm, "Отпуск сотрудника"))
    (failed,) = sync.run_pass().failed
    assert "Camunda refused the deployment" in failed.detail and "ENGINE-09005" in failed.detail
    (again,) = sync.run_pass().outcomes
    assert again.action == "failed" and deployments(engine) == []  # not retried until the diagram changes
    sync.close()


def test_outages_end_the_pass_with_one_clear_line(storm: StormServer, engine: CamundaSandbox, tmp_path: Path) -> None:
    sync = make_sync(storm, engine, tmp_path / "state.sqlite")
    requests.post(storm.url + "/_admin/faults", json={"status": 503, "count": 5}, timeout=5)
    down = sync.run_pass()
    assert down.exit_code == 2 and "StormBPMN unreachable or failing" in down.aborted
    requests.delete(storm.url + "/_admin/faults", timeout=5)
    sync.close()
    bad_key = Sync(tmp_path / "state.sqlite", storm_settings=StormSettings(base_url=storm.url, api_key="nope-nope"),
                   sync_settings=SyncSettings(state_file=str(tmp_path / "state.sqlite")),
                   camunda_settings=CamundaSettings(base_url=engine.url, tenant_id=TENANT),
                   limiter=StormRateLimiter(50, window_s=1.0))
    refused = bad_key.run_pass()
    assert refused.exit_code == 2 and "refused the credentials" in refused.aborted and "nope-nope" not in \
        refused.aborted
    bad_key.close()


def test_a_key_owned_by_another_diagram_is_refused(storm: StormServer, engine: CamundaSandbox, tmp_path: Path) -> None:
    sync = make_sync(storm, engine, tmp_path / "state.sqlite")
    sync.run_pass()
    upload(storm, [{"id": "copy", "name": "Копия приёма", "xml": ONBOARDING}])
    (failed,) = sync.run_pass().failed
    assert failed.name == "Копия приёма" and "storm_onboarding belongs to diagram «Приём сотрудника»" in failed.detail
    sync.close()


def test_the_daemon_passes_until_stopped_and_reports_readiness(storm: StormServer, engine: CamundaSandbox,
                                                               tmp_path: Path) -> None:
    sync = make_sync(storm, engine, tmp_path / "state.sqlite", interval_s=0.2, health_port=0)
    stop = threading.Event()
    runner = threading.Thread(target=lambda: serve(sync, stop))
    runner.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(deployments(engine)) < 3:
        time.sleep(0.1)
    time.sleep(0.5)  # a few more passes: nothing new
    stop.set()
    runner.join(10)
    assert not runner.is_alive() and len(deployments(engine)) == 3
    assert sync.state.meta("last_pass")["counts"] == {"unchanged": 3}
    sync.close()


def test_a_stop_during_a_rate_limit_wait_ends_the_daemon_at_once(storm: StormServer, engine: CamundaSandbox,
                                                                 tmp_path: Path) -> None:
    slow = StormRateLimiter(1, window_s=60.0)  # the body fetch waits a minute
    sync = make_sync(storm, engine, tmp_path / "state.sqlite", limiter=slow, health_port=0)
    stop = threading.Event()
    runner = threading.Thread(target=lambda: serve(sync, stop))
    runner.start()
    time.sleep(0.5)
    started = time.monotonic()
    stop.set()
    runner.join(10)
    assert not runner.is_alive() and time.monotonic() - started < 2
    assert deployments(engine) == [] and not sync.state.pending()
    sync.close()


def test_a_diagram_missing_from_two_listings_is_reported_gone(storm: StormServer, engine: CamundaSandbox,
                                                              tmp_path: Path) -> None:
    sync = make_sync(storm, engine, tmp_path / "state.sqlite")
    sync.run_pass()
    with storm.team.lock:
        del storm.team.diagrams[_id_of(storm, "Отпуск сотрудника")]
    assert sync.run_pass().gone == []  # once may be a listing glitch
    (gone,) = sync.run_pass().gone
    assert gone.startswith("«Отпуск сотрудника»")
    assert definitions(engine, "Process_vacation")  # its deployed process is kept
    sync.close()
