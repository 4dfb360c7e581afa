"""The migration's memory on disk, so that a run killed at any point can be run again.

In the state folder (``--state-dir``, default ``<project root>/state/migration/<env>/``):

* ``before.json``: the inventory of the first acting run (tasks the old worker held, queue depths); later
  runs reconcile against it, not against what is left;
* ``backup.jsonl``: every old message (body, properties, headers) before it is touched;
* ``journal.jsonl``: one line per decision (task id, what happened, where it went), appended after the
  effect is confirmed and before the old message is acked. A kill between the two repeats the effect
  on the next run with the same ``message_id``: a redelivery the consumers already handle.

Each line is flushed and fsynced: a ``kill -9`` loses at most the line being written.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# journal actions
PUBLISHED = "published"  # converted and republished with confirms
PARKED = "parked"  # parked with the reason
GONE = "gone"  # Camunda no longer has the task (completed or cancelled): nothing left to do
DUPLICATE = "duplicate"  # a message for a task already handled (R > S > T > E)
RELEASED = "released"  # a held task without any message: unlocked for the new worker to refetch
ALREADY_NEW = "already-new"  # a current message found in an old queue: left alone


@dataclass
class Entry:
    action: str
    queue: str
    kind: str
    task_id: str | None
    detail: str = ""  # target queue, park reason, …


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def before_file(self) -> Path:
        return self.path / "before.json"

    def _append(self, name: str, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / name, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _read(self, name: str) -> Iterator[dict[str, Any]]:
        file = self.path / name
        if not file.exists():
            return
        with open(file, encoding="utf-8") as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # the line a kill cut short

    # --- before --------------------------------------------------------------------------------

    def load_before(self) -> dict[str, Any] | None:
        if not self.before_file.exists():
            return None
        return dict(json.loads(self.before_file.read_text(encoding="utf-8")))

    def save_before(self, before: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        temporary = self.before_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(before, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        os.replace(temporary, self.before_file)

    # --- backup and journal --------------------------------------------------------------------

    def backup(self, queue: str, body: bytes, properties: dict[str, Any], headers: dict[str, Any]) -> None:
        self._append("backup.jsonl", {"queue": queue, "body_base64": base64.b64encode(body).decode("ascii"),
                                      "properties": properties, "headers": headers})

    def record(self, entry: Entry) -> None:
        self._append("journal.jsonl", entry.__dict__)

    def entries(self) -> list[Entry]:
        return [Entry(**line) for line in self._read("journal.jsonl")]
