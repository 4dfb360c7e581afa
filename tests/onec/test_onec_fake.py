"""The fake 1C speaks 1C's standard OData interface (raw HTTP, no client)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import requests

from exchanger_sandbox.onec.state import COUNTERPARTIES, ORDER
from exchanger_sandbox.onec.state import PAYMENT_REQUEST as PAYMENT


def error_code(response: requests.Response) -> str:
    return response.json()["odata.error"]["code"]


def counterparty(odata) -> str:
    return odata("GET", COUNTERPARTIES).json()["value"][0]["Ref_Key"]


def test_service_document_metadata_and_list_shapes(odata, onec):
    root = odata("GET", "").json()
    assert root["odata.metadata"].endswith("/odata/standard.odata/$metadata")
    assert {item["name"] for item in root["value"]} >= {ORDER, PAYMENT, COUNTERPARTIES}
    metadata = odata("GET", "$metadata", params={"$format": None})
    assert metadata.headers["Content-Type"].startswith("application/xml") and f'Name="{ORDER}"' in metadata.text
    listed = odata("GET", COUNTERPARTIES).json()
    assert listed["odata.metadata"].endswith(f"$metadata#{COUNTERPARTIES}")
    first = listed["value"][0]
    assert set(first) >= {"Ref_Key", "DataVersion", "DeletionMark", "Code", "Description", "ИНН"}
    assert uuid.UUID(first["Ref_Key"]) and first["DeletionMark"] is False


def test_auth_and_format_errors(onec):
    url = f"{onec.base_url}/{ORDER}"
    wrong = requests.get(url, params={"$format": "json"}, auth=("exchanger", "wrong"))
    assert wrong.status_code == 401 and error_code(wrong) == "20"
    assert requests.get(url, params={"$format": "json"}).status_code == 401
    auth = (onec.settings_env["ONEC_USERNAME"], onec.settings_env["ONEC_PASSWORD"])
    atom = requests.get(url, auth=auth)
    assert atom.status_code == 400 and error_code(atom) == "3"
    assert requests.get(url, auth=auth, headers={"Accept": "application/json"}).status_code == 200


def test_create_is_201_with_ref_key_number_and_location(odata, onec):
    body = {"Контрагент_Key": counterparty(odata), "СуммаДокумента": 1200.5, "ВнешнийИдентификатор": "task-1",
            "Товары": [{"Количество": 2, "Цена": 600.25}], "НеизвестноеПоле": "ignored"}
    created = odata("POST", ORDER, json=body)
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["odata.metadata"].endswith(f"$metadata#{ORDER}/@Element")
    assert uuid.UUID(doc["Ref_Key"]) and doc["Number"] == "000000001" and doc["Posted"] is False
    assert doc["Товары"][0]["LineNumber"] == "1" and "НеизвестноеПоле" not in doc
    assert requests.utils.unquote(created.headers["Location"]).endswith(f"{ORDER}(guid'{doc['Ref_Key']}')")
    again = odata("GET", f"{ORDER}(guid'{doc['Ref_Key']}')").json()
    assert again["DataVersion"] == doc["DataVersion"] and again["СуммаДокумента"] == 1200.5
    assert odata("POST", ORDER, json={"Комментарий": "second"}).json()["Number"] == "000000002"


def test_create_errors(odata):
    key = str(uuid.uuid4())
    assert odata("POST", ORDER, json={"Ref_Key": key}).status_code == 201  # a client-chosen key is kept
    duplicate = odata("POST", ORDER, json={"Ref_Key": key})
    assert duplicate.status_code == 400 and error_code(duplicate) == "15"
    assert error_code(odata("POST", ORDER, json={"СуммаДокумента": "много"})) == "4"
    assert error_code(odata("POST", ORDER, json={"Posted": True})) == "16"
    assert error_code(odata("POST", ORDER, json=[1])) == "2"
    unknown = odata("POST", "Document_Несуществующий", json={})
    assert unknown.status_code == 400 and error_code(unknown) == "8"


def test_filter_select_top_skip_inlinecount(odata):
    for n in range(3):
        odata("POST", ORDER, json={"ВнешнийИдентификатор": f"task-{n}", "Комментарий": "O'Brien"})
    found = odata("GET", ORDER, params={"$filter": "ВнешнийИдентификатор eq 'task-1'", "$select": "Ref_Key,Number"})
    assert [set(d) for d in found.json()["value"]] == [{"Ref_Key", "Number"}]
    quoted = odata("GET", ORDER, params={"$filter": "Комментарий eq 'O''Brien' and Posted eq false"})
    assert len(quoted.json()["value"]) == 3
    assert len(odata("GET", ORDER, params={"$filter": "ВнешнийИдентификатор ne 'task-1'"}).json()["value"]) == 2
    page = odata("GET", ORDER, params={"$top": "1", "$skip": "1", "$inlinecount": "allpages"}).json()
    assert page["odata.count"] == "3" and [d["Number"] for d in page["value"]] == ["000000002"]
    assert error_code(odata("GET", ORDER, params={"$filter": "substringof('a', Комментарий)"})) == "14"
    assert error_code(odata("GET", ORDER, params={"$filter": "Нет eq 'x'"})) == "10"


def test_post_action_and_business_errors(odata, admin):
    doc = odata("POST", ORDER, json={"ВнешнийИдентификатор": "task-1"}).json()
    key = f"{ORDER}(guid'{doc['Ref_Key']}')"
    refused = odata("POST", f"{key}/Post")
    assert refused.status_code == 500 and error_code(refused) == "-1"
    assert "Поле \"Контрагент\" не заполнено" in refused.json()["odata.error"]["message"]["value"]
    odata("PATCH", key, json={"Контрагент_Key": counterparty(odata)})
    admin("posting_failure", message="Период закрыт", count=1)
    forced = odata("POST", f"{key}/Post")
    assert forced.status_code == 500 and "Период закрыт" in forced.json()["odata.error"]["message"]["value"]
    assert odata("POST", f"{key}/Post", params={"PostingModeOperational": "false"}).status_code == 200
    posted = odata("GET", key).json()
    assert posted["Posted"] is True and posted["DataVersion"] != doc["DataVersion"]
    assert odata("POST", f"{key}/Unpost").status_code == 200 and odata("GET", key).json()["Posted"] is False
    catalog_key = f"{COUNTERPARTIES}(guid'{counterparty(odata)}')"
    assert error_code(odata("POST", f"{catalog_key}/Post")) == "11"


def test_deletion_mark_unposts_and_blocks_posting_delete_is_physical(odata):
    doc = odata("POST", PAYMENT, json={"СуммаДокумента": 10.0, "Статус": "НеСогласована"}).json()
    key = f"{PAYMENT}(guid'{doc['Ref_Key']}')"
    assert odata("POST", f"{key}/Post").status_code == 200
    approved = odata("PATCH", key, json={"Статус": "Согласована"})
    assert approved.status_code == 200 and approved.json()["Статус"] == "Согласована"
    marked = odata("PATCH", key, json={"DeletionMark": True}).json()
    assert marked["DeletionMark"] is True and marked["Posted"] is False
    refused = odata("POST", f"{key}/Post")
    assert refused.status_code == 500 and "помеченный на удаление" in refused.text.lower()
    assert odata("DELETE", key).status_code == 204
    gone = odata("GET", key)
    assert gone.status_code == 404 and error_code(gone) == "9"
    assert error_code(odata("GET", f"{PAYMENT}(guid'{doc['Ref_Key']}'")) == "6"


def test_admin_stats_count_duplicates_and_reset_clears(odata, onec):
    for _ in range(2):
        odata("POST", ORDER, json={"ВнешнийИдентификатор": "task-1"})
    odata("POST", PAYMENT, json={"ВнешнийИдентификатор": "task-2"})
    stats = requests.get(f"{onec.url}/_admin/stats").json()
    assert stats["documents"] == 3
    assert stats["duplicates"] == {ORDER: {"task-1": 2}}
    requests.post(f"{onec.url}/_admin/reset")
    assert requests.get(f"{onec.url}/_admin/stats").json()["documents"] == 0
    assert len(odata("GET", COUNTERPARTIES).json()["value"]) == 2  # seed data is back


def test_cli_prints_settings_first_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "exchanger_sandbox", "onec", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ},
    )
    try:
        settings = json.loads(process.stdout.readline())
        assert settings["ONEC_EXTERNAL_ID_ATTRIBUTE"] == "ВнешнийИдентификатор"
        auth = (settings["ONEC_USERNAME"], settings["ONEC_PASSWORD"])
        root = requests.get(f"{settings['ONEC_BASE_URL']}/", params={"$format": "json"}, auth=auth, timeout=5)
        assert root.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
