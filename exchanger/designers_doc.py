"""docs/process-designers.md, generated from the code: ``python -m exchanger.designers_doc --write``.

What a process designer needs per system — its topics, the extension properties and variables it
reads, the result variables it sets, the BPMN errors it raises — taken from where the code keeps it:
the routing table (topics), the handler and tracker modules' docstrings (the prose contract), the
settings classes (the configurable error codes' defaults), and, read from their source, the variables
each ``Done``/``BpmnErrorOutcome`` sets, the names read with ``prop``/``value`` and the ``BpmnError``
codes raised.
tests/foundation/test_designers_doc.py fails when a fact found in the code is missing from the page.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from exchanger.amqp.topology import sent_queue, system_queue
from exchanger.creator.retry_policy import RETRY_PROPERTY
from exchanger.creator.routing_config import queue_handlers, tracker_handlers
from exchanger.routing import DEFAULT_SYSTEM, default_routes
from exchanger.systems import registered_systems

PAGE = Path(__file__).resolve().parents[1] / "docs" / "process-designers.md"
PYTHON_TASK_MODULE = "exchanger.systems.python.examples"
_OUTCOMES = {"Done", "BpmnErrorOutcome"}
_READERS = {"prop", "value", "_input"}


@dataclass
class Facts:
    """What the source of one system's modules says, found by reading it (nothing is imported)."""

    docstrings: list[str] = field(default_factory=list)
    reads: set[str] = field(default_factory=set)
    results: set[str] = field(default_factory=set)
    errors: set[str] = field(default_factory=set)
    error_settings: dict[str, str] = field(default_factory=dict)  # env name -> default code
    tasks: list[tuple[str, str]] = field(default_factory=list)  # python: (topic, docstring)


def _source(module: str) -> tuple[str, ast.Module] | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    text = Path(spec.origin).read_text(encoding="utf-8")
    return text, ast.parse(text)


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _dict_keys(node: ast.expr | None, scope: ast.AST) -> set[str]:
    """String keys of a dict literal, or of the dict literal a local name was given (``variables = {...}``)."""
    if isinstance(node, ast.Dict):
        return {key.value for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}
    if isinstance(node, ast.Name):
        keys: set[str] = set()
        for child in ast.walk(scope):
            target: ast.expr | None = child.target if isinstance(child, ast.AnnAssign) else None
            if isinstance(child, ast.Assign) and len(child.targets) == 1:
                target = child.targets[0]
            if isinstance(target, ast.Name) and target.id == node.id:
                keys |= _dict_keys(getattr(child, "value", None), scope)
        return keys
    return set()


def _collect(facts: Facts, module: str) -> None:
    found = _source(module)
    if found is None:
        return
    text, tree = found
    docstring = ast.get_docstring(tree)
    if docstring:
        facts.docstrings.append(docstring)
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    for function in functions:
        for call in (node for node in ast.walk(function) if isinstance(node, ast.Call)):
            name = _name(call.func)
            if name in _OUTCOMES:
                arguments = {kw.arg: kw.value for kw in call.keywords}
                positional = call.args[0] if name == "Done" and call.args else (
                    call.args[2] if len(call.args) > 2 else None)
                facts.results |= _dict_keys(arguments.get("variables", positional), function)
            elif name in _READERS:
                literal = next((a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)),
                               None)
                if literal is not None:
                    facts.reads.add(literal)
            elif name == "BpmnError" and call.args:
                facts.errors.add(_error_code(text, call.args[0]))
        for decorator in function.decorator_list:
            if isinstance(decorator, ast.Call) and _name(decorator.func) == "task" and decorator.args \
                    and isinstance(decorator.args[0], ast.Constant):
                facts.tasks.append((str(decorator.args[0].value), ast.get_docstring(function) or ""))
                for node in ast.walk(function):  # a task function's returned dict completes the task
                    if isinstance(node, ast.Return):
                        facts.results |= _dict_keys(node.value, function)


