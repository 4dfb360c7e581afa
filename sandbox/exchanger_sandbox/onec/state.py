"""The fake infobase: its metadata (which documents and catalogs exist), its data, and posting.

Names follow a typical trade configuration (``Document_ЗаказПокупателя``, ``Catalog_Контрагенты``),
because real resource names are the configuration's Cyrillic names and clients must URL-encode them.
Posting runs the two checks a real configuration's posting handler typically does (deletion mark,
required attributes) and can be made to fail on purpose through the admin API.
"""

from __future__ import annotations

import base64
import struct
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

USERNAME = "exchanger"  # the infobase user the fake accepts
PASSWORD = "1c-sandbox-Pa55"  # that user's password
EXTERNAL_ID_ATTRIBUTE = "ВнешнийИдентификатор"  # string attribute holding the Camunda task id
STATUS_ATTRIBUTE = "Статус"  # enum attribute of the payment request (as a string in OData)
STATUS_DONE_VALUE = "Согласована"  # the value that means "approved"
ORDER = "Document_ЗаказПокупателя"  # customer order: posting needs a counterparty
PAYMENT_REQUEST = "Document_ЗаявкаНаРасходованиеДенежныхСредств"  # payment request with an approval status
COUNTERPARTIES = "Catalog_Контрагенты"
PRODUCTS = "Catalog_Номенклатура"
EMPTY_REF = "00000000-0000-0000-0000-000000000000"
DEFAULT_POSTING_FAILURE = "Не удалось провести документ: период закрыт для изменений"  # admin switch default

# Edm types of properties; ROWS marks a tabular part (an array of row objects)
STRING, GUID, NUMBER, BOOLEAN, DATETIME = "Edm.String", "Edm.Guid", "Edm.Double", "Edm.Boolean", "Edm.DateTime"
ROWS = "Rows"


@dataclass(frozen=True)
class EntityType:
    """One document or catalog of the configuration as the OData interface publishes it."""

    name: str  # resource name, e.g. Document_ЗаказПокупателя
    synonym: str  # what a user sees, used in posting messages
    attributes: dict[str, str]  # attribute → Edm type; ROWS = a tabular part
    row_attributes: dict[str, str] = field(default_factory=dict)  # properties of tabular-part rows
    required_for_posting: dict[str, str] = field(default_factory=dict)  # attribute → its synonym

    @property
    def is_document(self) -> bool:
        return self.name.startswith("Document_")

    @property
    def system_properties(self) -> dict[str, str]:
        common = {"Ref_Key": GUID, "DataVersion": STRING, "DeletionMark": BOOLEAN}
        if self.is_document:
            return {**common, "Number": STRING, "Date": DATETIME, "Posted": BOOLEAN}
        return {**common, "Code": STRING, "Description": STRING, "Predefined": BOOLEAN, "PredefinedDataName": STRING}


ENTITY_TYPES = {
    t.name: t
    for t in [
        EntityType(
            ORDER,
            "Заказ покупателя",
            {
                "Контрагент_Key": GUID,
                "СуммаДокумента": NUMBER,
                "Комментарий": STRING,
                EXTERNAL_ID_ATTRIBUTE: STRING,
                "Товары": ROWS,
            },
            row_attributes={"Номенклатура_Key": GUID, "Количество": NUMBER, "Цена": NUMBER, "Сумма": NUMBER},
            required_for_posting={"Контрагент_Key": "Контрагент"},
        ),
        EntityType(
            PAYMENT_REQUEST,
            "Заявка на расходование денежных средств",
            {
                "Контрагент_Key": GUID,
                "СуммаДокумента": NUMBER,
                "НазначениеПлатежа": STRING,
                STATUS_ATTRIBUTE: STRING,
                "Комментарий": STRING,
                EXTERNAL_ID_ATTRIBUTE: STRING,
            },
            required_for_posting={"СуммаДокумента": "Сумма документа"},
        ),
        EntityType(COUNTERPARTIES, "Контрагенты", {"ИНН": STRING, EXTERNAL_ID_ATTRIBUTE: STRING}),
        EntityType(PRODUCTS, "Номенклатура", {"Артикул": STRING}),
    ]
}


