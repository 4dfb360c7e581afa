"""The contracts every system plugs into: a task handler, a tracker, and the outcomes they return.

A system package (``exchanger/systems/<system>/``) provides a ``handler.py`` with a subclass of
:class:`BaseMessageHandler` and, when its work items take time, a ``tracker.py`` with a subclass of
:class:`BaseTracker`. The task-creator loads them by module path from its routing table
(:mod:`exchanger.creator.routing_config`), validates them at start and calls them from its consumers.
Neither talks to RabbitMQ: they return an outcome (or raise), and :mod:`exchanger.creator.outcomes`
turns that into the next message, in one place.

**Construction.** The creator builds each class once per process as ``cls(context)`` with a
:class:`SystemContext`. A subclass loads its own settings there (``load(MySystemSettings)``, which
raises ``ConfigError`` naming the variable and so stops the start) and builds its client. Extra
constructor arguments must be keyword-only with defaults (tests inject fakes through them).

**Handler** (one instance serves every message of ``<system>.queue``, from several threads at once,
so keep it thread-safe: a pooled HTTP client, no per-message state on ``self``)::

    find_existing(task) -> ExternalItem | None        # idempotency: called first, on every delivery
    create(task) -> HandlerOutcome                    # create the work item (or do the work), when none exists

A handler that sets ``supported_topics`` gets an :class:`~exchanger.errors.Incident` for any other
topic routed to it (a routing file's mistake) before either is called.

**Ambiguous writes.** A handler whose create may still be running on the server after we stopped
waiting (a read timeout, a crash, a restart) sets ``write_settle_s``. A timed-out create retries after
that wait (the client's ``Unreachable.retry_after_s``); a task the broker *redelivers* (the process that
had it died or was stopped mid-call) goes through a delay queue for ``write_settle_s`` first, so that
``find_existing`` runs only once the earlier create can no longer land. The consumer thread never waits.

``HandlerOutcome`` is one of

* :class:`~exchanger.contracts.ExternalItem` — a work item was created; the creator publishes a
  :class:`~exchanger.contracts.SentRecord` to ``<system>.sent.queue`` (after the tracker's check
  interval) and the tracker takes over;
* :class:`Done` — finished at once; a ``complete`` response carries its variables;
* :class:`Failed` — give up: a ``failure`` response (``retries`` 0 by default: an incident in Cockpit);
* :class:`BpmnErrorOutcome` — a business error for a boundary event;

or an exception:

* :class:`~exchanger.errors.BpmnError` → ``bpmn_error`` response;
* :class:`~exchanger.errors.Incident`, :class:`~exchanger.errors.PermanentError` → ``failure`` with
  retries 0, and a copy of the task in the parking lot;
* :class:`~exchanger.errors.TransientError` (and anything unexpected) → delivered again after the
  delay of the retry policy (:mod:`exchanger.creator.retry_policy`, BPMN ``retryConfig`` or
  ``CREATOR_RETRY_CONFIG``); after the last retry a ``failure`` with retries 0 and a parked copy;
* :class:`~exchanger.errors.ContractError` → the message is parked (nothing can be reported).

A handler whose ``retry_through_camunda`` is True (the python system) reports other exceptions as a
``failure`` with the retries decremented and the retry timeout instead, so that Camunda schedules
the retry (the external task client convention).

**Tracker** (one instance serves ``<system>.sent.queue``; same threading rule)::

    check(record: SentRecord) -> Done | Failed | BpmnErrorOutcome | StillOpen
    check_many(records) -> list[outcome | None]        # optional: many items per request (batch_size > 1)

(``check`` was called ``check_task_status``; a tracker that still overrides the old name works, with a
``DeprecationWarning``.) The creator calls :meth:`BaseTracker.track` / :meth:`BaseTracker.track_many`,
which add the statistics and the deletion check around them.

A system whose items are tracked builds on :mod:`exchanger.creator.tracked`, which holds the common
settings, the shared client, the topic check and the deleted-item outcome once.

``StillOpen`` → the record is checked again after ``check_interval_s`` (a delay queue, so any number
of items can be tracked and none blocks another); ``Done`` / ``Failed`` / ``BpmnErrorOutcome`` → the
response is published (confirmed) and the record acked. A ``TransientError`` (the system is down or
slow) is checked again after the interval. Anything else unexpected (a date the tracker cannot parse,
a malformed item id, a bug) is checked again too, but only ``CREATOR_MAX_CHECK_ERRORS`` times in a row:
then it is an incident with the reason and a parked copy, never a silent loop. ``PermanentError`` /
``Incident`` → failure with retries 0 and a parked copy. ``CREATOR_MAX_TRACKING_AGE_S`` bounds how
long an item is tracked.

**Batched checks.** A tracker whose system can answer about many items in one request sets
``batch_size`` above 1 and implements ``check_many``; the creator then consumes the sent queue in
batches (:class:`~exchanger.amqp.consumer.Batching`, up to ``CREATOR_CHECK_BATCH_WINDOW_S`` to fill
one) and each record still gets its own outcome, its own next message and its own ack. An item
missing from the batched answer is checked alone, so a deletion still needs ``confirm_gone``.

**Pushed events and change sweeps** (optional, :mod:`exchanger.creator.item_events`). A tracker that
can rebuild, from the item alone, which Camunda task it belongs to implements ``finished(item_ids)``
(the finished ones among them, each with its rebuilt record and outcome). Then ``parse_event`` lets the
task-creator's event receiver take the system's pushed calls (authenticated by the tracker, answering
the item ids), and ``changed_since`` with ``sweep_interval_s`` > 0 makes it sweep for changed items;
both only put item ids into ``<system>.events.queue``. The tracking records stay the safety net:
``check_interval_s`` can then be long.

**Deleted items.** A ``NotFound`` from ``check`` takes the deleted path
(``deleted_outcome``: a BPMN error or a failure, per system) only when ``confirm_gone`` verifies with a
second, independent query that the item is really gone (or ``check`` itself saw it marked
deleted). An error that merely looks like "not found" (Bitrix24 answers "Action not allowed" for a
missing task and for a missing right alike) while the item is still there is a :class:`CheckFailed`:
checked again, then an incident.

Variables in outcomes are plain Python values (str, int, float, bool, None, dict, list, datetime);
:func:`exchanger.variables.to_typed_map` gives them their Camunda types.
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from loguru import logger

from exchanger.contracts import ExternalItem, SentRecord, TaskMessage
from exchanger.creator.retry_policy import RetryPolicy
from exchanger.errors import ExchangerError, Incident, NotFound

if TYPE_CHECKING:  # creator.settings imports this module
    from exchanger.creator.settings import CreatorSettings

DEFAULT_CHECK_INTERVAL_S = 60.0  # a tracker re-checks an open item once a minute unless its system says otherwise


# --- outcomes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """The work is finished: complete the Camunda task with these (plain Python) variables."""

    variables: dict[str, Any] = field(default_factory=dict)
    local_variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The work cannot be done. ``retries`` 0 makes an incident; more lets Camunda retry after the timeout."""

    reason: str
    details: str = ""
    retries: int = 0
    retry_timeout_ms: int | None = None


