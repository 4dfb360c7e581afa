"""SQLite persistence: the tables are the engine's only state, so a restart with the same file resumes.

Every REST command runs in one transaction (:meth:`Store.transaction`) under the engine lock: an
exception anywhere rolls everything back, which is Camunda's "one command, one transaction".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployment (
    id TEXT PRIMARY KEY, name TEXT, source TEXT, tenant_id TEXT, deployment_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS resource (
    id TEXT PRIMARY KEY, deployment_id TEXT NOT NULL, name TEXT NOT NULL, bytes BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_deployment ON resource (deployment_id);
CREATE TABLE IF NOT EXISTS definition (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, name TEXT, version INTEGER NOT NULL, version_tag TEXT,
    resource_name TEXT NOT NULL, resource_id TEXT NOT NULL, deployment_id TEXT NOT NULL, tenant_id TEXT,
    history_ttl INTEGER, startable INTEGER NOT NULL, description TEXT, suspended INTEGER NOT NULL DEFAULT 0,
    deployment_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS definition_key ON definition (key, tenant_id, version);
CREATE TABLE IF NOT EXISTS process_instance (
    id TEXT PRIMARY KEY, definition_id TEXT NOT NULL, definition_key TEXT NOT NULL, business_key TEXT,
    tenant_id TEXT, start_time INTEGER NOT NULL, end_time INTEGER, start_activity_id TEXT, end_activity_id TEXT,
    state TEXT NOT NULL, delete_reason TEXT, suspended INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS process_instance_state ON process_instance (state);
CREATE TABLE IF NOT EXISTS execution (
    id TEXT PRIMARY KEY, proc_inst_id TEXT NOT NULL, parent_id TEXT, activity_id TEXT, act_inst_id TEXT,
    kind TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS execution_parent ON execution (parent_id);
CREATE INDEX IF NOT EXISTS execution_instance ON execution (proc_inst_id);
CREATE TABLE IF NOT EXISTS variable (
    execution_id TEXT NOT NULL, name TEXT NOT NULL, proc_inst_id TEXT NOT NULL, type TEXT NOT NULL,
    value TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY (execution_id, name)
);
CREATE INDEX IF NOT EXISTS variable_instance ON variable (proc_inst_id);
CREATE TABLE IF NOT EXISTS external_task (
    id TEXT PRIMARY KEY, topic TEXT NOT NULL, worker_id TEXT, lock_expiration INTEGER,
    retries INTEGER, error_message TEXT, error_details TEXT, suspended INTEGER NOT NULL DEFAULT 0,
    execution_id TEXT NOT NULL, proc_inst_id TEXT NOT NULL, definition_id TEXT NOT NULL,
    definition_key TEXT NOT NULL, version_tag TEXT, activity_id TEXT NOT NULL, act_inst_id TEXT NOT NULL,
    tenant_id TEXT, priority INTEGER NOT NULL, business_key TEXT, create_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS external_task_topic ON external_task (topic);
CREATE INDEX IF NOT EXISTS external_task_instance ON external_task (proc_inst_id);
CREATE INDEX IF NOT EXISTS external_task_execution ON external_task (execution_id);
CREATE TABLE IF NOT EXISTS incident (
    id TEXT PRIMARY KEY, incident_timestamp INTEGER NOT NULL, incident_type TEXT NOT NULL, incident_message TEXT,
    execution_id TEXT, activity_id TEXT, proc_inst_id TEXT, definition_id TEXT, cause_incident_id TEXT,
    root_cause_incident_id TEXT, configuration TEXT, tenant_id TEXT
);
CREATE INDEX IF NOT EXISTS incident_configuration ON incident (configuration);
CREATE INDEX IF NOT EXISTS incident_execution ON incident (execution_id);
CREATE TABLE IF NOT EXISTS timer (
    id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, proc_inst_id TEXT NOT NULL, activity_id TEXT NOT NULL,
    due INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS timer_due ON timer (due);
CREATE INDEX IF NOT EXISTS timer_execution ON timer (execution_id);
CREATE TABLE IF NOT EXISTS activity_instance (
    id TEXT PRIMARY KEY, parent_act_inst_id TEXT, activity_id TEXT NOT NULL,
    activity_name TEXT, activity_type TEXT NOT NULL, proc_inst_id TEXT NOT NULL, definition_id TEXT NOT NULL,
    definition_key TEXT NOT NULL, execution_id TEXT, task_id TEXT, start_time INTEGER NOT NULL, end_time INTEGER,
    canceled INTEGER NOT NULL DEFAULT 0, complete_scope INTEGER NOT NULL DEFAULT 0, tenant_id TEXT
);
CREATE INDEX IF NOT EXISTS activity_instance_instance ON activity_instance (proc_inst_id);
CREATE TABLE IF NOT EXISTS subscription (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, execution_id TEXT NOT NULL, proc_inst_id TEXT NOT NULL,
    activity_id TEXT NOT NULL, created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS subscription_name ON subscription (kind, name);
CREATE INDEX IF NOT EXISTS subscription_instance ON subscription (proc_inst_id);
CREATE INDEX IF NOT EXISTS subscription_execution ON subscription (execution_id);
CREATE TABLE IF NOT EXISTS variable_history (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, execution_id TEXT NOT NULL, proc_inst_id TEXT NOT NULL,
    act_inst_id TEXT, definition_id TEXT, definition_key TEXT, tenant_id TEXT, type TEXT NOT NULL,
    value TEXT NOT NULL, info TEXT NOT NULL, state TEXT NOT NULL, create_time INTEGER NOT NULL,
    removal_time INTEGER, revision INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS variable_history_instance ON variable_history (proc_inst_id);
CREATE INDEX IF NOT EXISTS variable_history_execution ON variable_history (execution_id, name);
CREATE TABLE IF NOT EXISTS variable_detail (
    id TEXT PRIMARY KEY, var_inst_id TEXT NOT NULL, name TEXT NOT NULL, execution_id TEXT NOT NULL,
    proc_inst_id TEXT NOT NULL, act_inst_id TEXT, definition_id TEXT, definition_key TEXT, tenant_id TEXT,
    type TEXT NOT NULL, value TEXT NOT NULL, info TEXT NOT NULL, time INTEGER NOT NULL, revision INTEGER NOT NULL,
    initial INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS variable_detail_instance ON variable_detail (proc_inst_id);
CREATE TABLE IF NOT EXISTS incident_history (
    id TEXT PRIMARY KEY, incident_timestamp INTEGER NOT NULL, end_time INTEGER, incident_type TEXT NOT NULL,
    incident_message TEXT, execution_id TEXT, activity_id TEXT, proc_inst_id TEXT, definition_id TEXT,
    definition_key TEXT, cause_incident_id TEXT, root_cause_incident_id TEXT, configuration TEXT, tenant_id TEXT,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_history_instance ON incident_history (proc_inst_id);
"""
# Columns added after the first release: a database file written by an older sandbox gains them on open.
ADDED_COLUMNS = {
    "timer": {"definition_id": "TEXT", "cycle": "TEXT", "remaining": "INTEGER"},
    "process_instance": {"super_execution_id": "TEXT", "super_proc_inst_id": "TEXT"},
}


class Store:
    """One SQLite connection (``path`` may be ``":memory:"``), used only under the engine lock."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        for table, columns in ADDED_COLUMNS.items():
            present = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for column, sql_type in columns.items():
                if column not in present:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All statements inside commit together or not at all (nested uses join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        return self.db.execute(sql, params).fetchone()

    def row(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row:
        """The one row the engine knows exists (an aggregate, a row it just wrote or holds a key of)."""
        found = self.one(sql, params)
        if found is None:
            raise LookupError(f"no row for {sql!r} {params!r}")
        return found

    def all(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def run(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> int:
        """Execute a write; returns the number of rows changed."""
        return self.db.execute(sql, params).rowcount

    def insert(self, table: str, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" * len(row))
        self.db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values()))

    def close(self) -> None:
        self.db.close()
