"""Validation of a converted model before any deploy: the bundled engine's parser (which refuses what it
cannot run, naming the element) on top of the converter's own reference and gateway checks.

A model the sandbox engine cannot parse is not deployed to a real Camunda either: the sandbox follows
Camunda's rules and the converted subset is what both run.
"""

from __future__ import annotations

from exchanger.bpmn.errors import ParseException
from exchanger.bpmn.parser import parse
from exchanger.sync.converter import ConversionError


def validate(resource: str, xml: bytes, keys: list[str]) -> None:
    """Raise :class:`ConversionError` naming each problem the engine's parser finds."""
    try:
        models = parse(resource, xml)
    except ParseException as exc:
        details = (exc.details or {}).get(resource, {}).get("errors", [])
        reasons = [f"{e.get('mainBpmnElementId') or '-'}: {e.get('message')}" for e in details] or [str(exc)]
        raise ConversionError(["engine refuses the model: " + r for r in reasons]) from None
    found = {model.key for model in models}
    missing = [key for key in keys if key not in found]
    if missing:
        raise ConversionError([f"process {key} is not executable after conversion" for key in missing])
