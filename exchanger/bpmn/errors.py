"""Camunda's exception classes as the REST layer reports them: ``{type, message, code}`` plus a status.

The engine raises the class Camunda's engine would raise; the REST layer wraps some of them the way
``ExternalTaskResourceImpl`` and friends do (a wrapping ``RestException`` takes the cause's ``code``,
a bare one has ``code: null``).
"""

from __future__ import annotations

from typing import Any


class CamundaError(Exception):
    """Base: a Camunda exception with its HTTP status and ``ExceptionDto`` fields."""

    status = 500
    type_name = "ProcessEngineException"
    code: int | None = 0  # BuiltinExceptionCode.FALLBACK

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"type": self.type_name, "message": self.message, "code": self.code}


class ProcessEngineException(CamundaError):
    """Any engine failure that Camunda answers with 500."""


class NullValueException(ProcessEngineException):
    type_name = "NullValueException"


class BadUserRequestException(CamundaError):
    status = 400
    type_name = "BadUserRequestException"


class NotFoundException(BadUserRequestException):
    type_name = "NotFoundException"


class ParseException(CamundaError):
    """A refused BPMN resource; ``details`` is ``{resourceName: {errors: [...], warnings: []}}``."""

    status = 400
    type_name = "ParseException"

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details

    def body(self) -> dict[str, Any]:
        return {**super().body(), "details": self.details}


class RestException(CamundaError):
    """Raised by the REST layer itself; wrapping an engine exception copies its code."""

    type_name = "RestException"

    def __init__(self, status: int, message: str, cause: CamundaError | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = cause.code if cause is not None else None


class InvalidRequestException(RestException):
    type_name = "InvalidRequestException"


def ensure_not_null(name: str, value: Any) -> None:
    """``EnsureUtil.ensureNotNull``: the 500 ``NullValueException`` "<name> is null"."""
    if value is None:
        raise NullValueException(f"{name} is null")


class SuspendedEntityInteractionException(ProcessEngineException):
    type_name = "SuspendedEntityInteractionException"
