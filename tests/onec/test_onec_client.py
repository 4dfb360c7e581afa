"""OneCClient against the fake infobase over real HTTP: idempotency search, posting, typed errors, retries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from loguru import logger
from pydantic import SecretStr

from exchanger.errors import (
    AuthError,
    ConfigError,
    Conflict,
    NotFound,
    PermanentError,
    TransientError,
    UnexpectedAnswer,
    Unreachable,
)
from exchanger.settings import load
from exchanger.systems.onec.client import OneCClient, literal
from exchanger.systems.onec.settings import OneCSettings
from exchanger_sandbox.onec import server as fake
from exchanger_sandbox.onec.state import COUNTERPARTIES, ORDER, PAYMENT_REQUEST

EXTERNAL_ID = "ВнешнийИдентификатор"


def new_order(client: OneCClient, external_id: str = "task-1", **fields: object) -> dict:
    return client.create(ORDER, {EXTERNAL_ID: external_id, **fields})


def test_create_get_and_find_by_external_id(client):
    created = new_order(client, "task-1", Комментарий="O'Brien & Co")
    new_order(client, "task-2")
    assert created["Posted"] is False and created["Number"] == "000000001"
    found = client.find_by_external_id(ORDER, EXTERNAL_ID, "task-1")
    assert found is not None and found["Ref_Key"] == created["Ref_Key"]
    assert client.find_by_external_id(ORDER, EXTERNAL_ID, "it's not there") is None
    assert client.find(ORDER, f"Комментарий eq {literal(created['Комментарий'])}")[0]["Number"] == "000000001"
    short = client.get(ORDER, created["Ref_Key"], select="Ref_Key,Number,Posted,DeletionMark,DataVersion")
    assert set(short) == {"odata.metadata", "Ref_Key", "Number", "Posted", "DeletionMark", "DataVersion"}


def test_post_document_then_read_posted(client):
    counterparty = client.find(COUNTERPARTIES, top=1)[0]["Ref_Key"]
    doc = new_order(client, Контрагент_Key=counterparty)
    client.post_document(ORDER, doc["Ref_Key"])
    assert client.get(ORDER, doc["Ref_Key"])["Posted"] is True


def test_business_error_is_permanent_with_1c_message_and_not_retried(client, admin, onec):
    counterparty = client.find(COUNTERPARTIES, top=1)[0]["Ref_Key"]
    doc = new_order(client, Контрагент_Key=counterparty)
    admin("posting_failure", message="Период закрыт для изменений", count=1)
    with pytest.raises(PermanentError) as info:
        client.post_document(ORDER, doc["Ref_Key"])
    assert not isinstance(info.value, TransientError)
    assert info.value.status == 500 and info.value.code == "-1"
    assert "Период закрыт для изменений" in str(info.value) and "Не удалось провести" in str(info.value)
    assert onec.infobase.posting_failures == []  # consumed by the one call: no retry happened
    assert client.get(ORDER, doc["Ref_Key"])["Posted"] is False
    with pytest.raises(PermanentError, match="Контрагент"):
        client.post_document(ORDER, new_order(client, "task-2")["Ref_Key"])  # the infobase's own check


def test_patch_deletion_mark_and_status(client):
    doc = client.create(PAYMENT_REQUEST, {EXTERNAL_ID: "task-3", "СуммаДокумента": 5.0, "Статус": "НеСогласована"})
    assert client.patch(PAYMENT_REQUEST, doc["Ref_Key"], {"Статус": "Согласована"})["Статус"] == "Согласована"
    marked = client.patch(PAYMENT_REQUEST, doc["Ref_Key"], {"DeletionMark": True})
    assert marked["DeletionMark"] is True
    assert client.find_by_external_id(PAYMENT_REQUEST, EXTERNAL_ID, "task-3")["DeletionMark"] is True


def test_errors_are_typed_from_odata_codes(client, odata):
    doc = new_order(client)
    odata("DELETE", f"{ORDER}(guid'{doc['Ref_Key']}')")
    with pytest.raises(NotFound) as gone:
        client.get(ORDER, doc["Ref_Key"])
    assert gone.value.code == "9" and "не найден" in str(gone.value)
    with pytest.raises(PermanentError) as wrong_type:
        client.find("Document_Несуществующий")
    assert not isinstance(wrong_type.value, NotFound) and wrong_type.value.code == "8"
    with pytest.raises(Conflict):
        client.create(ORDER, {"Ref_Key": new_order(client, "task-4")["Ref_Key"]})
    with pytest.raises(PermanentError):
        client.find(ORDER, "Нет eq 'x'")
    with pytest.raises(PermanentError, match="invalid resource name"):
        client.find("Document_X?$top=1")


def test_wrong_password_is_auth_error_without_the_password(onec_settings, make_client):
    secret = "wrong-but-secret-Pa55"
    client = make_client(onec_settings.model_copy(update={"password": SecretStr(secret)}))
    with pytest.raises(AuthError) as info:
        client.find(ORDER)
    assert info.value.status == 401 and info.value.code == "20"
    assert secret not in str(info.value) and secret not in str(info.value.details)


def test_cyrillic_login_is_sent_as_utf8(make_client):
    server = fake.start(username="Администратор", password="пароль-1С")
    try:
        env = server.settings_env
        settings = OneCSettings(base_url=env["ONEC_BASE_URL"], username=env["ONEC_USERNAME"],
                                password=SecretStr(env["ONEC_PASSWORD"]))
        assert len(make_client(settings).find(COUNTERPARTIES)) == 2
    finally:
        server.stop()


def test_injected_5xx_and_timeouts_are_retried(client, admin):
    doc = new_order(client)
    admin("faults", status=503, count=2)
    assert client.get(ORDER, doc["Ref_Key"])["Ref_Key"] == doc["Ref_Key"]
    not_business = {"odata.error": {"code": "0", "message": {"lang": "ru", "value": "Сервер перегружен"}}}
    admin("faults", status=500, count=1, body=not_business)
    assert client.find_by_external_id(ORDER, EXTERNAL_ID, "task-1") is not None
    admin("faults", delay_s=1.0, count=1)
    started = time.monotonic()
    client.patch(ORDER, doc["Ref_Key"], {"Комментарий": "после таймаута"})
    assert time.monotonic() - started < 1.0
    admin("faults", status=502, count=5)
    with pytest.raises(TransientError):
        client.get(ORDER, doc["Ref_Key"])


def test_a_proxy_page_in_a_200_is_a_typed_transient_error(client, admin):
    """A 200 whose body is a web server's HTML page, not OData JSON: a typed, transient error (before: a bare
    JSONDecodeError, or a KeyError for JSON without ``value``); the next answer is read as usual."""
    doc = new_order(client)
    admin("faults", status=200, count=1, raw="<html><body>Proxy login</body></html>", content_type="text/html")
    with pytest.raises(UnexpectedAnswer, match="Proxy login"):
        client.get(ORDER, doc["Ref_Key"])
    admin("faults", status=200, count=1, body={"odata.metadata": "no value here"})
    with pytest.raises(UnexpectedAnswer, match="value"):
        client.find(ORDER)
    assert client.get(ORDER, doc["Ref_Key"])["Ref_Key"] == doc["Ref_Key"]


def test_create_is_not_retried_blindly_and_search_finds_it(client, admin, onec):
    admin("faults", delay_s=1.0, count=1)
    with pytest.raises(Unreachable):
        new_order(client, "task-9")  # ambiguous: the infobase still writes it after we gave up
    time.sleep(0.8)
    assert client.find_by_external_id(ORDER, EXTERNAL_ID, "task-9") is not None
    assert requests.get(f"{onec.url}/_admin/stats").json()["by_external_id"] == {ORDER: {"task-9": 1}}


def test_no_secret_in_logs_while_retrying(client, admin, onec_settings):
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    try:
        admin("faults", status=503, count=2)
        client.find(COUNTERPARTIES)
    finally:
        logger.remove(sink)
    assert any("retry" in line for line in lines)
    assert not any(onec_settings.password.get_secret_value() in line for line in lines)


def test_settings_are_validated_and_documented(monkeypatch):
    monkeypatch.setenv("ONEC_BASE_URL", "https://1c.local/trade/odata/standard.odata/")
    monkeypatch.setenv("ONEC_USERNAME", "exchanger")
    assert load(OneCSettings).base_url == "https://1c.local/trade/odata/standard.odata"
    monkeypatch.setenv("ONEC_STATUS_ATTRIBUTE", "Статус")
    with pytest.raises(ConfigError, match="ONEC_STATUS_DONE_VALUE"):
        load(OneCSettings)
    documented = (Path(__file__).parents[2] / "config.env.example").read_text("utf-8")
    for name in OneCSettings.env_names():
        assert f"\n{name}=" in documented, name