@dataclass
class PostingFailure:
    """The admin switch: the next ``count`` posts (of ``entity``, or any) fail with ``message``."""

    message: str
    count: int = 1
    entity: str = ""


def local_now() -> str:
    """1C dates carry no time zone: the server's local time, to the second."""
    return datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def empty_value(edm: str) -> Any:
    return {STRING: "", GUID: EMPTY_REF, NUMBER: 0, BOOLEAN: False, DATETIME: "0001-01-01T00:00:00", ROWS: []}[edm]


class Infobase:
    """All records by resource name and ``Ref_Key``; every access goes through ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ENTITY_TYPES}
            self.numbers: dict[str, int] = dict.fromkeys(ENTITY_TYPES, 0)
            self.version = 0
            self.posting_failures: list[PostingFailure] = []
            self.new(COUNTERPARTIES, {"Description": "ООО Ромашка", "ИНН": "7701234567"})
            self.new(COUNTERPARTIES, {"Description": "АО Василёк", "ИНН": "7807654321"})
            self.new(PRODUCTS, {"Description": "Бумага А4", "Артикул": "A4-500"})

    def next_data_version(self) -> str:
        """An opaque string that changes on every write, like 1C's ``DataVersion``."""
        self.version += 1
        return base64.b64encode(struct.pack(">II", self.version, 0)).decode("ascii")

    def new(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        """Create a record from already validated ``values``; fills the system properties."""
        kind = ENTITY_TYPES[entity]
        self.numbers[entity] += 1
        record = {name: empty_value(edm) for name, edm in {**kind.system_properties, **kind.attributes}.items()}
        record.update(Ref_Key=str(uuid.uuid4()), DeletionMark=False)
        record["Number" if kind.is_document else "Code"] = f"{self.numbers[entity]:09d}"
        if kind.is_document:
            record["Date"] = local_now()
        record.update(values)
        record["DataVersion"] = self.next_data_version()
        self.records[entity][record["Ref_Key"]] = record
        return record

    def take_posting_failure(self, entity: str) -> str | None:
        for failure in self.posting_failures:
            if failure.entity in ("", entity):
                failure.count -= 1
                if failure.count <= 0:
                    self.posting_failures.remove(failure)
                return failure.message
        return None

    def post(self, entity: str, record: dict[str, Any]) -> str | None:
        """Post a document; the business error text when posting is refused, else ``None``."""
        kind = ENTITY_TYPES[entity]
        when = datetime.fromisoformat(record["Date"]).strftime("%d.%m.%Y %H:%M:%S")
        title = f"{kind.synonym} {record['Number']} от {when}"
        if record["DeletionMark"]:
            return f"Не удалось провести \"{title}\"!\nПомеченный на удаление документ не может быть проведен"
        forced = self.take_posting_failure(entity)
        if forced:
            return f"Не удалось провести \"{title}\"!\n{forced}"
        for attribute, synonym in kind.required_for_posting.items():
            if record[attribute] in ("", 0, EMPTY_REF, None):
                return f"Не удалось провести \"{title}\"!\nПоле \"{synonym}\" не заполнено"
        record["Posted"] = True
        record["DataVersion"] = self.next_data_version()
        return None

    def stats(self) -> dict[str, Any]:
        """Records per external id and resource, so that tests can count duplicates."""
        with self.lock:
            by_external_id: dict[str, dict[str, int]] = {}
            for entity, records in self.records.items():
                for record in records.values():
                    value = record.get(EXTERNAL_ID_ATTRIBUTE)
                    if value:
                        counts = by_external_id.setdefault(entity, {})
                        counts[value] = counts.get(value, 0) + 1
            duplicates = {
                entity: {value: n for value, n in counts.items() if n > 1} for entity, counts in by_external_id.items()
            }
            return {
                "documents": sum(len(r) for e, r in self.records.items() if ENTITY_TYPES[e].is_document),
                "by_external_id": by_external_id,
                "duplicates": {entity: d for entity, d in duplicates.items() if d},
            }