@dataclass(frozen=True)
class BpmnErrorOutcome:
    """A business error with ``code`` for a boundary error event (the tracker's form of ``BpmnError``)."""

    code: str
    message: str = ""
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StillOpen:
    """The work item is not finished yet; ``note`` is logged (e.g. the item's current status)."""

    note: str = ""


class CheckFailed(ExchangerError):
    """A check could not tell the item's state (e.g. an unverified "not found"); retried, then an incident."""


class EventRefused(ExchangerError):
    """A pushed call the receiver must not act on: ``status`` 403 (not authenticated), 404 (events are off for
    this system), 400 (not a call it understands)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


HandlerOutcome = ExternalItem | Done | Failed | BpmnErrorOutcome
TrackerOutcome = Done | Failed | BpmnErrorOutcome | StillOpen


@dataclass(frozen=True)
class Finished:
    """A finished item found from an event or a sweep: its tracking ``record`` rebuilt from what the system
    stores (the Camunda task id, the process instance, the activity) and what it means for Camunda."""

    record: SentRecord
    outcome: Done | Failed | BpmnErrorOutcome


@dataclass(frozen=True)
class Changes:
    """What one change sweep found. ``resume_from`` is set when the sweep stopped before the end of the list
    (its page limit): the system's own time of the last change it listed, where the next sweep goes on.
    Without it the next sweep would start where this one started, and a burst of changes larger than a
    sweep's pages would be left to the safety net. ``as_of`` is the system's own clock when it listed (when
    its answer says): the next sweep starts there (minus the overlap) rather than at the task-creator's
    clock, so a system whose clock is behind ours by more than the overlap loses no change to the sweeps."""

    item_ids: list[str]
    resume_from: datetime | None = None
    as_of: datetime | None = None


_OUTCOME_STAT = {Done: "done", Failed: "failed", BpmnErrorOutcome: "bpmn_errors", StillOpen: "still_open"}


@dataclass(frozen=True)
class SystemContext:
    """What the creator tells a handler or tracker about where it runs.

    ``settings`` is the creator's :class:`~exchanger.creator.settings.CreatorSettings` (None in unit tests
    that build a handler alone).
    """

    system: str  # e.g. "bitrix24"
    queue: str  # <system>.queue
    sent_queue: str | None  # <system>.sent.queue, None for systems without tracking
    settings: CreatorSettings | None = None


class _Stats:
    """Thread-safe counters behind ``get_stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


