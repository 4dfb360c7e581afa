"""Client of 1C's standard OData interface: thin methods over one :class:`~exchanger.http_client.HttpClient`.

Always JSON (``$format=json``), Basic auth as UTF-8 (infobase logins are often Cyrillic), resource
names URL-encoded. Errors come out typed from the ``odata.error`` code; a business error (code -1 with
HTTP 500, e.g. a refused posting) is permanent and carries 1C's own message, while other 5xx and
timeouts are transient and retried by the HTTP client's engine for the idempotent calls (reads, PATCH,
posting). Creating is never retried blindly: after an ambiguous failure the caller searches by the
external-id attribute first.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import requests
from loguru import logger
from requests.auth import HTTPBasicAuth

from exchanger.backoff import Backoff
from exchanger.errors import (
    AuthError,
    Conflict,
    IntegrationError,
    NotFound,
    PermanentError,
    TransientError,
    UnexpectedAnswer,
)
from exchanger.http_client import SystemClient, classify_by_status, json_body, retry_after_seconds, segment
from exchanger.secrets import mask
from exchanger.systems.onec.settings import OneCSettings

SYSTEM = "1c"
BUSINESS_ERROR_CODE = "-1"  # posting and other business failures, always HTTP 500

# odata.error code → error class, where the HTTP status alone is not enough
_BY_CODE: dict[str, type[IntegrationError]] = {
    "9": NotFound,  # entity not found: the object is gone (not "wrong URL", which is 6 or 8)
    "15": Conflict,  # an entity with this key already exists
    "20": AuthError,  # access rights
}
_NAME = re.compile(r"^[^\W\d]\w*$")  # Document_X, Catalog_X: letters, digits, underscores
_QUERY_SAFE = "'(),:"  # kept literal in query values; everything else percent-encoded (no '+')


def classify(response: requests.Response) -> IntegrationError:
    """Turn an ``odata.error`` response into a typed error carrying 1C's code and message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("odata.error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return classify_by_status(response, SYSTEM)  # the web server's page, not 1C's answer
    code = str(error.get("code", ""))
    message_field = error.get("message")
    text = message_field.get("value", "") if isinstance(message_field, dict) else str(message_field or "")
    status = response.status_code
    message = mask(f"1C answered {status} (code {code}): {text}")
    if code == BUSINESS_ERROR_CODE and status == 500:
        cls: type[IntegrationError] = PermanentError
    else:
        cls = _BY_CODE.get(code) or type(classify_by_status(response, SYSTEM))
    typed = cls(message, system=SYSTEM, status=status, code=code, details=mask(text))
    if isinstance(typed, TransientError):
        typed.retry_after_s = retry_after_seconds(response)
    return typed


def guid(ref_key: object) -> uuid.UUID:
    """A ``Ref_Key`` for ``Entity(guid'…')``: only a GUID, so nothing else can reach the path or the quotes."""
    try:
        return uuid.UUID(str(ref_key))
    except ValueError:
        raise PermanentError(f"1C: {str(ref_key)[:100]!r} is not a Ref_Key (a GUID)", system=SYSTEM) from None


def literal(value: str) -> str:
    """An OData string literal: ``'it''s'``."""
    return "'" + value.replace("'", "''") + "'"


class OneCClient(SystemClient):
    """One pooled session to one infobase publication; methods return entities as dicts."""

    def __init__(self, settings: OneCSettings, *, backoff: Backoff = Backoff()) -> None:
        self.settings = settings
        password = settings.password.get_secret_value()
        auth = HTTPBasicAuth(settings.username.encode("utf-8"), password.encode("utf-8"))  # logins are often Cyrillic
        super().__init__(settings, settings.base_url, system=SYSTEM, secrets=[password], auth=auth,
                         headers={"Accept": "application/json"}, backoff=backoff, classify=classify)

    def _path(self, entity: str, ref_key: str | None = None, action: str = "", /, **query: Any) -> str:
        """``/Document_X(guid'…')/Post?$format=json&…``, names and values URL-encoded."""
        if not _NAME.match(entity):
            raise PermanentError(f"1C: invalid resource name {entity!r} (expected e.g. Document_Name)", system=SYSTEM)
        path = "/" + segment(entity)
        if ref_key is not None:
            path += f"(guid'{guid(ref_key)}')"
        if action:
            path += f"/{segment(action)}"
        params = {"$format": "json", **{k: v for k, v in query.items() if v is not None}}
        return path + "?" + "&".join(f"{k}={quote(str(v), safe=_QUERY_SAFE)}" for k, v in params.items())

    def object_url(self, entity: str, ref_key: str) -> str:
        """The object's canonical OData address (there is no browser URL for a 1C object)."""
        return self.settings.base_url + self._path(entity, ref_key)

    def find(
        self, entity: str, filter: str | None = None, *, select: str | None = None, top: int | None = None
    ) -> list[dict[str, Any]]:
        """Entities matching an OData ``$filter`` expression (build literals with :func:`literal`)."""
        path = self._path(entity, **{"$filter": filter, "$select": select, "$top": top})
        found = json_body(self.http.request("GET", path), dict, f"1C GET {entity}").get("value")
        if not isinstance(found, list):
            raise UnexpectedAnswer(f"1C GET {entity}: an answer without a value list", system=SYSTEM)
        return found

    def find_by_external_id(self, entity: str, attribute: str, value: str) -> dict[str, Any] | None:
        """The object whose ``attribute`` equals ``value`` (marked deleted or not), or ``None``."""
        if not _NAME.match(attribute):
            raise PermanentError(f"1C: invalid attribute name {attribute!r}", system=SYSTEM)
        found = self.find(entity, f"{attribute} eq {literal(value)}")
        if len(found) > 1:
            logger.warning("1C: {} objects of {} have {}={}; using the first", len(found), entity, attribute, value)
        return found[0] if found else None

    def create(self, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        """POST a new object; 201 → the object with its ``Ref_Key`` and ``Number``. Not idempotent."""
        return json_body(self.http.request("POST", self._path(entity), idempotent=False, json=fields), dict,
                         f"1C POST {entity}")

    def get(self, entity: str, ref_key: str, *, select: str | None = None) -> dict[str, Any]:
        """One object by ``Ref_Key``; ``NotFound`` when it was deleted physically."""
        return json_body(self.http.request("GET", self._path(entity, ref_key, **{"$select": select})), dict,
                         f"1C GET {entity}")

    def patch(self, entity: str, ref_key: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Partial update (PATCH is idempotent, so it is retried on transient errors)."""
        return json_body(self.http.request("PATCH", self._path(entity, ref_key), idempotent=True, json=changes), dict,
                         f"1C PATCH {entity}")

    def post_document(self, entity: str, ref_key: str, *, operational: bool | None = None) -> None:
        """Post a document; a refusal raises ``PermanentError`` with 1C's message (no retry helps).

        Idempotent: posting a posted document posts it again with the same movements."""
        mode = self.settings.posting_operational if operational is None else operational
        path = self._path(entity, ref_key, "Post", PostingModeOperational=str(mode).lower())
        self.http.request("POST", path, idempotent=True)
