"""One HTTP client shape for Camunda and every external system (the httpx model).

An :class:`HttpClient` owns one pooled ``requests.Session`` (keep-alive), auth, TLS and timeouts;
system clients are thin methods on top and pass a ``classify`` function that turns the system's
error body into a typed :mod:`exchanger.errors` exception. Transient failures are retried here with
:class:`~exchanger.backoff.Backoff`, so no system client writes its own retry loop.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
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
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
    UnexpectedAnswer,
    Unreachable,
)
from exchanger.secrets import mask
from exchanger.settings import ExternalSystemSettings

DEFAULT_CONNECT_TIMEOUT_S = 5.0  # a loopback or LAN server answers a SYN in far less
DEFAULT_READ_TIMEOUT_S = 30.0  # generous for a slow SaaS, short enough to notice a hung one
DEFAULT_ATTEMPTS = 4  # one call plus three retries
DEFAULT_POOL_SIZE = 20  # connections kept alive per host


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
    """A pooled session plus the retry policy; ``request`` returns only successful responses."""

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
        pool_size: int = DEFAULT_POOL_SIZE,
        write_settle_s: float = 0.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.system = system
        self.attempts = attempts
        self.backoff = backoff
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
        retry: bool = True,
        read_timeout_s: float | None = None,
        write: bool | None = None,
        lean: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; retry transient failures with backoff; raise typed errors.

        ``path`` is appended to the base URL (an absolute URL is used as is). ``write`` (default: any
        method but GET/HEAD) marks a request the server may still complete after our read timeout:
        its ``Unreachable`` then carries ``retry_after_s = write_settle_s``, so that whoever retries
        looks the item up only once the original request can no longer land (else: a duplicate).
        ``lean``: a POST of ``json=`` only, for a hot call: sent through :class:`LeanTransport` when no
        proxy applies.
        """
        if write is None:
            write = method.upper() not in ("GET", "HEAD")
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        timeout = (self.timeout[0], read_timeout_s) if read_timeout_s else self.timeout
        attempts = self.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._send(method, url, timeout, write=write, lean=lean, **kwargs)
            except TransientError as exc:
                if attempt >= attempts:
                    raise
                self._wait(attempt, exc, method, url)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, url: str, timeout: tuple[float, float | None], *, write: bool, lean: bool = False,
              **kwargs: Any) -> requests.Response:
        try:
            transport = self._lean_transport() if lean and method == "POST" and set(kwargs) == {"json"} else None
            if transport is not None:
                response = transport.post_json(url, kwargs["json"], timeout)
            else:
                response = self.session.request(method, url, timeout=timeout, **kwargs)
        except urllib3.exceptions.NewConnectionError as exc:  # refused (requests calls it a ConnectionError)
            raise Unreachable(f"{self.system}: cannot reach {mask(url)}: {mask(str(exc))}", system=self.system) from exc
        except (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError) as exc:  # never sent
            message = f"{self.system}: no connection to {mask(url)} ({type(exc).__name__})"
            raise Unreachable(message, system=self.system) from exc
        except (requests.Timeout, urllib3.exceptions.TimeoutError) as exc:
            message = f"{self.system}: no answer from {mask(url)} ({type(exc).__name__})"
            settle = self.write_settle_s if write and self.write_settle_s else None
            if settle:
                message += f"; it may still be processed, so wait {settle:.0f}s before looking it up"
            raise Unreachable(message, system=self.system, retry_after_s=settle) from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise Unreachable(f"{self.system}: cannot reach {mask(url)}: {mask(str(exc))}", system=self.system) from exc
        if response.status_code >= 400:
            raise self.classify(response)
        return response

    def _lean_transport(self) -> LeanTransport | None:
        """The lean path, made on first use; none when a proxy applies (the session knows how to use it)."""
        if self._lean is None and not self.session.proxies:
            self._lean = LeanTransport(self.base_url, self.session, self._tls, self._pool_size)
        return self._lean

    def _wait(self, attempt: int, exc: TransientError, method: str, url: str) -> None:
        wait = self.backoff.delay(attempt)
        if exc.retry_after_s:
            wait = max(wait, min(exc.retry_after_s, self.backoff.max_s))
        logger.warning(
            "{} {} {} failed ({}); retry {}/{} in {:.2f}s",
            self.system, method, mask(url), exc.message, attempt, self.attempts - 1, wait,
        )
        time.sleep(wait)