# --- handler ----------------------------------------------------------------------------------------


class BaseMessageHandler(ABC):
    """Turns one task into a work item (or a result). See the module docstring for the contract."""

    retry_through_camunda: ClassVar[bool] = False  # True: unexpected errors → failure with retries-1

    def __init__(self, context: SystemContext) -> None:
        self.context = context
        self.stats = _Stats()
        # how long the system may still be working on a create we stopped waiting for (its
        # <SYSTEM>_WRITE_SETTLE_S); > 0 makes a redelivered task wait that long before find_existing
        self.write_settle_s: float = 0.0
        # the topics this handler knows; None takes whatever the routing sends here
        self.supported_topics: tuple[str, ...] | None = None

    def process_message(self, task: TaskMessage) -> HandlerOutcome:
        """Look the item up, else run the business logic; count what happened. Exceptions propagate."""
        self.stats.add("total_messages")
        try:
            if self.supported_topics is not None and task.topic_name not in self.supported_topics:
                raise Incident(f"topic {task.topic_name} is not supported by the {self.context.system} handler; "
                               f"supported: {', '.join(self.supported_topics)}")
            existing = self.find_existing(task)
            if existing is not None:
                self.stats.add("found_existing")
                logger.info("{}: task {} already has {} item {}; tracking it", self.context.system, task.task_id,
                            existing.system, existing.id)
                return existing
            outcome = self.create(task)
        except Exception as exc:
            self.stats.add(f"raised_{type(exc).__name__}")
            self.stats.add("failed_tasks")
            raise
        self.stats.add({ExternalItem: "created_items", Done: "completed_tasks", Failed: "failed_tasks",
                        BpmnErrorOutcome: "bpmn_errors"}.get(type(outcome), "other_outcomes"))
        return outcome

    def find_existing(self, task: TaskMessage) -> ExternalItem | None:
        """The work item already created for ``task`` (search by the external task id), or None.

        Called before every ``create``: a redelivered task (crash after creating, before the ack)
        then goes on with the existing item instead of creating a second one. Systems that create
        nothing keep this default.
        """
        return None

    @abstractmethod
    def create(self, task: TaskMessage) -> HandlerOutcome:
        """Create the work item for ``task`` (or do the work at once); return an outcome or raise.

        Called by :meth:`process_message` only when :meth:`find_existing` found nothing.
        """

    def retry_policy_for(self, task: TaskMessage) -> RetryPolicy | None:
        """This system's retry policy for ``task``; None uses ``CREATOR_RETRY_CONFIG``.

        Either way the activity's ``retryConfig`` extension property wins.
        """
        return None

    def get_stats(self) -> dict[str, int]:
        return self.stats.snapshot()

    def cleanup(self) -> None:
        """Release clients and connections; called once at shutdown after the consumers drained."""
        return None


# --- tracker ----------------------------------------------------------------------------------------


