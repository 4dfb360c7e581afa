"""What camunda-sync remembers between passes, in SQLite: a cache that saves StormBPMN calls, never the
truth (Camunda is; an engine that lacks a model gets it whatever the state says).

Per diagram: the Storm version and ``updatedOn``, hashes of the input and output, the fingerprint of
the options, process keys, deployment and definitions, ``pending`` (the output hash being deployed: set
before the deploy, cleared after it is recorded, so a crash in between redoes that diagram first and
the engine's duplicate filter makes the redo harmless), the last result and error, and the last
deployed XML (for ``--dry-run`` diffs). Each write is one transaction; a lock file keeps one sync at a
time per state file.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchanger.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS diagrams (
    diagram_id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL DEFAULT 0,
    updated_on TEXT NOT NULL DEFAULT '', input_hash TEXT NOT NULL DEFAULT '', fingerprint TEXT NOT NULL DEFAULT '',
    output_hash TEXT NOT NULL DEFAULT '', process_keys TEXT NOT NULL DEFAULT '[]', deployment_id TEXT NOT NULL
    DEFAULT '', definitions TEXT NOT NULL DEFAULT '[]', pending TEXT NOT NULL DEFAULT '', last_result TEXT NOT NULL
    DEFAULT '', last_error TEXT NOT NULL DEFAULT '', last_attempt_at REAL NOT NULL DEFAULT 0, last_success_at REAL
    NOT NULL DEFAULT 0, deployed_xml BLOB, missing INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

GOOD_RESULTS = ("deployed", "unchanged")


@dataclass
class DiagramState:
    diagram_id: str
    name: str = ""
    version: int = 0
    updated_on: str = ""
    input_hash: str = ""
    fingerprint: str = ""
    output_hash: str = ""
    process_keys: list[str] = field(default_factory=list)
    deployment_id: str = ""
    definitions: list[dict[str, Any]] = field(default_factory=list)
    pending: str = ""
    last_result: str = ""
    last_error: str = ""
    last_attempt_at: float = 0.0
    last_success_at: float = 0.0
    deployed_xml: bytes | None = None
    missing: int = 0

    @property
    def good(self) -> bool:
        return self.last_result in GOOD_RESULTS and not self.pending


class SyncState:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)
        self._lock_file: Any = None

    def close(self) -> None:
        self.unlock()
        self.db.close()

    # --- one sync at a time ------------------------------------------------------------------------------

    def lock(self) -> None:
        """Hold the state's lock file; raises ``ConfigError`` when another sync holds it."""
        handle = open(self.path.with_suffix(self.path.suffix + ".lock"), "w")  # noqa: SIM115 - held open
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigError(f"another camunda-sync runs on {self.path} (its lock file is held)") from None
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # --- diagrams --------------------------------------------------------------------------------------------

    def get(self, diagram_id: str) -> DiagramState:
        row = self.db.execute("SELECT * FROM diagrams WHERE diagram_id = ?", (diagram_id,)).fetchone()
        if row is None:
            return DiagramState(diagram_id)
        data = dict(row)
        data["process_keys"] = json.loads(data["process_keys"])
        data["definitions"] = json.loads(data["definitions"])
        return DiagramState(**data)

    def all(self) -> list[DiagramState]:
        ids = [r[0] for r in self.db.execute("SELECT diagram_id FROM diagrams ORDER BY name, diagram_id")]
        return [self.get(i) for i in ids]

    def save(self, state: DiagramState) -> None:
        data = dict(state.__dict__)
        data["process_keys"] = json.dumps(state.process_keys)
        data["definitions"] = json.dumps(state.definitions)
        columns = ", ".join(data)
        marks = ", ".join("?" for _ in data)
        self.db.execute(f"INSERT OR REPLACE INTO diagrams ({columns}) VALUES ({marks})", tuple(data.values()))

    def pending(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT diagram_id FROM diagrams WHERE pending != ''")]

    # --- meta: the limiter's memory, the last pass ------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def now() -> float:
    return time.time()