def _error_code(text: str, code: ast.expr) -> str:
    """A literal code as is, an f-string with ``<…>`` for its fields, a variable's value named as such."""
    if isinstance(code, ast.Constant):
        return str(code.value)
    if isinstance(code, ast.JoinedStr):
        segment = ast.get_source_segment(text, code) or ""
        return re.sub(r"\{[^}]*\}", "<…>", segment[1:].strip("\"'"))
    names = [node.value for node in ast.walk(code) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return f"<value of {names[0]}>" if names else "<computed>"


def _error_settings(facts: Facts, system: str) -> None:
    """``deleted_error_code`` and its kind: the configurable BPMN error codes, with env names and defaults,
    from the system's settings class (the one place a default is declared, inherited ones included)."""
    spec = registered_systems().get(system)
    cls = spec.settings_class() if spec is not None else None
    if cls is None:
        return
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    for name, info in cls.model_fields.items():
        if name.endswith("error_code") and isinstance(info.default, str):
            facts.error_settings[(info.alias or prefix + name).upper()] = info.default


def system_facts(system: str) -> Facts:
    facts = Facts()
    modules = []
    handler = queue_handlers().get(system_queue(system))
    if handler is not None:
        modules.append(handler.module)
    tracker = tracker_handlers().get(sent_queue(system))
    if tracker is not None:
        modules.append(tracker.module)
    if system == "python":
        modules.append(PYTHON_TASK_MODULE)
    for module in modules:
        _collect(facts, module)
    _error_settings(facts, system)
    return facts


_RULE = re.compile(r"=+(\s+=+)+\s*")


def _table(lines: list[str]) -> list[str]:
    """An RST simple table (rule lines of ``=``) → a Markdown table; a row whose first or other cells are
    empty continues the row above."""
    spans = [match.start() for match in re.finditer(r"=+", lines[0])]
    rules = [index for index, line in enumerate(lines) if _RULE.fullmatch(line)]
    header_end = rules[1] if len(rules) > 2 else 0
    rows: list[list[str]] = []
    for index, line in enumerate(lines):
        if index in rules:
            continue
        cells = [line[start:end].strip() for start, end in zip(spans, [*spans[1:], None], strict=True)]
        if rows and index > header_end and (not cells[0] or not any(cells[1:])):
            rows[-1] = [" ".join(filter(None, pair)) for pair in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    header = rows.pop(0) if header_end else ["name", "meaning", *[""] * (len(spans) - 2)]
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(spans),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _markdown(docstring: str) -> str:
    """RST docstring → Markdown: simple tables become Markdown tables, inline literals and roles code."""
    lines = docstring.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        if _RULE.fullmatch(lines[index]):
            end = index + 1
            while end < len(lines) and not (_RULE.fullmatch(lines[end]) and (
                    end + 1 == len(lines) or not lines[end + 1].strip())):
                end += 1
            out.extend(_table(lines[index:end + 1]))
            index = end + 1
            continue
        out.append(lines[index].rstrip())
        index += 1
    text = "\n".join(out).replace("::\n", ":\n")
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _code_list(names: set[str] | list[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names)) if names else "none"


def render() -> str:
    lines = [
        "# For process designers",
        "",
        "<!-- generated by `python -m exchanger.designers_doc --write` (make docs) from the code; do not edit -->",
        "",
        "Exchanger works the external tasks of your BPMN models: model a service task (or send task, "
        "business rule task, message throw/end event) with `camunda:type=\"external\"` and one of the topics "
        "below, give it the extension properties (`camunda:properties`) its system reads, and read the result "
        "variables it sets after the task. A BPMN error is caught by an error boundary event with that "
        "error code; anything else that goes wrong is an incident on the task in Cockpit, retryable once the "
        "cause is fixed.",
        "",
        f"Every system honours the extension property `{RETRY_PROPERTY}` (e.g. `R3/PT5M`): how often and how "
        "far apart a failing task is retried before it becomes an incident.",
        "",
        "## Topics",
        "",
        "| topic | system |",
        "| --- | --- |",
    ]
    routes = default_routes()
    for system, topics in routes.items():
        lines.extend(f"| `{topic}` | {system} |" for topic in topics)
    lines += ["", f"A topic in no list goes to the `{DEFAULT_SYSTEM}` system: an incident naming the topic and "
                  "how to route it (`ROUTING_FILE`).", ""]
    for system in routes:
        facts = system_facts(system)
        lines += [f"## {system}", "", f"Topics: {_code_list(routes[system])}.", ""]
        for docstring in facts.docstrings:
            lines += [_markdown(docstring), ""]
        for topic, docstring in facts.tasks:
            first = _markdown(docstring).split("\n\n")[0].replace("\n", " ")
            lines.append(f"* `{topic}`: {first}")
        if facts.tasks:
            registered = {topic for topic, _ in facts.tasks}
            missing = [topic for topic in routes[system] if topic not in registered]
            if missing:
                lines.append(f"* {_code_list(missing)}: routed here, but no bundled module registers a function for "
                             "it; register yours with `@task` in a module named by `PYTHON_TASKS_MODULES`.")
            lines.append("")
        lines += [
            "| read from the code | |",
            "| --- | --- |",
            f"| properties/variables read by name | {_code_list(facts.reads)} |",
            f"| result variables set | {_code_list(facts.results)} |",
            f"| BPMN errors raised | {_code_list(facts.errors | set(facts.error_settings.values()))} |",
        ]
        for env, code in sorted(facts.error_settings.items()):
            lines.append(f"| error code setting | `{env}` (default `{code}`) |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {PAGE} instead of printing")
    args = parser.parse_args(argv)
    page = render()
    if args.write:
        PAGE.parent.mkdir(exist_ok=True)
        PAGE.write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