class BaseTracker:
    """Watches created work items until they are done. See the module docstring for the contract.

    ``check_interval_s`` is how long an open item waits before its next check; a subclass sets it from
    its system's settings (e.g. ``BITRIX_CHECK_INTERVAL_S``); the default comes from
    ``CREATOR_CHECK_INTERVAL_S``.
    """

    def __init__(self, context: SystemContext) -> None:
        self.context = context
        self.stats = _Stats()
        default = getattr(context.settings, "check_interval_s", None)
        self.check_interval_s: float = float(default) if default else DEFAULT_CHECK_INTERVAL_S
        # records one check_many call can answer; above 1 the creator collects due records into batches
        self.batch_size: int = 1
        # seconds between change sweeps (changed_since); 0 = no sweeps
        self.sweep_interval_s: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "check_task_status" in cls.__dict__:
            warnings.warn(f"{cls.__module__}.{cls.__qualname__}: the tracker method check_task_status is now "
                          f"called check; the old name keeps working for now", DeprecationWarning, stacklevel=2)

    def check(self, record: SentRecord) -> TrackerOutcome:
        """Ask the system about ``record.item``; return its state (module docstring). Every tracker
        implements it (a tracker written before the rename implements ``check_task_status`` instead)."""
        legacy = type(self).check_task_status
        if legacy is BaseTracker.check_task_status:
            raise NotImplementedError(f"{type(self).__name__} implements no check(record)")
        return legacy(self, record)

    def check_task_status(self, record: SentRecord) -> TrackerOutcome:
        """The old name of :meth:`check`, for code that still calls it."""
        return self.check(record)

    @classmethod
    def implements_check(cls) -> bool:
        """Whether the class has its ``check`` (under the new name or the old one); the loader asks."""
        return cls.check is not BaseTracker.check or cls.check_task_status is not BaseTracker.check_task_status

    def check_many(self, records: Sequence[SentRecord]) -> list[TrackerOutcome | None]:
        """The state of several items in as few requests as the system allows (``batch_size`` at most).

        One answer per record, in order: an outcome, or ``None`` for an item the answer did not contain
        (deleted, out of reach, or a lagging listing), which :meth:`track` then asks about on its own so
        that a deletion still needs proof. A system that cannot ask about many keeps ``batch_size`` 1.
        """
        raise NotImplementedError(f"{type(self).__name__} checks one item at a time (batch_size 1)")

    def track_many(self, records: Sequence[SentRecord]) -> list[TrackerOutcome | Exception]:
        """``check_many`` with stats; what it could not tell goes through :meth:`track` one by one.

        An exception of the batched call is every record's result (each takes the error path of
        ``outcomes.for_check``: a transient error re-checks later, others count as failed checks).
        """
        if len(records) == 1:
            return [self._checked(records[0])]
        self.stats.add("batched_calls")
        try:
            answers = self.check_many(records)
        except Exception as exc:  # noqa: BLE001 - the caller maps it per record
            self.stats.add("checks", len(records))
            self.stats.add(f"raised_{type(exc).__name__}", len(records))
            return [exc] * len(records)
        results: list[TrackerOutcome | Exception] = []
        for record, answer in zip(records, answers, strict=True):
            if answer is None:
                results.append(self._checked(record))
                continue
            self.stats.add("checks")
            self.stats.add(_OUTCOME_STAT.get(type(answer), "other_outcomes"))
            results.append(answer)
        return results

    def _checked(self, record: SentRecord) -> TrackerOutcome | Exception:
        try:
            return self.track(record)
        except Exception as exc:  # noqa: BLE001 - the caller maps it
            return exc

    def confirm_gone(self, record: SentRecord) -> bool:
        """True when a second query (not the one that answered "not found") shows the item is gone.

        The default cannot verify, so a system without it never takes the deleted path on a guess.
        """
        return False

    def deleted_outcome(self, record: SentRecord, reason: str) -> TrackerOutcome:
        """What a verified deletion means for the Camunda task; systems send their BPMN error."""
        return Failed(reason=reason)

    def track(self, record: SentRecord) -> TrackerOutcome:
        """:meth:`check` with stats and the deletion check; exceptions propagate."""
        self.stats.add("checks")
        try:
            try:
                outcome = self.check(record)
            except NotFound as exc:
                outcome = self._not_found(record, exc)
        except Exception as exc:
            self.stats.add(f"raised_{type(exc).__name__}")
            raise
        self.stats.add(_OUTCOME_STAT.get(type(outcome), "other_outcomes"))
        return outcome

    def _not_found(self, record: SentRecord, exc: NotFound) -> TrackerOutcome:
        item = record.item
        if not self.confirm_gone(record):
            raise CheckFailed(f"{item.system} answered {exc.message!r} for item {item.id}, which is still there "
                              f"(or its deletion cannot be verified): not taken for a deletion") from exc
        reason = f"{item.system} item {item.id} was deleted (or is out of the integration user's reach)"
        logger.warning("{}; Camunda task {}", reason, record.task.task_id)
        return self.deleted_outcome(record, reason)

    # --- pushed events and change sweeps (optional; module docstring) ---------------------------------

    @property
    def item_events(self) -> bool:
        """True when this tracker can answer from an item id alone (it implements :meth:`finished`)."""
        return type(self).finished is not BaseTracker.finished

    def parse_event(self, headers: Mapping[str, str], body: bytes) -> list[str]:
        """The ids of the items a pushed call of the system is about; raise :class:`EventRefused` for a call
        that is not authenticated (or not understood). ``headers`` have lower-case names."""
        raise EventRefused(f"{self.context.system} does not push events to Exchanger", 404)

    def finished(self, item_ids: Sequence[str]) -> list[Finished]:
        """Of ``item_ids``, the items that are finished, read from the system (never from an event's own
        fields); an item that is open, unknown or not created by Exchanger is left out."""
        raise NotImplementedError(f"{type(self).__name__} cannot answer from an item id alone")

    def changed_since(self, since: datetime) -> Changes:
        """The items changed at or after ``since`` (a change sweep; ``sweep_interval_s`` > 0); a tracker may
        leave out those it can already tell are open or not its own."""
        raise NotImplementedError(f"{type(self).__name__} cannot sweep for changes")

    def subscribe_events(self) -> str | None:
        """Tell the system where to push its calls, idempotently, when its API allows (Bitrix24 ``event.bind``);
        called by the event receiver at start. Returns what it found or did; None: nothing to do."""
        return None

    def get_stats(self) -> dict[str, int]:
        return self.stats.snapshot()

    def cleanup(self) -> None:
        """Release clients and connections; called once at shutdown."""
        return None
