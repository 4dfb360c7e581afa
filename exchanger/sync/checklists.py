"""Checklists and responsibles from StormBPMN assignee edges, without any network.

Analysts write checklists into an edge's HTML description: a header (``<p>ЧЕКЛИСТ: title</p>``,
``CHECKLIST:``, ``** title``, ``# title``) followed by a ``<ul>``, or a text header (``ЧЕКЛИСТ: title``,
``@ title``, ``– title``) followed by ``•``/``-``/``*`` lines. The result is the ``checklist`` property
Exchanger's Bitrix24 handler reads: ``[{"title": ..., "items": [...]}]``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

MAX_ITEMS = 20  # the old converter's cap per checklist, kept so old diagrams give the same lists
HUMAN = "HUMAN"

_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
_HTML_HEADER = re.compile(
    r"<p[^>]*>\s*(?:(?:ЧЕКЛИСТ|CHECKLIST)\s*:|\*\*|#)\s*(?P<title>.*?)</p>", re.IGNORECASE | re.DOTALL)
_EMPTY_PARAGRAPH = re.compile(r"^\s*(?:<p[^>]*>\s*(?:&nbsp;|\xa0|<br\s*/?>)?\s*</p>\s*)*", re.IGNORECASE)
_LIST = re.compile(r"^\s*<ul[^>]*>(?P<body>.*?)</ul>", re.IGNORECASE | re.DOTALL)
_ITEM = re.compile(r"<li[^>]*>(?P<text>.*?)</li>", re.IGNORECASE | re.DOTALL)
_TEXT_HEADER = re.compile(r"^\s*(?:(?:ЧЕКЛИСТ|CHECKLIST)\s*:|@|–)\s*(?P<title>[^\n•]+)", re.IGNORECASE)
_BULLET = re.compile(r"^\s*[•*-]\s*(?P<text>.+)$")


def _clean(text: str) -> str:
    return _SPACES.sub(" ", _TAG.sub(" ", text)).strip()


def parse_checklists(description: str) -> list[tuple[str, list[str]]]:
    """``[(title, items)]`` found in one description (HTML or text kind), in order, empty ones dropped."""
    if not description:
        return []
    source = html.unescape(description) if "&lt;" in description else description  # an escaped HTML body
    found: list[tuple[str, list[str]]] = []
    headers = list(_HTML_HEADER.finditer(source))
    for number, header in enumerate(headers):
        end = headers[number + 1].start() if number + 1 < len(headers) else len(source)
        body = source[header.end():end]
        body = body[_EMPTY_PARAGRAPH.match(body).end():]  # type: ignore[union-attr]
        listing = _LIST.match(body)
        if listing:
            items = [_clean(html.unescape(m.group("text"))) for m in _ITEM.finditer(listing.group("body"))]
            found.append((_clean(html.unescape(header.group("title"))), [i for i in items if len(i) > 1]))
    if not headers:
        found.extend(_text_checklists(html.unescape(_TAG.sub("\n", source))))
    return [(title, items[:MAX_ITEMS]) for title, items in found if title and items]


def _text_checklists(text: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in text.replace("•", "\n•").splitlines():
        header = _TEXT_HEADER.match(line)
        if header:
            current = []
            found.append((_clean(header.group("title")), current))
            continue
        bullet = _BULLET.match(line)
        if bullet and current is not None:
            item = _clean(bullet.group("text"))
            if len(item) > 1:
                current.append(item)
        elif line.strip():
            current = None
    return found


@dataclass(frozen=True)
class ElementPeople:
    """What the edges say about one element: its responsible and checklists, plus notes for the report."""

    storm_assignee_id: str | None
    assignee_name: str | None
    checklists: list[tuple[str, list[str]]]
    notes: list[str]


def element_people(edges: list[dict[str, Any]], element_id: str) -> ElementPeople:
    """The first HUMAN edge (by ``assigneeEdgeId``) is the responsible; checklists come from all edges."""
    mine = sorted((e for e in edges if str(e.get("elementId")) == element_id),
                  key=lambda e: int(e.get("assigneeEdgeId") or 0))
    human = next((e for e in mine if str(e.get("assigneeType") or "").upper() == HUMAN), None)
    checklists: list[tuple[str, list[str]]] = []
    notes: list[str] = []
    titles: set[str] = set()
    for edge in mine:
        description = str(edge.get("description") or "")
        if re.search(r"bitrix24\.[a-z]+/[^\s\"<]*task", description, re.IGNORECASE):
            notes.append(f"{element_id}: a checklist refers to a Bitrix24 task link; its items are not copied")
        for title, items in parse_checklists(description):
            if title not in titles:
                titles.add(title)
                checklists.append((title, items))
    storm_id = str(human.get("assigneeId")) if human and human.get("assigneeId") not in (None, "") else None
    name = str(human.get("assigneeName")) if human and human.get("assigneeName") else None
    return ElementPeople(storm_id, name, checklists, notes)
