"""StormBPMN client: the documented public API (``X-Api-Key``) for the diagram list and bodies, and the
old internal endpoints (``Authorization: Bearer``) for responsibles and checklists.

Every attempt passes the one :class:`~exchanger.sync.ratelimit.StormRateLimiter` (each retry too: it is
the HTTP client's :class:`~exchanger.http_client.CallHooks`). Network errors and 5xx are retried by the
HTTP client's engine (every call here is a read); a 429 is recorded with the limiter and raised, never
retried (the pass ends); 401/403/404 are never retried. Key and token never reach a log line.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import requests

from exchanger.backoff import Backoff
from exchanger.errors import IntegrationError, PermanentError, RateLimited
from exchanger.http_client import CallHooks, HttpClient, classify_by_status
from exchanger.secrets import register_secret
from exchanger.sync.ratelimit import StormRateLimiter, header_number
from exchanger.sync.settings import StormSettings

SYSTEM = "stormbpmn"
PUBLIC = "/public-api/v1"
INTERNAL = "/api/v1"
MAX_PAGES = 1000  # 20 000 diagrams: a server that never ends its pages is a bug, not a big team


@dataclass(frozen=True)
class DiagramInfo:
    """One row of the diagram list: what decides whether the body must be fetched."""

    id: str
    name: str
    status: str
    version: int
    updated_on: str
    type: str
    folder: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DiagramInfo:
        return cls(id=str(row["id"]), name=str(row.get("name") or ""), status=str(row.get("status") or ""),
                   version=int(row.get("versionNumber") or 0), updated_on=str(row.get("updatedOn") or ""),
                   type=str(row.get("type") or ""),
                   folder=str(row.get("folderName") or row.get("folder") or row.get("teamName") or ""))


def classify(response: requests.Response) -> IntegrationError:
    if response.status_code == 429:
        retry = header_number(response.headers.get("X-Rate-Limit-Retry-After-Seconds"))
        return RateLimited(f"StormBPMN quota exhausted (429); retry after {retry or 60:.0f}s", system=SYSTEM,
                           status=429, retry_after_s=retry)
    return classify_by_status(response, SYSTEM)


def token_expiry(token: str) -> float | None:
    """A Bearer token's ``exp`` (unix time) when it is a JWT, read without trusting it; else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


class Quota(CallHooks):
    """The limiter around every attempt: wait for a slot, heed the budget headers, remember a 429."""

    def __init__(self, limiter: StormRateLimiter) -> None:
        self.limiter = limiter

    def before(self, idempotent: bool) -> None:
        self.limiter.acquire()

    def answered(self, response: requests.Response) -> None:
        self.limiter.observe(response.headers)

    def refused(self, error: RateLimited) -> None:
        self.limiter.rejected(error.retry_after_s)


class StormClient:
    def __init__(self, settings: StormSettings, limiter: StormRateLimiter, *, backoff: Backoff = Backoff()) -> None:
        self.settings = settings
        self.limiter = limiter
        for secret in (settings.api_key, settings.bearer_token):
            register_secret(secret.get_secret_value())
        # a retried 429 risks a second one, and the vendor blocks the account after a few a day
        self.http = HttpClient.for_system(settings.base_url, settings, system=SYSTEM, backoff=backoff,
                                          classify=classify, hooks=Quota(limiter), retry_rate_limited=False)

    def close(self) -> None:
        self.http.close()

    def _call(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
        response = self.http.request("GET", path, params=params, headers=headers)
        try:
            return response.json()
        except ValueError:
            raise PermanentError(f"StormBPMN answered {path} with something that is not JSON", system=SYSTEM) from None

    def public(self, path: str, **params: Any) -> Any:
        key = self.settings.api_key.get_secret_value()
        if not key:
            raise PermanentError("STORMBPMN_API_KEY is empty", system=SYSTEM)
        return self._call(PUBLIC + path, params, {"X-Api-Key": key})

    def internal(self, path: str, **params: Any) -> Any:
        token = self.settings.bearer_token.get_secret_value()
        if not token:
            raise PermanentError("STORMBPMN_BEARER_TOKEN is empty but STORMBPMN_INTERNAL_ASSIGNEES is on",
                                 system=SYSTEM)
        return self._call(INTERNAL + path, params, {"Authorization": f"Bearer {token}"})

    def token_expiry(self) -> float | None:
        return token_expiry(self.settings.bearer_token.get_secret_value())

    def diagrams(self) -> list[DiagramInfo]:
        """Every diagram the key may see: all pages, until an empty page or ``page × size ≥ total``."""
        found: dict[str, DiagramInfo] = {}
        for page in range(MAX_PAGES):
            body = self.public("/get-diagram-list", page=page)
            rows = body.get("returnDiagrams") or []
            for row in rows:
                found.setdefault(str(row["id"]), DiagramInfo.from_row(row))
            size, total = int(body.get("size") or len(rows) or 1), int(body.get("totalElements") or 0)
            if not rows or (page + 1) * size >= total:
                break
        return list(found.values())

    def diagram(self, diagram_id: str) -> dict[str, Any]:
        """``id``, ``name``, ``body`` (BPMN XML), ``versionNumber``… read tolerantly."""
        body = self.public("/get-diagram-by-id", diagramId=diagram_id)
        if not isinstance(body, dict) or not body.get("body"):
            raise PermanentError(f"StormBPMN gave no BPMN body for diagram {diagram_id}", system=SYSTEM)
        return body

    def assignee_edges(self, diagram_id: str) -> list[dict[str, Any]]:
        body = self.internal(f"/assignee/assigneeedges/{diagram_id}")
        if not isinstance(body, list):
            raise PermanentError(f"StormBPMN assignee edges of {diagram_id} are not a list", system=SYSTEM)
        return body
