"""OpenProject's webhook calls, as the task-creator's event endpoint receives them (``POST /events/openproject``).

An administrator adds a webhook (Administration → API and webhooks → Webhooks) with the payload URL of
the endpoint, a signature secret (the same value as ``OPENPROJECT_WEBHOOK_SECRET``), the events
``work_package:updated`` (``created`` is not needed) and the projects Exchanger creates work packages in.
OpenProject then POSTs ``{"action": "work_package:updated", "work_package": {...}}`` with
``X-OP-Signature: sha1=<hex HMAC-SHA1 of the body, keyed with the secret>``.

Only the work package id is taken from a call: the tracker reads the work package itself before it
answers anything (a forged or stale call can at most cause a read), so the signature is what keeps
strangers from making us read. It is checked over the exact bytes received, in constant time; without a
secret configured, calls are refused (404: webhooks are off), never taken unauthenticated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from exchanger.creator.base import EventRefused

SIGNATURE_HEADER = "x-op-signature"
WORK_PACKAGE_ACTION = "work_package:"  # work_package:created, work_package:updated


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise :class:`EventRefused` unless ``body`` carries the signature made with ``secret``."""
    if not secret:
        raise EventRefused("OpenProject webhooks are off: OPENPROJECT_WEBHOOK_SECRET is empty", 404)
    given = headers.get(SIGNATURE_HEADER, "")
    expected = "sha1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii")):
        raise EventRefused("OpenProject webhook call without a valid X-OP-Signature (is the webhook's secret "
                           "OPENPROJECT_WEBHOOK_SECRET?)", 403)


def work_package_ids(body: bytes) -> list[str]:
    """The work package a verified call is about; none for other events (time entries, projects, ...)."""
    try:
        call = json.loads(body)
    except ValueError:
        raise EventRefused("OpenProject webhook call is not JSON", 400) from None
    action = call.get("action") if isinstance(call, dict) else None
    if not isinstance(action, str):
        raise EventRefused("OpenProject webhook call without an action", 400)
    if not action.startswith(WORK_PACKAGE_ACTION):
        return []
    work_package = call.get("work_package")
    wp_id = work_package.get("id") if isinstance(work_package, dict) else None
    if isinstance(wp_id, bool) or not isinstance(wp_id, int) or wp_id <= 0:
        raise EventRefused(f"OpenProject {action} call without a work package id", 400)
    return [str(wp_id)]
