"""How the fake portal reads parameters: JSON bodies, and PHP-style query strings and forms.

Bitrix24 is PHP: ``filter[>ID]=5&select[]=ID&select[]=TITLE`` arrives as nested arrays, and
arrays with keys 0..n-1 are lists. Batch commands use the same syntax, so both paths share this.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^(?P<name>[^\[\]]+)(?P<rest>(?:\[[^\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\]]*)\]")


def parse_php_query(text: str) -> dict[str, Any]:
    """``a[b][]=1&a[b][]=2&c=x`` → ``{"a": {"b": ["1", "2"]}, "c": "x"}``."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            root[key] = value
            continue
        path = [match["name"], *_SEGMENT.findall(match["rest"])]
        node = root
        for index, segment in enumerate(path):
            last = index == len(path) - 1
            if segment == "":
                segment = str(len(node))
            if last:
                node[segment] = value
            else:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = node[segment] = {}
                node = child
    return _lists(root)


def _lists(value: Any) -> Any:
    """Turn every dict whose keys are exactly "0".."n-1" into a list, as PHP arrays behave."""
    if not isinstance(value, dict):
        return value
    converted = {key: _lists(item) for key, item in value.items()}
    if converted and list(converted) == [str(i) for i in range(len(converted))]:
        return list(converted.values())
    return converted


def php_json(value: Any) -> Any:
    """Serialise like PHP's json_encode of an array: ``{}`` is ``[]``, a 0..n-1 map is a list."""
    if isinstance(value, dict):
        if not value:
            return []
        if list(value) == [str(i) for i in range(len(value))]:
            return [php_json(item) for item in value.values()]
        return {key: php_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [php_json(item) for item in value]
    return value
