"""Masking of secrets in any text that may reach a log line, an error message or Camunda.

Two nets: the exact values of every secret setting (registered when settings load), and patterns
for secrets that travel inside other strings (URL credentials, Bitrix24 webhook tokens,
Authorization headers, ``password=`` pairs).
"""

from __future__ import annotations

import re
import threading

MASK = "***"

_known: set[str] = set()
_lock = threading.Lock()

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host
    (re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?P<post>@)"), r"\g<pre>" + MASK + r"\g<post>"),
    # Bitrix24 inbound webhook: /rest/<user id>/<token>/
    (re.compile(r"(?P<pre>/rest/\d+/)[A-Za-z0-9]{6,}(?P<post>/|\b)"), r"\g<pre>" + MASK + r"\g<post>"),
    # Authorization: Basic xxx / Bearer xxx
    (re.compile(r"(?i)(?P<pre>\b(?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]{6,}"), r"\g<pre>" + MASK),
    # password=..., api_key: ..., token="..."
    (
        re.compile(
            r"(?i)(?P<pre>\b(?:password|passwd|secret|token|api[_-]?key|apikey)\b[\"']?\s*[=:]\s*[\"']?)"
            r"[^\s\"'&,;}]+"
        ),
        r"\g<pre>" + MASK,
    ),
]


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`mask` replaces it wherever it appears."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def mask(text: str) -> str:
    """``text`` with every known secret and every secret-looking fragment replaced by ``***``."""
    if not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
