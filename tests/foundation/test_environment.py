"""env_loader and the entry-point bootstrap: env selection, precedence, one-line errors."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import env_loader
from env_loader import EnvironmentSelectionError, load_environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".env.dev").write_text("RABBITMQ_HOST=from-file\nLOG_LEVEL=DEBUG\n")
    (tmp_path / ".env.prod").write_text("RABBITMQ_HOST=prod-host\n")
    monkeypatch.setenv("EXCHANGER_HOME", str(tmp_path))
    return tmp_path


def test_process_environment_beats_the_env_file(home: Path) -> None:
    environ = {"EXCHANGER_ENV": "dev", "RABBITMQ_HOST": "from-process"}
    environment = load_environment(environ)
    assert environ["RABBITMQ_HOST"] == "from-process"
    assert environ["LOG_LEVEL"] == "DEBUG"  # only in the file: taken from it
    assert (environment.name, environment.label) == ("dev", "[DEV]")
    assert environment.logs_dir == home / "logs" / "dev"


def test_prod_is_the_default_environment(home: Path) -> None:
    environ: dict[str, str] = {}
    assert load_environment(environ).name == "prod"
    assert environ["RABBITMQ_HOST"] == "prod-host"


def test_unknown_environment_names_the_variable_and_the_allowed_values(home: Path) -> None:
    with pytest.raises(EnvironmentSelectionError, match=r"EXCHANGER_ENV='staging'.*one of: prod, dev"):
        load_environment({"EXCHANGER_ENV": "staging"})


def test_missing_env_file_names_the_path(home: Path) -> None:
    (home / ".env.dev").unlink()
    with pytest.raises(EnvironmentSelectionError, match=r"\.env\.dev is missing"):
        load_environment({"EXCHANGER_ENV": "dev"})


def test_root_is_found_from_the_code_not_a_fixed_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCHANGER_HOME", raising=False)
    assert env_loader.project_root() == ROOT


@pytest.mark.parametrize("unit", ["camunda-worker", "task-creator"])
def test_bogus_environment_stops_an_entry_point_with_one_line(unit: str) -> None:
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT / unit, env={"EXCHANGER_ENV": "bogus", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "EXCHANGER_ENV" in lines[0] and "prod, dev" in lines[0]


def test_a_bad_setting_stops_the_start_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env.dev").write_text("LOG_LEVEL=LOUD\n")
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT / "camunda-worker",
        env={"EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "LOG_LEVEL" in result.stderr and "LOUD" in result.stderr


def test_installed_outside_a_checkout_the_root_is_the_current_folder(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of env_loader in site-packages has no config.env.example beside it: the root is where the
    command runs (a checkout's copy keeps finding the checkout from any folder, see the test above)."""
    site = tmp_path / "site-packages"
    site.mkdir()
    shutil.copy(ROOT / "env_loader.py", site / "env_loader.py")
    spec = importlib.util.spec_from_file_location("installed_env_loader", site / "env_loader.py")
    assert spec is not None and spec.loader is not None
    installed = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, installed)  # its dataclasses look their module up
    spec.loader.exec_module(installed)
    monkeypatch.delenv("EXCHANGER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert installed.project_root() == tmp_path.resolve()
    monkeypatch.setenv("EXCHANGER_HOME", str(site))
    assert installed.project_root() == site.resolve()
