"""1C handler: one document (or catalog item) per Camunda task (``1c_create_document``), over standard OData.

The activity's extension properties say what to create:

* ``entity`` — the resource, ``Document_<Name>`` or ``Catalog_<Name>`` (required);
* ``field.<Attribute>`` — a ``${variable}`` template per attribute; a lone ``${amount}`` keeps its type,
  so a number stays a number in a numeric attribute;
* ``post`` — ``true`` posts the document right after creating it; 1C refusing to post (a business
  error) is an incident carrying 1C's own message.

The external-id attribute (``ONEC_EXTERNAL_ID_ATTRIBUTE``) holds the Camunda task id; every delivery
first searches by it, so a create that failed ambiguously (timeout) is retried through that search,
and a document found unposted although ``post`` asks for it is posted then (the crash fell in between).
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from exchanger.contracts import ExternalItem, TaskMessage
from exchanger.creator.base import HandlerOutcome
from exchanger.creator.tracked import TrackedHandler
from exchanger.errors import Incident
from exchanger.systems.onec import SYSTEM as SPEC
from exchanger.systems.onec.client import SYSTEM, OneCClient
from exchanger.systems.onec.settings import OneCSettings
from exchanger.templates import render_value

ENTITY_PREFIXES = ("Document_", "Catalog_")
FIELD_PREFIX = "field."  # extension properties field.<Attribute>


class OneCTaskHandler(TrackedHandler[OneCSettings, OneCClient]):
    spec = SPEC
    settings_class = OneCSettings
    client_factory = OneCClient

    # --- the contract -----------------------------------------------------------------------------

    def find_existing(self, task: TaskMessage) -> ExternalItem | None:
        entity = self._entity(task)
        found = self.client.find_by_external_id(entity, self.settings.external_id_attribute, task.task_id)
        if found is None:
            return None
        if self._wants_posting(task, entity) and not found.get("Posted") and not found.get("DeletionMark"):
            logger.info("1C: {} {} of task {} exists but is not posted yet; posting it", entity,
                        found.get("Number"), task.task_id)
            self.client.post_document(entity, found["Ref_Key"])
        return self._item(entity, found)

    def create(self, task: TaskMessage) -> HandlerOutcome:
        entity = self._entity(task)
        post = self._wants_posting(task, entity)
        created = self.client.create(entity, self._fields(task))
        logger.info("1C: task {} → {} {} ({})", task.task_id, entity, created.get("Number"), created["Ref_Key"])
        if post:
            self.client.post_document(entity, created["Ref_Key"])
        return self._item(entity, created)

    # --- what to create ---------------------------------------------------------------------------

    def _entity(self, task: TaskMessage) -> str:
        entity = (task.prop("entity") or "").strip()
        if not entity.startswith(ENTITY_PREFIXES):
            raise Incident(f"the activity's extension property 'entity' must name the 1C resource, e.g. "
                           f"Document_<Name> or Catalog_<Name> (got {entity!r})")
        return entity

    def _wants_posting(self, task: TaskMessage, entity: str) -> bool:
        text = (task.prop("post") or "false").strip().lower()
        if text not in ("true", "false"):
            raise Incident(f"the extension property 'post' must be true or false (got {task.prop('post')!r})")
        if text == "true" and not entity.startswith("Document_"):
            raise Incident(f"post=true needs a document; {entity} is not one")
        return text == "true"

    def _fields(self, task: TaskMessage) -> dict[str, Any]:
        values = task.values()
        fields: dict[str, Any] = {}
        for name, template in task.bpmn_metadata.extension_properties.items():
            if not name.startswith(FIELD_PREFIX):
                continue
            attribute = name[len(FIELD_PREFIX):].strip()
            if not attribute or attribute == self.settings.external_id_attribute:
                raise Incident(f"extension property {name!r}: name an attribute other than the external-id one "
                               f"(ONEC_EXTERNAL_ID_ATTRIBUTE={self.settings.external_id_attribute}, filled by "
                               f"Exchanger)")
            fields[attribute] = render_value(template, values)
        fields[self.settings.external_id_attribute] = task.task_id
        return fields

    def _item(self, entity: str, found: dict[str, Any]) -> ExternalItem:
        ref_key = found["Ref_Key"]
        return ExternalItem(system=SYSTEM, id=ref_key, url=self.client.object_url(entity, ref_key),
                            data={"entity": entity, "number": found.get("Number") or found.get("Code") or ""})
