"""Client of OpenProject's API v3: thin methods over one :class:`~exchanger.http_client.HttpClient`.

Every call states whether it is idempotent, and the HTTP client's retry engine does the rest: reads
and updates are retried on transient failures (5xx, timeouts), any call on a 429 (``Retry-After`` or
``RateLimit-Reset`` honoured) or when it never left. Errors come out typed from the ``errorIdentifier``
URN of the HAL error body. Creating is never retried blindly (API v3 has no idempotency key): after
an ambiguous failure the caller searches by the external-id custom field first, which
:meth:`OpenProjectClient.find_work_package_by_custom_field` does including closed ones.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import requests
from loguru import logger

from exchanger.backoff import Backoff
from exchanger.errors import (
    AuthError,
    Conflict,
    IntegrationError,
    NotFound,
    RateLimited,
    TransientError,
)
from exchanger.http_client import SystemClient, classify_by_status, json_body, retry_after_seconds, segment
from exchanger.secrets import mask
from exchanger.systems.openproject.settings import PAGE_SIZE, OpenProjectSettings

SYSTEM = "openproject"
API = "/api/v3"
MAX_PAGE_SIZE = 1000  # Setting.apiv3_max_page_size by default; larger pageSize values are clamped to it
ANY_STATUS = {"status": {"operator": "*", "values": []}}  # without it the API lists open ones only
CLOSED = {"status": {"operator": "c", "values": []}}  # work packages in a status with isClosed

# errorIdentifier (last part of the URN) → error class, where the HTTP status alone is not enough
_BY_IDENTIFIER: dict[str, type[IntegrationError]] = {
    "Unauthenticated": AuthError,
    "MissingPermission": AuthError,
    "NotFound": NotFound,
    "UpdateConflict": Conflict,
    "Throttled": RateLimited,
}


def classify(response: requests.Response) -> IntegrationError:
    """Turn an API v3 error response into a typed error carrying the identifier and message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not (isinstance(body, dict) and body.get("_type") == "Error"):
        return classify_by_status(response, SYSTEM)  # a proxy's page, not OpenProject's answer
    identifier = str(body.get("errorIdentifier") or "").rsplit(":", 1)[-1]
    status = response.status_code
    message = mask(f"OpenProject answered {status} {identifier}: {_error_text(body)}")
    cls = _BY_IDENTIFIER.get(identifier) or type(classify_by_status(response, SYSTEM))
    error = cls(message, system=SYSTEM, status=status, code=identifier, details=body.get("_embedded"))
    if isinstance(error, TransientError):
        error.retry_after_s = _retry_after(response)
    return error


def _error_text(body: dict[str, Any]) -> str:
    """The message, the attribute it is about, and the messages of a ``MultipleErrors``."""
    text = str(body.get("message") or "")
    embedded = body.get("_embedded") or {}
    attribute = (embedded.get("details") or {}).get("attribute")
    if attribute:
        text += f" (attribute {attribute})"
    inner = [str(e.get("message")) for e in embedded.get("errors") or [] if isinstance(e, dict)]
    return "; ".join([text, *inner]) if inner else text


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After``, else OpenProject's own ``RateLimit-Reset`` (seconds until the window resets)."""
    seconds = retry_after_seconds(response)
    if seconds is None:
        try:
            seconds = float(response.headers.get("RateLimit-Reset") or "")
        except ValueError:
            return None
    return seconds


def link(collection: str, item_id: int | str) -> dict[str, str]:
    """A writable HAL link, e.g. ``link("statuses", 5)`` for ``_links.status``."""
    return {"href": f"{API}/{segment(collection)}/{segment(item_id)}"}


