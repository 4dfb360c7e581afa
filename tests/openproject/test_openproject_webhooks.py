"""Reading OpenProject's webhook calls: the signature over the exact bytes, then only the work package id."""

from __future__ import annotations

import json

import pytest

from exchanger.creator.base import EventRefused
from exchanger.systems.openproject import webhooks
from exchanger_sandbox.openproject.webhooks import rails_json, signature

SECRET = "whsec-unit"


def signed(payload: object, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = rails_json(payload)  # what OpenProject sends, made by the fake's sender
    return {"x-op-signature": signature(secret, body)}, body


def test_a_signed_work_package_call_names_its_id():
    headers, body = signed({"action": "work_package:updated", "work_package": {"id": 42, "subject": "A & <b>"}})
    webhooks.verify(SECRET, headers, body)
    assert webhooks.work_package_ids(body) == ["42"]


@pytest.mark.parametrize("secret, headers, status", [
    ("", None, 404),  # no secret configured: webhooks are off
    (SECRET, {}, 403),  # unsigned
    (SECRET, {"x-op-signature": "sha1=" + "0" * 40}, 403),
    (SECRET, {"x-op-signature": signature("another secret", b"")}, 403),
])
def test_calls_without_the_right_signature_are_refused(secret, headers, status):
    good_headers, body = signed({"action": "work_package:updated", "work_package": {"id": 1}})
    with pytest.raises(EventRefused) as refused:
        webhooks.verify(secret, good_headers if headers is None else headers, body)
    assert refused.value.status == status


def test_the_signature_covers_the_bytes_sent_not_a_re_serialisation():
    headers, body = signed({"action": "work_package:updated", "work_package": {"id": 7, "subject": "<x>"}})
    again = json.dumps(json.loads(body)).encode()  # the same JSON, other bytes
    with pytest.raises(EventRefused):
        webhooks.verify(SECRET, headers, again)


def test_other_events_name_nothing_and_malformed_calls_are_400():
    assert webhooks.work_package_ids(rails_json({"action": "time_entry:created", "time_entry": {"id": 3}})) == []
    assert webhooks.work_package_ids(rails_json({"action": "work_package_comment:comment"})) == []
    for body in (b"not json", b"[]", rails_json({"work_package": {"id": 1}}),
                 rails_json({"action": "work_package:updated", "work_package": {"id": "1; drop"}}),
                 rails_json({"action": "work_package:updated", "work_package": {"id": True}}),
                 rails_json({"action": "work_package:created"})):
        with pytest.raises(EventRefused) as refused:
            webhooks.work_package_ids(body)
        assert refused.value.status == 400
