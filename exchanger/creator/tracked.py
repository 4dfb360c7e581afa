"""The shared base of a system whose work items are tracked: its handler and tracker, written once.

A tracked system (Bitrix24, OpenProject, 1C, a future Jira) has the same skeleton around what is its
own: settings under its prefix (:class:`~exchanger.settings.TrackedSystemSettings`), one pooled client
that its handler and tracker share in a process, a handler that refuses topics it does not know, a
tracker that checks every ``check_interval_s`` up to ``check_batch_size`` items a request, and the same
meaning of a deleted item (``<PREFIX>DELETED_ERROR_CODE`` as a BPMN error, or a failure with
``<PREFIX>DELETED_AS_FAILURE``). :class:`TrackedHandler` and :class:`TrackedTracker` hold that
skeleton; a system declares three class attributes and writes only its calls::

    class TicketHandler(TrackedHandler[TicketDeskSettings, HttpClient]):
        spec = SYSTEM                      # its SystemSpec: name and topics
        settings_class = TicketDeskSettings
        client_factory = connect           # settings -> client

        def find_existing(self, task): ...
        def create(self, task): ...

Tests (and tools) pass ``settings=`` and ``client=`` to the constructor; a client passed in stays its
owner's to close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import SecretStr

from exchanger.contracts import SentRecord
from exchanger.creator.base import (
    BaseMessageHandler,
    BaseTracker,
    BpmnErrorOutcome,
    Failed,
    SystemContext,
    TrackerOutcome,
)
from exchanger.settings import TrackedSystemSettings, load
from exchanger.systems import SystemSpec


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=TrackedSystemSettings)
C = TypeVar("C", bound=Closable)


def deleted(settings: TrackedSystemSettings, reason: str, variables: dict[str, Any]) -> Failed | BpmnErrorOutcome:
    """What a deleted item means for the process, per the system's settings: its BPMN error (with
    ``variables`` naming the item, for the boundary event's path) or, by choice, a failure."""
    if settings.deleted_as_failure:
        return Failed(reason=reason)
    return BpmnErrorOutcome(settings.deleted_error_code, reason, variables)


class _SharedClients:
    """One client per system and settings in a process, shared by its handler and tracker: one
    connection pool, and one rate limiter where the system meters every request of a credential in one
    bucket (Bitrix24). Closed when the last user releases it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[Any, int]] = {}

    @staticmethod
    def _key(factory: Callable[..., Any], settings: TrackedSystemSettings) -> str:
        values = {name: value.get_secret_value() if isinstance(value, SecretStr) else value
                  for name, value in settings.model_dump().items()}
        return f"{factory.__module__}.{factory.__qualname__}:{type(settings).__name__}:{sorted(values.items())!r}"

    def acquire(self, factory: Callable[[S], C], settings: S) -> C:
        key = self._key(factory, settings)
        with self._lock:
            client, users = self._clients.get(key) or (factory(settings), 0)
            self._clients[key] = (client, users + 1)
            return client

    def release(self, client: Closable) -> None:
        with self._lock:
            for key, (shared, users) in list(self._clients.items()):
                if shared is client:
                    if users > 1:
                        self._clients[key] = (shared, users - 1)
                        return
                    del self._clients[key]
                    break
        client.close()


shared_clients = _SharedClients()


class _SystemParts(Generic[S, C]):
    """Settings and the shared client, loaded the same way for the handler and the tracker."""

    spec: ClassVar[SystemSpec]
    settings_class: ClassVar[type[TrackedSystemSettings]]
    client_factory: ClassVar[Callable[..., Any]]

    settings: S
    client: C
    _owns_client: bool

    def _bind(self, settings: S | None, client: C | None) -> None:
        self.settings = settings if settings is not None else load(self.settings_class)  # type: ignore[assignment]
        self._owns_client = client is None
        factory = type(self).client_factory  # a plain function stored on the class, not a method
        self.client = client if client is not None else shared_clients.acquire(factory, self.settings)

    def setup(self) -> None:
        """What the system does once its settings and client are there (a start check, its own state),
        so that it need not restate the constructor; nothing by default."""

    def _release(self) -> None:
        if self._owns_client:
            shared_clients.release(self.client)
            self._owns_client = False


class TrackedHandler(_SystemParts[S, C], BaseMessageHandler):
    """A tracked system's handler: settings, the shared client, the write settle wait and the topic check."""

    def __init__(self, context: SystemContext, *, settings: S | None = None, client: C | None = None) -> None:
        super().__init__(context)
        self._bind(settings, client)
        self.write_settle_s = self.settings.write_settle_s
        self.supported_topics = self.spec.topics
        self.setup()

    def deleted(self, reason: str, variables: dict[str, Any]) -> Failed | BpmnErrorOutcome:
        """An item the task refers to (one to update, say) is gone: :func:`deleted` per the settings."""
        return deleted(self.settings, reason, variables)

    def cleanup(self) -> None:
        self._release()


class TrackedTracker(_SystemParts[S, C], BaseTracker):
    """A tracked system's tracker: settings, the shared client, its interval and batch size, and the
    deleted-item outcome; a system names the variables of a deleted item in :meth:`deleted_variables`."""

    def __init__(self, context: SystemContext, *, settings: S | None = None, client: C | None = None) -> None:
        super().__init__(context)
        self._bind(settings, client)
        self.check_interval_s = self.settings.check_interval_s
        self.batch_size = self.settings.check_batch_size
        self.setup()

    def deleted_variables(self, record: SentRecord) -> dict[str, Any]:
        """Variables of the BPMN error of a deleted item (its id, for the error path); none by default."""
        return {}

    def deleted_outcome(self, record: SentRecord, reason: str) -> TrackerOutcome:
        return deleted(self.settings, reason, self.deleted_variables(record))

    def cleanup(self) -> None:
        self._release()
