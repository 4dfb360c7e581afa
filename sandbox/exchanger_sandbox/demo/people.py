"""The people of the demo: they finish work items in the fakes through the systems' standard APIs.

A manager answers Bitrix24 questions (``ok`` or ``no`` at random) and completes the tasks; IT closes
OpenProject work packages; accounting posts 1C documents, or now and then deletes one (which sends
the process down its boundary error path). Each acts on an item only after it has existed for a
short random delay, through Exchanger's own clients pointed at the person's credentials.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import requests
from loguru import logger
from pydantic import SecretStr

from exchanger.errors import ExchangerError
from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings
from exchanger.systems.onec.client import OneCClient
from exchanger.systems.onec.settings import OneCSettings
from exchanger.systems.openproject.client import OpenProjectClient
from exchanger.systems.openproject.settings import OpenProjectSettings

BITRIX_OPEN_STATUSES = ("2", "3")  # pending, in progress
ONEC_DOCUMENT = "Document_ЗаявкаНаРасходованиеДенежныхСредств"
PERSON_ID = 2  # the manager who answers and completes Bitrix24 tasks (a seeded user of the fake portal)


class People(threading.Thread):
    """Acts on open items every ``tick_s`` until stopped; ``actions`` counts what was done."""

    def __init__(
        self,
        settings: dict[str, str],
        *,
        min_delay_s: float = 0.3,
        max_delay_s: float = 1.5,
        approve_ratio: float = 0.8,
        delete_ratio: float = 0.1,
        tick_s: float = 0.3,
        seed: int | None = None,
    ) -> None:
        super().__init__(name="people", daemon=True)
        self.random = random.Random(seed)
        self.min_delay_s, self.max_delay_s = min_delay_s, max_delay_s
        self.approve_ratio, self.delete_ratio, self.tick_s = approve_ratio, delete_ratio, tick_s
        self.bitrix = Bitrix24Client(Bitrix24Settings(webhook_url=SecretStr(person_webhook(settings)),
                                                      rate_per_s=1000, burst=1000))
        self.openproject = OpenProjectClient(OpenProjectSettings(**_prefixed(settings, "OPENPROJECT_")))
        self.onec = OneCClient(OneCSettings(**_prefixed(settings, "ONEC_")))
        self.first_seen: dict[str, float] = {}
        self.actions: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._answer_ids: dict[str, str] = {}

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.wait(self.tick_s):
            for act in (self._bitrix, self._openproject, self._onec):
                try:
                    act()
                except ExchangerError as exc:  # a fault injected into the fake, or a race with the pipeline
                    self.errors[type(exc).__name__] += 1
                    logger.debug("people: {} failed: {}", act.__name__, exc)

    def _due(self, key: str) -> bool:
        """True once ``key`` has been seen for its random delay."""
        now = time.monotonic()
        first = self.first_seen.setdefault(key, now + self.random.uniform(self.min_delay_s, self.max_delay_s))
        return now >= first

    # --- Bitrix24: answer if asked, then complete -----------------------------------------------

    def _bitrix(self) -> None:
        tasks = self.bitrix.call("tasks.task.list", {
            "filter": {"STATUS": list(BITRIX_OPEN_STATUSES)},
            "select": ["ID", "UF_RESULT_EXPECTED"],
        })
        for task in (tasks or {}).get("tasks", []):
            task_id = str(task["id"])
            if not self._due(f"b24:{task_id}"):
                continue
            expected = task.get("ufResultExpected") or task.get("UF_RESULT_EXPECTED")
            if expected in (True, "Y", "1", 1):
                answer = "ok" if self.random.random() < self.approve_ratio else "no"
                self.bitrix.call("tasks.task.update", {"taskId": task_id,
                                                       "fields": {"UF_RESULT_ANSWER": self._answer_id(answer)}})
                self.actions[f"bitrix24 answered {answer}"] += 1
            self.bitrix.call("tasks.task.complete", {"taskId": task_id})
            self.actions["bitrix24 completed"] += 1

    def _answer_id(self, xml_id: str) -> str:
        if not self._answer_ids:
            for field in self.bitrix.user_fields():
                if field.get("FIELD_NAME") == "UF_RESULT_ANSWER":
                    self._answer_ids = {item["XML_ID"]: str(item["ID"]) for item in field.get("LIST", [])}
        return self._answer_ids[xml_id]

    # --- OpenProject: close ---------------------------------------------------------------------

    def _openproject(self) -> None:
        closed = self.openproject.status_by_name("Closed")
        for wp in self.openproject.find_work_packages([{"status": {"operator": "o", "values": []}}]):
            if self._due(f"op:{wp['id']}"):
                status_link = {"_links": {"status": {"href": closed["_links"]["self"]["href"]}}}
                self.openproject.update_work_package(wp["id"], status_link, lock_version=wp.get("lockVersion"))
                self.actions["openproject closed"] += 1

    # --- 1C: post, or sometimes delete ----------------------------------------------------------

    def _onec(self) -> None:
        for document in self.onec.find(ONEC_DOCUMENT, "Posted eq false and DeletionMark eq false"):
            ref = document["Ref_Key"]
            if not self._due(f"1c:{ref}"):
                continue
            if self.random.random() < self.delete_ratio:
                self.onec.patch(ONEC_DOCUMENT, ref, {"DeletionMark": True})
                self.actions["1c deleted"] += 1
            else:
                self.onec.post_document(ONEC_DOCUMENT, ref)
                self.actions["1c posted"] += 1


def person_webhook(settings: dict[str, str], user_id: int = PERSON_ID) -> str:
    """The inbound webhook of the person who works in the portal's web UI (see the fake's ``--ui-user``)."""
    origin = settings["BITRIX_WEBHOOK_URL"].split("/rest/")[0]
    path: str = requests.post(f"{origin}/_admin/webhooks", json={"user_id": user_id}, timeout=5).json()["path"]
    return origin + path


def _prefixed(settings: dict[str, str], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):].lower(): v for k, v in settings.items() if k.startswith(prefix)}

