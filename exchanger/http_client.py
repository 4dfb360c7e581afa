"""One HTTP client shape for Camunda and every external system (the httpx model), and the one retry engine.

An :class:`HttpClient` owns one pooled ``requests.Session`` (keep-alive), auth, TLS and timeouts;
system clients are thin methods on top. What a system adds plugs in, never as a loop of its own:

* ``classify``: its error body → a typed :mod:`exchanger.errors` exception (Bitrix24's
  ``QUERY_LIMIT_EXCEEDED`` in a 503 becomes ``RateLimited``, OpenProject's ``Throttled`` too);
* :class:`CallHooks`: a client-side rate limit every attempt passes, told of the server's refusals;
* ``retry_rate_limited=False`` for a system where a retried 429 is worse than a failed call.

Every call states whether repeating it is harmless (``idempotent``; GET, HEAD, OPTIONS, PUT and DELETE
are by HTTP's definition, a POST or PATCH must say). :class:`CallRetryPolicy` alone decides what is tried
again: a refusal for rate (the server did nothing) and a request that never left are retried for any
call; a timeout or a 5xx only for an idempotent one, because a create may have happened. Such an
ambiguous write is raised at once, its ``Unreachable.retry_after_s`` the settle wait after which the
caller looks the item up instead of writing it twice. Waits are :class:`~exchanger.backoff.Backoff`
with jitter, lengthened to a server's ``Retry-After`` up to the backoff's cap; a longer one is left to
the caller (a delay queue), not slept here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote

import requests
import urllib3
from loguru import logger
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers

from exchanger.backoff import Backoff
from exchanger.errors import (
    AuthError,
    Conflict,
    IntegrationError,
    NotConnected,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
    UnexpectedAnswer,
    Unreachable,
)
from exchanger.secrets import mask, register_secret
from exchanger.settings import ExternalSystemSettings

DEFAULT_CONNECT_TIMEOUT_S = 5.0  # a loopback or LAN server answers a SYN in far less
DEFAULT_READ_TIMEOUT_S = 30.0  # generous for a slow SaaS, short enough to notice a hung one
DEFAULT_ATTEMPTS = 4  # one call plus three retries
DEFAULT_POOL_SIZE = 20  # connections kept alive per host
T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})  # RFC 9110 §9.2.2


@dataclass(frozen=True)
class TlsOptions:
    """``verify`` False only by explicit setting; ``ca_bundle`` a PEM path; ``client_cert`` a PEM path."""

    verify: bool = True
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    def apply(self, session: requests.Session) -> None:
        session.verify = (self.ca_bundle or True) if self.verify else False
        if self.client_cert:
            session.cert = (self.client_cert, self.client_key) if self.client_key else self.client_cert


Classifier = Callable[[requests.Response], IntegrationError]


@dataclass(frozen=True)
class CallRetryPolicy:
    """Whether a failed attempt of one HTTP call is tried again, and after how long: decided here and
    nowhere else (a task's own retries, ``retryConfig``, are :mod:`exchanger.creator.retry_policy`'s).

    ``retry_rate_limited`` False: a rate-limit refusal ends the call (StormBPMN blocks an account
    after a few of them, so its caller ends the pass instead).
    """

    attempts: int = DEFAULT_ATTEMPTS
    backoff: Backoff = Backoff()
    retry_rate_limited: bool = True

    def retryable(self, error: IntegrationError, *, idempotent: bool) -> bool:
        """A refusal for rate and a request that never left are safe to repeat for any call; other
        transient failures (a timeout, a 5xx) only for an idempotent one: a write may have happened."""
        if isinstance(error, RateLimited):
            return self.retry_rate_limited
        if isinstance(error, NotConnected):
            return True
        return idempotent and isinstance(error, TransientError)

    def wait_s(self, attempt: int, error: IntegrationError, *, retryable: bool) -> float | None:
        """Seconds to wait before trying again after failed attempt ``attempt`` (1-based); None: raise.

        A ``Retry-After`` longer than the backoff's cap is not slept here: the error goes to the caller,
        whose delayed retry honours it (a retry before it would only be refused again).
        """
        if attempt >= self.attempts or not retryable:
            return None
        wait = self.backoff.delay(attempt)
        retry_after = error.retry_after_s if isinstance(error, TransientError) else None
        if retry_after:
            if retry_after > self.backoff.max_s:
                return None
            wait = max(wait, retry_after)
        return wait

    def run(self, attempt: Callable[[], T], *, idempotent: bool, what: str,
            retry_on: tuple[type[IntegrationError], ...] = ()) -> T:
        """Call ``attempt`` until it succeeds or :meth:`wait_s` says raise; the one retry loop.

        ``retry_on``: retry these errors only, which the caller resolves inside ``attempt`` itself
        (OpenProject's 409 on a stale ``lockVersion``: the next attempt re-reads it); the HTTP errors
        were already retried by the request inside.
        """
        number = 0
        while True:
            number += 1
            try:
                return attempt()
            except IntegrationError as exc:
                retryable = isinstance(exc, retry_on) if retry_on else self.retryable(exc, idempotent=idempotent)
                wait = self.wait_s(number, exc, retryable=retryable)
                if wait is None:
                    raise
                logger.warning("{} failed ({}); retry {}/{} in {:.2f}s", what, exc.message, number,
                               self.attempts - 1, wait)
                time.sleep(wait)


class CallHooks:
    """What one system adds around each attempt of a call; the defaults add nothing.

    A client-side rate limit is the use: Bitrix24's leaky bucket, StormBPMN's quota. Every attempt,
    retries included, passes :meth:`before`, so a retry can never overrun the limit.
    """

    def before(self, idempotent: bool) -> None:
        """Block until this attempt may be sent (``idempotent``: a read may leave room to writes)."""

    def answered(self, response: requests.Response) -> None:
        """A successful answer: note the server's budget headers."""

    def refused(self, error: RateLimited) -> None:
        """The server refused for its rate limit: make every caller wait before the next attempt."""


NO_HOOKS = CallHooks()


def segment(value: object) -> str:
    """One URL path segment built from input we do not control (an id from a message, a model, a reply).

    Percent-encoded, so that a ``/``, ``?`` or ``#`` in it can never reach another endpoint or start a
    query (``../process-definition/key/k/start?x=`` as a task id must not start a process), and never
    the dot segments ``.``/``..``. ``:`` stays as is (allowed in a segment; Camunda's definition ids).
    Every client builds its paths with this.
    """
    text = str(value)
    if text in ("", ".", ".."):
        raise PermanentError(f"{text!r} cannot be a URL path segment")
    return quote(text, safe=":")


def retry_after_seconds(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds; None when absent or not a finite, non-negative number."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def classify_by_status(response: requests.Response, system: str = "") -> IntegrationError:
    """The default mapping of an error status to a typed error, for systems without a richer body."""
    status = response.status_code
    text = mask(response.text[:500])
    message = f"{system or 'HTTP'} answered {status}: {text}"
    kwargs: dict[str, Any] = {"system": system, "status": status, "details": text}
    if status == 429:
        return RateLimited(message, retry_after_s=retry_after_seconds(response), **kwargs)
    if status >= 500 or status == 408:
        return TransientError(message, retry_after_s=retry_after_seconds(response), **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 409:
        return Conflict(message, **kwargs)
    return PermanentError(message, **kwargs)


def json_body(response: requests.Response, expected: type | tuple[type, ...], what: str) -> Any:
    """The response's JSON when it is of the ``expected`` type, else :class:`UnexpectedAnswer`.

    A 200 is not proof of an answer from the server: a proxy's error page or a truncated body must
    become a typed error the caller's retry policy knows, never an ``AttributeError`` deep inside it.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    else:
        if isinstance(body, expected):
            return body
    excerpt = mask(response.text[:200]).replace("\n", " ")
    content_type = response.headers.get("Content-Type", "?")
    raise UnexpectedAnswer(f"{what}: unexpected answer {response.status_code} ({content_type}): {excerpt!r}",
                           status=response.status_code)


class LeanTransport:
    """JSON POSTs through urllib3 straight, for the calls made once per task (Camunda's complete,
    fetchAndLock, extendLock): a third of the CPU of the same call through ``requests.Session``
    (~0.2 ms against ~0.6 ms on this machine), the session's headers, auth, TLS and timeouts kept.
    Used only where no proxy applies; answers come back as ``requests.Response`` like any other."""

    def __init__(self, base_url: str, session: requests.Session, tls: TlsOptions, pool_size: int) -> None:
        headers = {str(k): str(v) for k, v in session.headers.items()}
        if session.auth is not None:  # static auth (basic, bearer): its header, computed once
            probe = requests.Request("GET", base_url, auth=session.auth).prepare()
            if "Authorization" in probe.headers:
                headers["Authorization"] = probe.headers["Authorization"]
        headers["Content-Type"] = "application/json"
        self.headers = headers
        options: dict[str, Any] = {"maxsize": pool_size, "block": False}
        if tls.verify:
            options.update(cert_reqs="CERT_REQUIRED", ca_certs=tls.ca_bundle or DEFAULT_CA_BUNDLE_PATH)
        else:
            options.update(cert_reqs="CERT_NONE")
        if tls.client_cert:
            options.update(cert_file=tls.client_cert, key_file=tls.client_key)
        self.pool = urllib3.PoolManager(num_pools=4, **options)

    def post_json(self, url: str, body: Any, timeout: tuple[float, float | None]) -> requests.Response:
        raw = self.pool.request("POST", url, body=json.dumps(body, allow_nan=False).encode("utf-8"),
                                headers=self.headers, timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                                retries=False, redirect=False)
        response = requests.Response()
        response.status_code = raw.status
        response.reason = raw.reason or ""
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = url
        response._content = raw.data  # noqa: SLF001 - what requests' own adapter does with a read body
        return response

    def close(self) -> None:
        self.pool.clear()


class HttpClient:
    """A pooled session plus the retry engine; ``request`` returns only successful responses."""

    def __init__(
        self,
        base_url: str,
        *,
        system: str,
        auth: requests.auth.AuthBase | tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        tls: TlsOptions = TlsOptions(),
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: Backoff = Backoff(),
        classify: Classifier | None = None,
        hooks: CallHooks = NO_HOOKS,
        retry_rate_limited: bool = True,
        pool_size: int = DEFAULT_POOL_SIZE,
        write_settle_s: float = 0.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.system = system
        self.policy = CallRetryPolicy(attempts, backoff, retry_rate_limited)
        self.hooks = hooks
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.write_settle_s = write_settle_s
        self.classify = classify or (lambda response: classify_by_status(response, system))
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.auth = auth
        # proxies are read from the environment once, here: with trust_env on, requests re-scans the
        # environment and ~/.netrc on every call, which costs more CPU than a loopback call itself
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        self.session.headers.update(headers or {})
        tls.apply(self.session)
        self._tls, self._pool_size = tls, pool_size
        self._lean: LeanTransport | None = None

    @classmethod
    def for_system(
        cls,
        base_url: str,
        settings: ExternalSystemSettings,
        *,
        system: str,
        attempts: int | None = None,
        **options: Any,
    ) -> HttpClient:
        """A client whose timeouts, attempts and TLS come from an external system's settings."""
        if not settings.tls_verify:
            logger.warning("{}: TLS verification is OFF by setting; the server certificate is not checked", system)
        return cls(
            base_url,
            system=system,
            tls=TlsOptions(verify=settings.tls_verify, ca_bundle=settings.tls_ca_file),
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            attempts=settings.attempts if attempts is None else attempts,
            write_settle_s=settings.write_settle_s,
            **options,
        )

    def probe(self, path: str) -> str:
        """One GET of ``path``, for a reachability check: ``<base url> answered <status>``."""
        return f"{self.base_url} answered {self.request('GET', path).status_code}"

    def close(self) -> None:
        self.session.close()
        if self._lean is not None:
            self._lean.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        retry: bool = True,
        read_timeout_s: float | None = None,
        lean: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one call; retry what :class:`CallRetryPolicy` allows; raise typed errors.

        ``path`` is appended to the base URL (an absolute URL is used as is). ``idempotent``: whether
        repeating the call is harmless; GET, HEAD, OPTIONS, PUT and DELETE default to True, a POST or
        PATCH must say. A call that is not idempotent and got no answer raises ``Unreachable`` with
        ``retry_after_s = write_settle_s``: whoever retries looks the item up only once the original
        request can no longer land (else: a duplicate). ``retry`` False: one attempt, for a caller whose
        own cadence is the retry (a long poll, a probe). ``lean``: a POST of ``json=`` only, for a hot
        call: sent through :class:`LeanTransport` when no proxy applies.
        """
        method = method.upper()
        if idempotent is None:
            if method not in IDEMPOTENT_METHODS:
                raise TypeError(f"{self.system}: say whether this {method} {path} is idempotent")
            idempotent = True
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        timeout = (self.timeout[0], read_timeout_s) if read_timeout_s else self.timeout

        def attempt() -> requests.Response:
            self.hooks.before(idempotent)
            try:
                response = self._send(method, url, timeout, ambiguous=not idempotent, lean=lean, **kwargs)
            except RateLimited as exc:
                self.hooks.refused(exc)
                raise
            self.hooks.answered(response)
            return response

        policy = self.policy if retry else replace(self.policy, attempts=1)
        return policy.run(attempt, idempotent=idempotent, what=f"{self.system} {method} {mask(url)}")

    def _send(self, method: str, url: str, timeout: tuple[float, float | None], *, ambiguous: bool,
              lean: bool = False, **kwargs: Any) -> requests.Response:
        try:
            transport = self._lean_transport() if lean and method == "POST" and set(kwargs) == {"json"} else None
            if transport is not None:
                response = transport.post_json(url, kwargs["json"], timeout)
            else:
                response = self.session.request(method, url, timeout=timeout, **kwargs)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise self._no_answer(exc, url, ambiguous=ambiguous) from exc
        if response.status_code >= 400:
            raise self.classify(response)
        return response

    def _no_answer(self, exc: Exception, url: str, *, ambiguous: bool) -> Unreachable:
        """The typed error for a call that got no answer: whether it may have reached the server decides."""
        if _never_sent(exc):  # refused, no such host, connect timeout
            return NotConnected(f"{self.system}: cannot reach {mask(url)}: {mask(str(exc))}", system=self.system)
        if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
            message = f"{self.system}: no answer from {mask(url)} ({type(exc).__name__})"
            settle = self.write_settle_s if ambiguous and self.write_settle_s else None
            if settle:
                message += f"; it may still be processed, so wait {settle:.0f}s before looking it up"
            return Unreachable(message, system=self.system, retry_after_s=settle)
        return Unreachable(f"{self.system}: cannot reach {mask(url)}: {mask(str(exc))}", system=self.system)

    def _lean_transport(self) -> LeanTransport | None:
        """The lean path, made on first use; none when a proxy applies (the session knows how to use it)."""
        if self._lean is None and not self.session.proxies:
            self._lean = LeanTransport(self.base_url, self.session, self._tls, self._pool_size)
        return self._lean


def _never_sent(exc: Exception) -> bool:
    """Whether no connection was made, so the server cannot have seen the request.

    urllib3 raises ``NewConnectionError`` (a subclass of ``ConnectTimeoutError``); requests wraps it as
    the ``reason`` of a ``MaxRetryError`` inside its ``ConnectionError``.
    """
    if isinstance(exc, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)


class SystemClient:
    """The part every system's client shares before its own methods: one pooled :class:`HttpClient`
    made from the system's settings (timeouts, attempts, TLS, write settle) and its credentials
    registered for masking (also when the settings were built without ``load()``). Handlers and
    trackers share one per process (:mod:`exchanger.creator.tracked`)."""

    def __init__(self, settings: ExternalSystemSettings, base_url: str, *, system: str, secrets: Sequence[str] = (),
                 **options: Any) -> None:
        for secret in secrets:
            register_secret(secret)
        self.http = HttpClient.for_system(base_url, settings, system=system, **options)

    def close(self) -> None:
        self.http.close()
