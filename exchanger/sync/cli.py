"""Command line of camunda-sync (``camunda-sync/main.py`` and ``exchanger sync`` call :func:`main`).

::

    main.py                         daemon: a pass every CAMUNDA_SYNC_INTERVAL_S, health endpoint
    main.py --once                  one pass; exit 0 all synced, 1 some failed (named), 2 StormBPMN/Camunda
                                    unreachable, 401/403 or 429, or a bad setting
    main.py --dry-run               what would change, with a diff against what Camunda has; deploys nothing
    main.py --diagram ID [...]      only these diagrams (with --once or --dry-run)
    main.py --status S --folder F --name REGEX   filters (override CAMUNDA_SYNC_STATUSES/FOLDERS/NAME_PATTERN)
    main.py --force                 convert and deploy even what looks unchanged or failed before
    main.py status [--json]         per diagram: version, deployed key:version, last result; last pass, budget
    main.py convert in.bpmn [--assignees edges.json] [-o out.bpmn]   offline, for analysts
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from env_loader import Environment
from exchanger.runtime import EXIT_CONFIG, run, stop_on_signals
from exchanger.settings import load
from exchanger.sync.converter import ConversionError, convert
from exchanger.sync.daemon import COMPONENT, Sync, serve
from exchanger.sync.settings import StormSettings, SyncSettings
from exchanger.sync.state import SyncState
from exchanger.sync.storm import token_expiry
from exchanger.sync.validate import validate


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "convert":
        return convert_command(args[1:])
    if args and args[0] == "status":
        return run(COMPONENT, lambda env: status_command(env, args[1:]))
    options = parse_options(args)
    return run(COMPONENT, lambda env: sync_command(env, options))


def parse_options(args: list[str]) -> argparse.Namespace:
    """The options of a pass or the daemon (also what ``exchanger sync once|dry-run`` builds)."""
    parser = argparse.ArgumentParser(prog="camunda-sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--dry-run", action="store_true", help="show what would change; deploy nothing")
    parser.add_argument("--diagram", action="append", default=[], metavar="ID", help="only this diagram")
    parser.add_argument("--force", action="store_true", help="redo diagrams that look unchanged or failed")
    parser.add_argument("--status", dest="statuses", help="comma list of Storm statuses")
    parser.add_argument("--folder", dest="folders", help="comma list of Storm folders/teams")
    parser.add_argument("--name", dest="name_pattern", help="regular expression on the diagram name")
    return parser.parse_args(args)


def sync_settings(options: argparse.Namespace | None = None) -> SyncSettings:
    settings = load(SyncSettings)
    overrides = {k: getattr(options, k) for k in ("statuses", "folders", "name_pattern")
                 if options is not None and getattr(options, k, None) is not None}
    return settings.model_copy(update=overrides) if overrides else settings


def sync_command(env: Environment, options: argparse.Namespace) -> int:
    settings = sync_settings(options)
    sync = Sync(settings.state_path(env.root, env.name), sync_settings=settings)
    try:
        if not (options.once or options.dry_run):
            return serve(sync, stop_on_signals())
        report = sync.run_pass(dry_run=options.dry_run, force=options.force, only=options.diagram,
                               log_outcomes=False)  # the report below says it once
    finally:
        sync.close()
    for outcome in report.outcomes:
        print(outcome.line())
        if options.dry_run:
            for line in outcome.report:
                print(f"    {line}")
            if outcome.diff:
                print(outcome.diff)
    for name in report.gone:
        print(f"{name} is no longer listed in StormBPMN")
    if report.aborted:
        print(f"pass stopped: {report.aborted}", file=sys.stderr)
    counts = ", ".join(f"{n} {a}" for a, n in sorted(report.summary()["counts"].items()))  # type: ignore[attr-defined]
    print(f"{len(report.outcomes)} diagrams in {report.duration_s:.1f}s: {counts or 'nothing to do'}")
    return report.exit_code


def status_lines(state: SyncState) -> dict[str, object]:
    diagrams = []
    for st in state.all():
        deployed = ", ".join(f"{d['key']}:{d['version']}" for d in st.definitions)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.last_attempt_at or st.last_success_at or 0))
        diagrams.append({"name": st.name, "id": st.diagram_id, "storm_version": st.version, "deployed": deployed,
                         "last_result": st.last_result + (" (pending)" if st.pending else ""), "at": when,
                         "error": st.last_error.splitlines()[0] if st.last_error else ""})
    limiter = state.meta("limiter", {})
    now = time.time()
    return {"diagrams": diagrams, "last_pass": state.meta("last_pass"),
            "rate": {"calls_last_minute": len([t for t in limiter.get("calls", []) if now - t < 60]),
                     "rejections_24h": len([t for t in limiter.get("rejections", []) if now - t < 86_400])}}


def last_pass(env: Environment) -> tuple[int | None, str]:
    """For ``exchanger status``: the last pass's exit code (None: no pass yet) and one line about it."""
    state_path = sync_settings().state_path(env.root, env.name)
    if not state_path.exists():
        return None, f"no pass yet (state {state_path})"
    state = SyncState(state_path)
    try:
        last = state.meta("last_pass")
    finally:
        state.close()
    if not last:
        return None, "no pass yet"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["at"]))
    counts = ", ".join(f"{n} {a}" for a, n in sorted(last["counts"].items())) or "nothing to do"
    end = f"stopped: {last['aborted']}" if last["aborted"] else f"exit {last['exit_code']}"
    return int(last["exit_code"]), f"last pass {when}: {counts}; {end}"


def status_command(env: Environment, args: list[str]) -> int:
    state = SyncState(sync_settings().state_path(env.root, env.name))
    try:
        data = status_lines(state)
    finally:
        state.close()
    expiry = token_expiry(load(StormSettings).bearer_token.get_secret_value())
    data["bearer_token_expires"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(expiry)) if expiry else None
    if "--json" in args:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    for d in data["diagrams"]:  # type: ignore[attr-defined]
        error = f" — {d['error']}" if d["error"] else ""
        print(f"«{d['name']}» {d['id']} v{d['storm_version']} deployed {d['deployed'] or '-'} "
              f"{d['last_result']} at {d['at']}{error}")
    print(f"last pass: {json.dumps(data['last_pass'], ensure_ascii=False)}; rate: {data['rate']}")
    if data["bearer_token_expires"]:
        print(f"STORMBPMN_BEARER_TOKEN expires {data['bearer_token_expires']}")
    return 0


def convert_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="camunda-sync convert", description="convert one StormBPMN file offline")
    parser.add_argument("input", type=Path)
    parser.add_argument("--assignees", type=Path, help="assignee edges (JSON list), as /assignee/assigneeedges")
    parser.add_argument("-o", "--output", type=Path, help="write the model here (default: standard output)")
    parser.add_argument("--diagram-id", default="", help="the Storm diagram id (stormDiagramId, key policy)")
    args = parser.parse_args(argv)
    try:
        settings = load(SyncSettings)
        edges = json.loads(args.assignees.read_text(encoding="utf-8")) if args.assignees else []
        result = convert(args.input.read_bytes(), edges, settings.options(args.diagram_id),
                         diagram_id=args.diagram_id, diagram_name=args.input.stem)
        validate(args.input.name, result.xml, result.process_keys)
    except ConversionError as exc:
        for reason in exc.reasons:
            print(f"{args.input}: {reason}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"camunda-sync convert: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for line in result.report:
        print(line, file=sys.stderr)
    if args.output:
        args.output.write_bytes(result.xml)
    else:
        sys.stdout.write(result.xml.decode("utf-8"))
    return 0
