"""One pass of camunda-sync over the StormBPMN diagrams.

1. Listed version, ``updatedOn`` and fingerprint unchanged, last result good, and the engine has the
   model → nothing fetched.
2. Body (and assignees) fetched; same input and fingerprint → only the version fields are recorded.
3. Converted and validated; a failure is recorded and not retried until the input or options change
   (or ``--force``); the deployed version stays live.
4. Same output as deployed → recorded, nothing deployed.
5. ``pending`` written, deployed, recorded, ``pending`` cleared.

Diagrams left ``pending`` by a crash go first. A StormBPMN 429, an authentication error or an
unreachable StormBPMN/Camunda ends the pass with one clear line (the next pass tries again within the
limit); a diagram that fails is named with its reason and the others go on.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from exchanger.errors import AuthError, IntegrationError, NotFound, PermanentError, RateLimited, TransientError
from exchanger.sync.converter import ConversionError, convert
from exchanger.sync.deploy import Deployer
from exchanger.sync.settings import StormSettings, SyncSettings, words
from exchanger.sync.state import DiagramState, SyncState
from exchanger.sync.storm import DiagramInfo, StormClient
from exchanger.sync.validate import validate

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2
MISSING_PASSES = 2  # a diagram absent from two full listings is reported as gone


@dataclass
class Outcome:
    diagram_id: str
    name: str
    version: int
    action: str  # deployed | unchanged | failed | would deploy | skipped
    detail: str = ""
    diff: str = ""
    report: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"«{self.name}» {self.diagram_id[:8]}… v{self.version} → "
        if self.action == "failed":
            return head + f"FAILED: {self.detail}"
        return head + self.action + (f" {self.detail}" if self.detail else "")


@dataclass
class PassReport:
    outcomes: list[Outcome] = field(default_factory=list)
    aborted: str = ""  # why the pass stopped early (StormBPMN/Camunda unreachable, 401/403, 429)
    gone: list[str] = field(default_factory=list)
    started_at: float = 0.0
    duration_s: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "failed"]

    @property
    def exit_code(self) -> int:
        if self.aborted:
            return EXIT_UNREACHABLE
        return EXIT_FAILED if self.failed else EXIT_OK

    def summary(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
        return {"at": self.started_at, "duration_s": round(self.duration_s, 3), "counts": counts,
                "aborted": self.aborted, "failed": [o.line() for o in self.failed], "exit_code": self.exit_code}


class _Abort(Exception):
    """Ends the pass: the reason is for the operator, the next pass retries."""


def input_hash(body: str, edges: list[dict[str, Any]]) -> str:
    canonical = json.dumps(edges, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8") + b"\0" + canonical.encode("utf-8")).hexdigest()


class SyncPass:
    def __init__(self, storm: StormClient, deployer: Deployer, state: SyncState, settings: SyncSettings,
                 storm_settings: StormSettings, *, dry_run: bool = False, force: bool = False,
                 only: list[str] | None = None, log_outcomes: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.storm = storm
        self.deployer = deployer
        self.state = state
        self.settings = settings
        self.storm_settings = storm_settings
        self.dry_run = dry_run
        self.force = force
        self.only = set(only or [])
        self.log_outcomes = log_outcomes  # off when the caller prints the report itself (--once)
        self.clock = clock

    def fingerprint(self, diagram_id: str) -> str:
        options = self.settings.options(diagram_id).fingerprint()
        return hashlib.sha256(f"{options}|tenant={self.deployer.tenant_id}".encode()).hexdigest()

    # --- selection --------------------------------------------------------------------------------------------

    def selected(self, info: DiagramInfo) -> bool:
        s = self.settings
        if self.only:
            return info.id in self.only
        include, exclude = set(words(s.include_ids)), set(words(s.exclude_ids))
        if include and info.id not in include or info.id in exclude:
            return False
        if s.types and info.type.upper() not in {t.upper() for t in words(s.types)}:
            return False
        if s.statuses and info.status.upper() not in {t.upper() for t in words(s.statuses)}:
            return False
        if s.folders and info.folder not in set(words(s.folders)):
            return False
        return not s.name_pattern or re.search(s.name_pattern, info.name) is not None

    # --- the pass -----------------------------------------------------------------------------------------------

    def run(self) -> PassReport:
        report = PassReport(started_at=self.clock())
        try:
            listing = self.storm.diagrams()
        except (IntegrationError, OSError) as exc:
            report.aborted = self.reason("StormBPMN", exc)
            return self.finish(report)
        pending = set(self.state.pending())
        chosen = sorted((d for d in listing if self.selected(d)), key=lambda d: (d.id not in pending, d.name, d.id))
        try:
            for info in chosen:
                report.outcomes.append(self.one(info))
        except _Abort as exc:
            report.aborted = str(exc)
        if not report.aborted and not self.only and not self.dry_run:
            report.gone = self.mark_missing({d.id for d in listing})
        return self.finish(report)

    def finish(self, report: PassReport) -> PassReport:
        report.duration_s = self.clock() - report.started_at
        if not self.dry_run:
            self.state.set_meta("last_pass", report.summary())
        for outcome in report.outcomes if self.log_outcomes else []:
            if outcome.action != "unchanged":
                (logger.warning if outcome.action == "failed" else logger.info)("{}", outcome.line())
        for name in report.gone:
            logger.warning("{} is no longer listed in StormBPMN (its deployed process is kept)", name)
        if report.aborted:
            logger.error("camunda-sync pass stopped: {}", report.aborted)
        return report

    @staticmethod
    def reason(system: str, exc: BaseException) -> str:
        if isinstance(exc, RateLimited):
            return f"{system} rate limit: {exc}; the next pass continues"
        if isinstance(exc, AuthError):
            return f"{system} refused the credentials ({exc}); check the key/token settings"
        if isinstance(exc, PermanentError):
            return f"{system} answered {exc}; check its base URL"
        return f"{system} unreachable or failing: {exc}"

    def engine_has(self, keys: list[str]) -> bool:
        try:
            return bool(keys) and all(self.deployer.latest(key) is not None for key in keys)
        except (TransientError, AuthError) as exc:
            raise _Abort(self.reason("Camunda", exc)) from None

    def one(self, info: DiagramInfo) -> Outcome:
        st = self.state.get(info.id)
        fingerprint = self.fingerprint(info.id)
        outcome = Outcome(info.id, info.name, info.version, "unchanged")
        listed_same = (st.version, st.updated_on, st.fingerprint) == (info.version, info.updated_on, fingerprint)
        if listed_same and st.good and not self.force and self.engine_has(st.process_keys):
            return outcome
        if listed_same and st.last_result == "failed" and not self.force:
            return self.failed(outcome, st.last_error, record=None)
        try:
            diagram = self.storm.diagram(info.id)
            edges = self.storm.assignee_edges(info.id) if self.storm_settings.internal_assignees else []
        except NotFound:
            return self.failed(outcome, "StormBPMN no longer has this diagram", record=None)
        except (TransientError, AuthError) as exc:
            raise _Abort(self.reason("StormBPMN", exc)) from None
        except PermanentError as exc:
            return self.failed(outcome, f"StormBPMN: {exc} (not deployed: a diagram is never deployed without its "
                                        f"responsibles)", record=None)
        body = str(diagram.get("body") or "")
        digest = input_hash(body, edges)
        st.name, st.version, st.updated_on = info.name, info.version, info.updated_on
        same_input = (st.input_hash, st.fingerprint) == (digest, fingerprint)
        if same_input and not self.force:
            if st.good and self.engine_has(st.process_keys):
                self.record(st)
                return outcome
            if st.last_result == "failed":
                self.record(st)
                return self.failed(outcome, st.last_error, record=None)
        st.input_hash, st.fingerprint = digest, fingerprint
        try:
            conversion = convert(body.encode("utf-8"), edges, self.settings.options(info.id), diagram_id=info.id,
                                 diagram_name=info.name)
            validate(f"{info.id}.bpmn", conversion.xml, conversion.process_keys)
            self.check_keys(info.id, conversion.process_keys)
        except ConversionError as exc:
            return self.failed(outcome, "; ".join(exc.reasons), record=st)
        outcome.report = conversion.report
        output = hashlib.sha256(conversion.xml).hexdigest()
        if (output == st.output_hash and st.good and not self.force and self.engine_has(conversion.process_keys)):
            self.record(st)
            return outcome
        if self.dry_run:
            return self.preview(outcome, st, conversion.xml)
        return self.deploy(outcome, st, conversion.xml, output, conversion.process_keys)

    def check_keys(self, diagram_id: str, keys: list[str]) -> None:
        for other in self.state.all():
            taken = set(keys) & set(other.process_keys)
            if other.diagram_id != diagram_id and taken:
                raise ConversionError([f"process key {', '.join(sorted(taken))} belongs to diagram "
                                       f"«{other.name}» {other.diagram_id}"])

    def deploy(self, outcome: Outcome, st: DiagramState, xml: bytes, output: str, keys: list[str]) -> Outcome:
        previous_keys = st.process_keys
        st.pending, st.last_attempt_at = output, self.clock()
        self.record(st)
        try:
            deployed = self.deployer.deploy(st.diagram_id, xml)
        except PermanentError as exc:  # 400 ParseException: permanent for this output
            if exc.status != 400:  # 401/403/404: the configuration (URL, credentials), not this diagram
                raise _Abort(self.reason("Camunda", exc)) from None
            st.pending = ""
            st.output_hash = output
            return self.failed(outcome, f"Camunda refused the deployment: {exc}", record=st)
        except TransientError as exc:
            raise _Abort(self.reason("Camunda", exc)) from None
        st.pending, st.output_hash, st.process_keys = "", output, keys
        st.deployment_id, st.definitions, st.deployed_xml = deployed.deployment_id, deployed.definitions, xml
        st.last_result, st.last_error, st.last_success_at = ("deployed" if deployed.new else "unchanged"), "", \
            self.clock()
        self.record(st)
        if previous_keys and set(previous_keys) != set(keys):
            outcome.report.append(f"warning: process key changed from {', '.join(previous_keys)} to "
                                  f"{', '.join(keys)}; the old definitions stay in Camunda")
        tenant = f" (tenant {self.deployer.tenant_id})" if self.deployer.tenant_id else ""
        versions = ", ".join(f"{d['key']} version {d['version']}" for d in deployed.definitions)
        outcome.action = "deployed" if deployed.new else "unchanged"
        outcome.detail = f"{versions}{tenant}" if deployed.new else f"(already in Camunda: {versions})"
        return outcome

    def preview(self, outcome: Outcome, st: DiagramState, xml: bytes) -> Outcome:
        before = st.deployed_xml.decode("utf-8") if st.deployed_xml else ""
        if not before and st.definitions:
            try:
                before = self.deployer.xml(st.definitions[0]["id"])
            except IntegrationError:
                before = ""
        outcome.action = "would deploy"
        outcome.detail = "(changed)" if before else "(new)"
        outcome.diff = "".join(difflib.unified_diff(before.splitlines(True), xml.decode("utf-8").splitlines(True),
                                                    "deployed", "converted"))
        return outcome

    def failed(self, outcome: Outcome, reason: str, *, record: DiagramState | None) -> Outcome:
        outcome.action, outcome.detail = "failed", reason
        if record is not None:
            record.last_result, record.last_error, record.last_attempt_at = "failed", reason, self.clock()
            self.record(record)
        return outcome

    def record(self, st: DiagramState) -> None:
        if not self.dry_run:
            st.missing = 0
            self.state.save(st)

    def mark_missing(self, listed: set[str]) -> list[str]:
        gone = []
        for st in self.state.all():
            if st.diagram_id in listed:
                continue
            st.missing += 1
            self.state.save(st)
            if st.missing >= MISSING_PASSES:
                gone.append(f"«{st.name}» {st.diagram_id}")
        return gone