class OpenProjectClient(SystemClient):
    """One pooled session to one OpenProject; methods return HAL resources as dicts."""

    def __init__(self, settings: OpenProjectSettings, *, backoff: Backoff = Backoff()) -> None:
        self.settings = settings
        api_key = settings.api_key.get_secret_value()
        super().__init__(settings, settings.base_url, system=SYSTEM, secrets=[api_key], auth=("apikey", api_key),
                         headers={"Accept": "application/hal+json"}, backoff=backoff, classify=classify)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return json_body(self.http.request("GET", path, params=params), dict, f"OpenProject GET {path}")

    def work_package_url(self, wp_id: int) -> str:
        """Where a person opens the work package in the browser."""
        return f"{self.settings.base_url}/work_packages/{segment(wp_id)}"

    # --- reference data ---------------------------------------------------------------------------

    def project(self, identifier: str | int) -> dict[str, Any]:
        """A project by numeric id or identifier; ``NotFound`` also when the API user cannot see it."""
        return self._get(f"{API}/projects/{segment(identifier)}")

    def type_by_name(self, name: str) -> dict[str, Any]:
        return self._by_name("types", name)

    def status_by_name(self, name: str) -> dict[str, Any]:
        return self._by_name("statuses", name)

    def priority_by_name(self, name: str) -> dict[str, Any]:
        return self._by_name("priorities", name)

    def project_types(self, project: str | int) -> list[dict[str, Any]]:
        """The types enabled in ``project``, in their configured order."""
        return self._get(f"{API}/projects/{segment(project)}/types")["_embedded"]["elements"]

    def work_package_schema(self, project_id: int, type_id: int) -> dict[str, Any]:
        """The schema of work packages of one type in one project: which fields (custom ones too) exist there."""
        return self._get(f"{API}/work_packages/schemas/{int(project_id)}-{int(type_id)}")

    def user_by_name(self, login_or_name: str) -> dict[str, Any]:
        """A user by login, else by full name (listing users needs the admin-like right to see them)."""
        for key in ("login", "name"):
            filters = json.dumps([{key: {"operator": "=", "values": [login_or_name]}}])
            elements = self._get(f"{API}/users", {"filters": filters})["_embedded"]["elements"]
            if elements:
                return elements[0]
        raise NotFound(f"OpenProject has no user with login or name {login_or_name!r}", system=SYSTEM)

    def _by_name(self, collection: str, name: str) -> dict[str, Any]:
        """Case-insensitive lookup in a small unpaginated collection (types, statuses, priorities)."""
        elements = self._get(f"{API}/{collection}")["_embedded"]["elements"]
        for element in elements:
            if str(element.get("name", "")).casefold() == name.casefold():
                return element
        known = ", ".join(str(e.get("name")) for e in elements)
        raise NotFound(f"OpenProject has no {collection} entry named {name!r} (known: {known})", system=SYSTEM)

    # --- work packages ----------------------------------------------------------------------------

    def find_work_packages(self, filters: list[dict[str, Any]], *, project: str | int | None = None,
                           sort_by: list[tuple[str, str]] | None = None, page_size: int = PAGE_SIZE) -> list[dict]:
        """Every work package matching ``filters`` (ANDed); add :data:`ANY_STATUS` to include closed ones."""
        path = f"{API}/projects/{segment(project)}/work_packages" if project else f"{API}/work_packages"
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"filters": json.dumps(filters), "offset": page, "pageSize": page_size}
            if sort_by:
                params["sortBy"] = json.dumps(sort_by)
            body = self._get(path, params)
            elements = body["_embedded"]["elements"]
            found.extend(elements)
            if not elements or len(found) >= int(body.get("total", 0)):
                return found
            page += 1

    def closed_since(self, since: datetime, field: str) -> list[dict[str, Any]]:
        """Work packages with ``field`` set that were changed at or after ``since`` and are closed now.

        One ``updatedAt`` ``<>d`` filter with an open end (inclusive, as OpenProject compares), oldest change
        first, pages of :data:`MAX_PAGE_SIZE`: a sweep's window usually fits one page, so a change made while
        it pages cannot shift an item past it (the next sweep's overlap would catch that one anyway).
        """
        moment = since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        filters = [{"updatedAt": {"operator": "<>d", "values": [moment, ""]}}, CLOSED,
                   {field: {"operator": "*", "values": []}}]
        return self.find_work_packages(filters, sort_by=[("updatedAt", "asc"), ("id", "asc")], page_size=MAX_PAGE_SIZE)

    def find_work_package_by_custom_field(
        self, field: str, value: str, *, project: str | int | None = None
    ) -> dict[str, Any] | None:
        """The work package whose custom field ``field`` equals ``value``, closed ones included.

        If several exist (a duplicate made outside Exchanger), the oldest wins, so repeated calls agree.
        """
        found = self.find_work_packages([{field: {"operator": "=", "values": [value]}}, ANY_STATUS], project=project)
        if len(found) > 1:
            logger.warning("OpenProject: {} work packages have {}={}; using the oldest", len(found), field, value)
        return min(found, key=lambda wp: wp["id"]) if found else None

    def create_work_package(self, project: str | int, payload: dict[str, Any], *, notify: bool = True) -> dict:
        """Create in ``project`` (id or identifier); 201 → the full work package. Not idempotent (see module doc)."""
        path = f"{API}/projects/{segment(project)}/work_packages"
        params = None if notify else {"notify": "false"}
        return json_body(self.http.request("POST", path, idempotent=False, json=payload, params=params), dict,
                         f"OpenProject POST {path}")

    def get_work_package(self, wp_id: int) -> dict[str, Any]:
        """The work package with ``_embedded.status`` (``isClosed``); ``NotFound`` when deleted."""
        return self._get(f"{API}/work_packages/{int(wp_id)}")

    def update_work_package(
        self, wp_id: int, changes: dict[str, Any], *, lock_version: int | None = None
    ) -> dict[str, Any]:
        """PATCH ``changes`` under optimistic locking; return the updated work package.

        Without ``lock_version`` the current one is read first. A 409 means someone saved in between:
        the HTTP client's retry engine tries again, re-reading the ``lockVersion`` first, up to
        ``conflict_retries`` times, then raises ``Conflict``. The PATCH is idempotent (the same values
        again), so a timeout is retried too.
        """
        path = f"{API}/work_packages/{int(wp_id)}"
        versions = [] if lock_version is None else [lock_version]  # given once; after a 409, read afresh

        def attempt() -> dict[str, Any]:
            version = versions.pop() if versions else self.get_work_package(wp_id)["lockVersion"]
            try:
                response = self.http.request("PATCH", path, idempotent=True, json={**changes, "lockVersion": version})
            except Conflict:
                logger.info("OpenProject: work package {} changed meanwhile; re-reading lockVersion", wp_id)
                raise
            return json_body(response, dict, f"OpenProject PATCH {path}")

        policy = replace(self.http.policy, attempts=self.settings.conflict_retries + 1)
        return policy.run(attempt, idempotent=True, what=f"OpenProject update of {wp_id}", retry_on=(Conflict,))

    def delete_work_package(self, wp_id: int) -> None:
        self.http.request("DELETE", f"{API}/work_packages/{int(wp_id)}")

    def add_comment(self, wp_id: int, text: str) -> dict[str, Any]:
        """A comment in the work package's activity (markdown). Not idempotent: a repeat would post twice."""
        path = f"{API}/work_packages/{int(wp_id)}/activities"
        return json_body(self.http.request("POST", path, idempotent=False, json={"comment": {"raw": text}}), dict,
                         f"OpenProject POST {path}")
