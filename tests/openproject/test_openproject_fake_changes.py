"""The fake OpenProject's change feeds: ``updatedAt`` filters and sorting (API v3), and outgoing webhooks
as OpenProject's webhooks module sends them (raw HTTP, a loopback receiver)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
from broker_queues import wait_for
from test_openproject_fake import close, create

from exchanger_sandbox.http import App, Request, Response, SandboxServer, empty_response
from exchanger_sandbox.openproject import server as fake

SECRET = "s3cret-of-the-webhook"


@dataclass
class Receiver:
    """A loopback endpoint that keeps every POST; ``status`` and ``stall_s`` shape its answers."""

    server: SandboxServer
    calls: list[Request] = field(default_factory=list)
    status: int = 200
    stall_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/openproject"

    def bodies(self) -> list[dict]:
        with self.lock:
            return [json.loads(call.body) for call in self.calls]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = App("receiver")
    server = SandboxServer(app)
    got = Receiver(server)

    def keep(request: Request) -> Response:
        with got.lock:
            got.calls.append(request)
        time.sleep(got.stall_s)
        return empty_response(got.status)

    app.add_route("POST", "/hooks/openproject", keep)
    server.start()
    yield got
    server.stop()


def configure(op: fake.OpenProjectServer, **hook: object) -> None:
    response = requests.put(f"{op.url}/_admin/webhooks", json={"webhooks": [hook]}, timeout=5)
    response.raise_for_status()


def webhooks(op: fake.OpenProjectServer) -> dict:
    return requests.get(f"{op.url}/_admin/webhooks", timeout=5).json()


def listed(api: requests.Session, op: fake.OpenProjectServer, filters: object, **params: object) -> list[int]:
    response = api.get(f"{op.url}/api/v3/work_packages", params={"filters": json.dumps(filters), **params})
    assert response.status_code == 200, response.text
    return [wp["id"] for wp in response.json()["_embedded"]["elements"]]


def updated_since(moment: str, until: str = "") -> dict:
    return {"updatedAt": {"operator": "<>d", "values": [moment, until]}}


ANY = {"status": {"operator": "*", "values": []}}


# --- updatedAt, sortBy, id over many ---------------------------------------------------------------


def test_updated_at_between_lists_what_changed_since_inclusive(api, op):
    first, second, third = (create(api, op).json() for _ in range(3))
    time.sleep(0.01)
    closed = close(api, op, second["id"])
    since = closed["updatedAt"]
    assert listed(api, op, [updated_since(since), ANY]) == [second["id"]]  # the bound is inclusive
    assert listed(api, op, [updated_since(since), {"status": {"operator": "c", "values": []}}]) == [second["id"]]
    assert listed(api, op, [updated_since("", first["updatedAt"]), ANY]) == [first["id"]]
    everything = listed(api, op, [updated_since(first["createdAt"]), ANY])
    assert sorted(everything) == [first["id"], second["id"], third["id"]]
    later = (datetime.fromisoformat(since) + timedelta(seconds=1)).isoformat()
    assert listed(api, op, [updated_since(later), ANY]) == []
    offset = datetime.fromisoformat(since).astimezone(timezone(timedelta(hours=3))).isoformat()  # same moment
    assert listed(api, op, [updated_since(offset), ANY]) == [second["id"]]


def test_relative_day_operators_and_bad_values_are_invalid_query(api, op):
    wp = create(api, op).json()
    assert listed(api, op, [{"updatedAt": {"operator": ">t-", "values": ["1"]}}, ANY]) == [wp["id"]]
    assert listed(api, op, [{"updatedAt": {"operator": "<t-", "values": ["1"]}}, ANY]) == []
    assert listed(api, op, [{"updatedAt": {"operator": "t", "values": []}}, ANY]) == [wp["id"]]
    today = datetime.now(UTC).date().isoformat()
    assert listed(api, op, [{"createdAt": {"operator": "=d", "values": [today]}}, ANY]) == [wp["id"]]
    for bad in ({"operator": "<>d", "values": ["yesterday", ""]}, {"operator": "<>d", "values": ["", ""]},
                {"operator": "<>d", "values": [today]}, {"operator": "=", "values": [today]},
                {"operator": ">t-", "values": ["x"]}):
        response = api.get(f"{op.url}/api/v3/work_packages", params={"filters": json.dumps([{"updatedAt": bad}])})
        assert response.status_code == 400, bad
        assert response.json()["errorIdentifier"].endswith("InvalidQuery")


def test_sort_by_updated_at_and_id_filter_over_many(api, op):
    ids = [create(api, op).json()["id"] for _ in range(5)]
    for wp_id in (ids[3], ids[0]):
        time.sleep(0.002)
        close(api, op, wp_id, status_id=2)
    newest_last = listed(api, op, [ANY], sortBy='[["updatedAt","asc"]]')
    assert newest_last[-2:] == [ids[3], ids[0]]
    assert listed(api, op, [ANY], sortBy='[["updatedAt","desc"]]')[:2] == [ids[0], ids[3]]
    wanted = [str(i) for i in range(1, 1001)]  # one page of ids, most of them unknown
    assert listed(api, op, [{"id": {"operator": "=", "values": wanted}}, ANY], pageSize=1000) == ids
    bad = api.get(f"{op.url}/api/v3/work_packages", params={"sortBy": '[["colour","asc"]]'})
    assert bad.status_code == 400


# --- webhooks ----------------------------------------------------------------------------------------


def test_webhook_posts_the_work_package_signed_with_the_secret(api, op, receiver):
    configure(op, url=receiver.url, secret=SECRET)
    wp = create(api, op, subject="Approve <invoice> & pay").json()
    closed = close(api, op, wp["id"])
    wait_for(lambda: len(receiver.calls) == 2, 10, "two webhook calls (created, updated)")
    created, updated = receiver.calls
    assert [json.loads(c.body)["action"] for c in receiver.calls] == ["work_package:created", "work_package:updated"]
    body = json.loads(updated.body)
    assert body["work_package"]["id"] == wp["id"]
    assert body["work_package"]["_embedded"]["status"]["isClosed"] is True
    assert body["work_package"]["lockVersion"] == closed["lockVersion"]
    assert updated.headers["content-type"] == "application/json"
    expected = "sha1=" + hmac.new(SECRET.encode(), updated.body, hashlib.sha1).hexdigest()
    assert updated.headers["x-op-signature"] == expected
    assert b"\\u003cinvoice\\u003e \\u0026 pay" in created.body  # Rails' to_json: sign the bytes, not a re-dump
    assert json.loads(created.body)["work_package"]["subject"] == "Approve <invoice> & pay"
    log = webhooks(op)["deliveries"]
    assert [d["response_code"] for d in log] == [200, 200]


def test_no_secret_no_signature_and_only_subscribed_events_and_projects(api, op, receiver):
    configure(op, url=receiver.url, events=["work_package:updated"], projects=[2])
    mine = create(api, op).json()  # project 1: not selected
    close(api, op, mine["id"])
    other = api.post(f"{op.url}/api/v3/projects/finance/work_packages", json={"subject": "Pay"}).json()
    close(api, op, other["id"])
    api.post(f"{op.url}/api/v3/work_packages/{other['id']}/activities", json={"comment": {"raw": "done"}})
    wait_for(lambda: len(receiver.calls) == 2, 10, "the update and the comment of the finance work package")
    time.sleep(0.2)
    assert [(b["action"], b["work_package"]["id"]) for b in receiver.bodies()] == [
        ("work_package:updated", other["id"]), ("work_package:updated", other["id"])]
    assert all("x-op-signature" not in c.headers for c in receiver.calls)


def test_changes_within_the_aggregation_time_make_one_event(api, op, receiver):
    requests.put(f"{op.url}/_admin/webhooks", timeout=5, json={
        "webhooks": [{"url": receiver.url, "secret": SECRET}], "aggregation_s": 0.5}).raise_for_status()
    wp = create(api, op).json()
    close(api, op, wp["id"], status_id=2)
    close(api, op, wp["id"], status_id=5)
    time.sleep(0.2)
    assert receiver.calls == []  # still aggregating
    wait_for(lambda: receiver.calls, 10, "the aggregated event")
    time.sleep(0.7)
    (body,) = receiver.bodies()
    assert body["action"] == "work_package:created"  # the first journal, extended by the changes
    assert body["work_package"]["_embedded"]["status"]["name"] == "Closed"  # rendered when the job ran


def test_fault_knobs_drop_duplicate_delay(api, op, receiver):
    configure(op, url=receiver.url, events=["work_package:updated"])
    ids = [create(api, op).json()["id"] for _ in range(3)]
    requests.post(f"{op.url}/_admin/webhooks/faults", json={"drop": 1}, timeout=5).raise_for_status()
    close(api, op, ids[0])
    wait_for(lambda: webhooks(op)["deliveries"], 10, "the dropped event in the delivery log")
    requests.post(f"{op.url}/_admin/webhooks/faults", json={"duplicate": 1}, timeout=5).raise_for_status()
    close(api, op, ids[1])
    wait_for(lambda: len(receiver.calls) == 2, 10, "two copies of the second event")
    requests.post(f"{op.url}/_admin/webhooks/faults", json={"delay_s": 0.8, "delay_count": 1},
                  timeout=5).raise_for_status()
    started = time.monotonic()
    close(api, op, ids[2])
    wait_for(lambda: len(receiver.calls) == 3, 10, "the delayed third event")
    assert time.monotonic() - started >= 0.8
    assert [b["work_package"]["id"] for b in receiver.bodies()] == [ids[1], ids[1], ids[2]]
    notes = [d["note"] for d in webhooks(op)["deliveries"]]
    assert notes.count("dropped (fault)") == 1 and notes.count("duplicate (fault)") == 1


def test_an_error_answer_is_not_retried_a_reset_restores_the_start_configuration(api, op, receiver):
    configure(op, url=receiver.url)
    receiver.status = 500
    create(api, op)
    wait_for(lambda: receiver.calls, 10, "the webhook call")
    time.sleep(0.3)
    assert len(receiver.calls) == 1
    assert webhooks(op)["deliveries"][0]["response_code"] == 500
    requests.post(f"{op.url}/_admin/reset", timeout=5).raise_for_status()
    assert webhooks(op)["webhooks"] == [] and webhooks(op)["deliveries"] == []


def test_a_timeout_is_retried_so_the_receiver_gets_it_twice(receiver):
    op = fake.start(webhooks=(fake.Webhook(url=receiver.url),))
    op.app.webhooks.outbox.timeout_s = 0.3
    try:
        receiver.stall_s = 0.6
        api = requests.Session()
        api.auth = ("apikey", op.settings_env["OPENPROJECT_API_KEY"])
        create(api, op)
        wait_for(lambda: len(receiver.calls) == 1, 10, "the first attempt")
        receiver.stall_s = 0.0
        wait_for(lambda: len(receiver.calls) == 2, 10, "the retry after the timeout (3 s)")
        codes = [d["response_code"] for d in webhooks(op)["deliveries"]]
        assert codes == [-1, 200]
    finally:
        op.stop()
