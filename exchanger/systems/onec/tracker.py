"""1C tracker: a document is done when it is posted, or when its status attribute reaches the done value.

The status rule applies when ``ONEC_STATUS_ATTRIBUTE`` and ``ONEC_STATUS_DONE_VALUE`` are set and the
object has that attribute (an approval status, say); otherwise posting decides, and a catalog item,
which cannot be posted, is done once it exists. A deletion mark or a physically deleted object sends
the process down its error path (``ONEC_DELETED_ERROR_CODE``, or a failure with ``ONEC_DELETED_AS_FAILURE``).

Open objects are checked ``ONEC_CHECK_BATCH_SIZE`` (at most 40) at a time: one list per entity with a ``$filter`` of
``Ref_Key eq guid'…' or …`` (short enough for any web server's URL limit). One the list does not show
is read alone, so a physical deletion is still verified.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from exchanger.contracts import SentRecord
from exchanger.creator.base import Done, StillOpen, TrackerOutcome
from exchanger.creator.tracked import TrackedTracker
from exchanger.systems.onec import SYSTEM as SPEC
from exchanger.systems.onec.client import OneCClient
from exchanger.systems.onec.settings import OneCSettings


class OneCTracker(TrackedTracker[OneCSettings, OneCClient]):
    spec = SPEC
    settings_class = OneCSettings
    client_factory = OneCClient

    def confirm_gone(self, record: SentRecord) -> bool:
        ref_key = str(uuid.UUID(record.item.id))  # a malformed key is a failed check, never a filter injection
        return not self.client.find(record.item.data["entity"], f"Ref_Key eq guid'{ref_key}'", select="Ref_Key")

    def deleted_variables(self, record: SentRecord) -> dict[str, Any]:
        return {"onec_ref_key": record.item.id}

    def check(self, record: SentRecord) -> TrackerOutcome:
        return self._outcome(record, self.client.get(record.item.data["entity"], record.item.id))

    def check_many(self, records: Sequence[SentRecord]) -> list[TrackerOutcome | None]:
        """One ``$filter`` list per entity; ``None`` for an object it does not show (or a malformed key)."""
        keys: dict[str, set[str]] = defaultdict(set)
        for record in records:
            key = _guid(record.item.id)
            if key and isinstance(record.item.data.get("entity"), str):
                keys[record.item.data["entity"]].add(key)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for entity, refs in keys.items():
            text = " or ".join(f"Ref_Key eq guid'{ref}'" for ref in sorted(refs))
            for obj in self.client.find(entity, text):
                found[(entity, str(obj.get("Ref_Key")).lower())] = obj
        answers: list[TrackerOutcome | None] = []
        for record in records:
            hit = found.get((str(record.item.data.get("entity")), _guid(record.item.id) or ""))
            answers.append(self._outcome(record, hit) if hit is not None else None)
        return answers

    def _outcome(self, record: SentRecord, found: dict[str, Any]) -> TrackerOutcome:
        entity, ref_key = record.item.data["entity"], record.item.id
        if found.get("DeletionMark"):
            return self.deleted_outcome(record, f"1C {entity} {ref_key} was marked for deletion")
        if not self._is_done(found):
            return StillOpen(f"posted={found.get('Posted')}" + self._status_note(found))
        return Done(variables={
            "onec_ref_key": ref_key,
            "onec_number": found.get("Number") or found.get("Code") or "",
            "onec_posted": bool(found.get("Posted", False)),
        })

    def _is_done(self, found: dict[str, Any]) -> bool:
        attribute = self.settings.status_attribute
        if attribute and attribute in found:
            return str(found[attribute]) == self.settings.status_done_value
        return bool(found.get("Posted", True))  # no Posted: a catalog item

    def _status_note(self, found: dict[str, Any]) -> str:
        attribute = self.settings.status_attribute
        return f", {attribute}={found[attribute]!r}" if attribute and attribute in found else ""


def _guid(text: str) -> str | None:
    """``text`` as a lower-case GUID, or None when it is not one (never put into a filter)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
