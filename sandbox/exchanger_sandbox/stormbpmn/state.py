"""The fake StormBPMN's state: one team's diagrams (with their versions), assignee edges, and the quota.

Diagrams are created and updated the standard way, ``upload-diagrams`` keyed by the caller's ``id``:
the same ``id`` again is a new ``versionNumber`` of the same Storm diagram. Ids are derived from the
caller's id (uuid5), so a seeded sandbox looks the same on every start.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

QUOTA_PER_WINDOW = 5  # the vendor's cloud limit: 5 requests a minute
WINDOW_S = 60.0
OVERRUNS_BEFORE_BLOCK = 3  # more than three overruns in 24 hours block the account
DAY_S = 86_400.0
PAGE_SIZE = 20
NAMESPACE = uuid.UUID("5b3f9a62-3c1e-4e8e-9d43-2b9c0e5e7a10")


def local_now(clock: Callable[[], float]) -> str:
    """Local time, ISO with microseconds, no offset: as Storm writes ``updatedOn``."""
    return datetime.fromtimestamp(clock()).isoformat(timespec="microseconds")


@dataclass
class Diagram:
    id: str
    source_id: str
    name: str
    body: str
    version: int = 1
    status: str = "NEW"
    type: str = "BPMN"
    team: str = "Команда"
    folder: str = ""
    created_on: str = ""
    updated_on: str = ""
    updated_by: str = "analyst@example.com"
    edges: list[dict[str, Any]] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status, "versionNumber": self.version,
                "updatedBy": self.updated_by, "teamName": self.team, "folderName": self.folder, "type": self.type,
                "public": True, "createdOn": self.created_on, "updatedOn": self.updated_on}


class Quota:
    """The vendor's limit per key: a sliding minute, headers on every answer, the daily block."""

    def __init__(self, per_window: int = QUOTA_PER_WINDOW, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self.clock = clock
        self.calls: deque[float] = deque()
        self.overruns: list[float] = []

    def take(self) -> tuple[bool, int, float]:
        """(allowed, remaining after this call, seconds until the next call may go)."""
        now = self.clock()
        while self.calls and now - self.calls[0] >= self.window_s:
            self.calls.popleft()
        if len(self.calls) >= self.per_window:
            self.overruns = [t for t in self.overruns if now - t < DAY_S] + [now]
            return False, 0, self.calls[0] + self.window_s - now
        self.calls.append(now)
        remaining = self.per_window - len(self.calls)
        retry = 0.0 if remaining else self.calls[0] + self.window_s - now
        return True, remaining, retry

    @property
    def blocked(self) -> bool:
        return len([t for t in self.overruns if self.clock() - t < DAY_S]) > OVERRUNS_BEFORE_BLOCK

    def reset(self) -> None:
        self.calls.clear()
        self.overruns.clear()


class Team:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.diagrams: dict[str, Diagram] = {}
        self.requests = 0

    def reset(self) -> None:
        with self.lock:
            self.diagrams.clear()
            self.requests = 0

    def upload(self, item: dict[str, Any]) -> tuple[str, bool]:
        """Create or update by the caller's ``id``; returns (Storm id, created)."""
        source_id = str(item["id"])
        storm_id = str(uuid.uuid5(NAMESPACE, source_id))
        now = local_now(self.clock)
        with self.lock:
            diagram = self.diagrams.get(storm_id)
            if diagram is None:
                self.diagrams[storm_id] = Diagram(id=storm_id, source_id=source_id, name=str(item["name"]),
                                                  body=str(item["xml"]), created_on=now, updated_on=now,
                                                  folder=str(item.get("folder") or ""))
                return storm_id, True
            diagram.name, diagram.body = str(item["name"]), str(item["xml"])
            diagram.version += 1
            diagram.updated_on = now
            return storm_id, False

    def ordered(self) -> list[Diagram]:
        """Most recently updated first, as the web list shows them."""
        with self.lock:
            return sorted(self.diagrams.values(), key=lambda d: (d.updated_on, d.id), reverse=True)
