"""Just enough ``multipart/form-data`` parsing for ``POST /deployment/create``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from exchanger.bpmn.errors import InvalidRequestException

_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


@dataclass(frozen=True)
class Part:
    name: str | None
    filename: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def _header_params(value: str) -> dict[str, str]:
    return {match.group(1).lower(): match.group(2) if match.group(2) is not None else match.group(3)
            for match in _PARAM.finditer(value)}


def parse(content_type: str, body: bytes) -> list[Part]:
    """The parts of a form upload; a body that is not multipart is a 400, as in Camunda."""
    if not content_type.lower().startswith("multipart/"):
        raise InvalidRequestException(400, "The content type of the request must be multipart/form-data")
    boundary = _header_params(content_type).get("boundary")
    if not boundary:
        raise InvalidRequestException(400, "The multipart request has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[Part] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        head, separator, data = chunk.partition(b"\r\n\r\n")
        if not separator:
            head, separator, data = chunk.partition(b"\n\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        name = filename = None
        for line in head.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                params = _header_params(value)
                name, filename = params.get("name"), params.get("filename")
        parts.append(Part(name, filename, data))
    return parts
