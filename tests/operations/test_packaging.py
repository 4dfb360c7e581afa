"""The product wheel: what a production install gets, built from the root ``pyproject.toml`` as pip builds it.

It holds the ``exchanger`` package (with ``py.typed``), ``env_loader`` and the console scripts, and none of
the sandbox, the demo or the tests (their own distribution is ``sandbox/pyproject.toml``). Installed
non-editable, every module imports without the sandbox and the commands find the project from
``EXCHANGER_HOME`` or the current folder, not from site-packages.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from product_tree import IMPORT_EVERY_MODULE, copy_product

CONSOLE_SCRIPTS = {
    "exchanger": "exchanger.cli.main:main",
    "exchanger-worker": "exchanger.worker.main:main",
    "exchanger-creator": "exchanger.creator.main:run_main",
    "exchanger-sync": "exchanger.sync.cli:main",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The product wheel, built by pip from a copy of the source tree (a stale ``build/`` cannot leak in)."""
    work = tmp_path_factory.mktemp("wheel")
    source = copy_product(work / "source")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(work)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    [found] = work.glob("exchanger-*.whl")
    yield found


def test_the_wheel_ships_the_product_its_types_and_commands_and_no_fakes(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())
    for expected in ("exchanger/__init__.py", "exchanger/py.typed", "exchanger/systems/__init__.py",
                     "exchanger/systems/bitrix24/handler.py", "exchanger/bpmn/parser.py", "env_loader.py"):
        assert expected in names, f"{expected} is missing from {wheel.name}"
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"exchanger", "env_loader.py", wheel.name.split("-py3")[0] + ".dist-info"}, top_level
    fakes = [n for n in names if any(part in n for part in ("sandbox", "demo", "tests/", ".bpmn"))]
    assert not fakes, f"the product wheel carries sandbox/demo/test files: {fakes}"
    assert dict(scripts["console_scripts"]) == CONSOLE_SCRIPTS


def test_installed_from_the_wheel_the_commands_find_the_project_in_the_current_folder(wheel: Path,
                                                                                      tmp_path: Path) -> None:
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env.dev").write_text("LOG_LEVEL=DEBUG\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(site), "EXCHANGER_ENV": "dev"}  # no EXCHANGER_HOME
    probe = ("import env_loader, exchanger\n"
             "environment = env_loader.load_environment()\n"
             "print(exchanger.__file__)\nprint(environment.root)\nprint(environment.logs_dir)\n")
    run = subprocess.run([sys.executable, "-c", probe], cwd=project, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    package_file, root, logs_dir = run.stdout.splitlines()
    assert Path(package_file).is_relative_to(site), f"not the installed copy: {package_file}"
    assert (Path(root), Path(logs_dir)) == (project.resolve(), project.resolve() / "logs" / "dev")
    elsewhere = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60)
    assert elsewhere.returncode != 0 and f"{tmp_path.resolve() / '.env.dev'} is missing" in elsewhere.stderr
    imported = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE], cwd=project, env=env, capture_output=True,
                              text=True, timeout=120)
    assert imported.returncode == 0, f"the product needs the sandbox or fails to import:\n{imported.stderr}"
    command = subprocess.run([str(site / "bin" / "exchanger"), "--help"], cwd=project, env=env, capture_output=True,
                             text=True, timeout=60)
    assert command.returncode == 0 and "status" in command.stdout, command.stderr
