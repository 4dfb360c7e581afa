"""services-management: the units verify, the installer's substitutions and idempotence on a temp root,
uninstall keeps logs and state, exchangerctl status summarises every unit.

The installer runs against ``EXCHANGER_SYSROOT`` (its /etc) with stand-ins for the commands that would
change this machine (systemctl, useradd, chown, rabbitmqctl, make): they record their arguments. One test
runs the real ``make server-venv`` on a copy of the product: the venv a server gets, and the units' commands in it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from product_tree import IMPORT_EVERY_MODULE, ROOT, copy_product

DAEMONS = ("worker", "creator", "sync")
USER = "exchanger-test-svc"

SHIM = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "{log}"
case "$(basename "$0")" in
  useradd) echo "${{@: -1}}" >> "{users}" ;;
  getent) grep -qx "${{@: -1}}" "{users}" 2>/dev/null; exit $? ;;
  systemctl)
    if [ "$1" = show ]; then
      unit="${{@: -1}}"; prop="$3"
      case "$unit:$prop" in
        exchanger-*-[2-9]@*:LoadState)  # a further instance: loaded when install.sh wrote its template
          [ -f "{unit_dir}/${{unit%%@*}}@.service" ] && echo loaded || echo not-found ;;
        *:LoadState) echo loaded ;;
        exchanger-sync@*:UnitFileState) echo disabled ;;
        *:UnitFileState) echo enabled ;;
        exchanger-sync@*:ActiveState) echo inactive ;;
        exchanger-creator@dev.service:ActiveState) echo failed ;;
        *:ActiveState) echo active ;;
        *:NRestarts) echo 2 ;;
      esac
    fi ;;
esac
exit 0
"""


class Installation:
    """A checkout under a temp root: services-management only, with a stand-in ``.venv`` and ``make``; or, with
    ``product``, the whole product tree and the real ``make`` (install.sh then builds the real server venv)."""

    def __init__(self, tmp_path: Path, product: bool = False) -> None:
        self.root = tmp_path / "opt" / "exchanger"
        self.sysroot = tmp_path / "sys"
        self.bin = tmp_path / "bin"
        self.log = tmp_path / "calls.log"
        if product:
            copy_product(self.root)
        else:
            shutil.copytree(ROOT / "services-management", self.root / "services-management")
        for env, port in (("prod", 9101), ("dev", 9111)):
            (self.root / f".env.{env}").write_text(f"RABBITMQ_VIRTUAL_HOST=exchanger-{env}\n"
                                                   f"WORKER_HEALTH_PORT={port}\nSTORMBPMN_API_KEY=k-{env}\n")
        if not product:
            venv = self.root / ".venv" / "bin"
            venv.mkdir(parents=True)
            for daemon in DAEMONS:
                script = venv / f"exchanger-{daemon}"
                script.write_text("#!/bin/sh\nexit 0\n")
                script.chmod(0o755)
        self.bin.mkdir()
        for command in ("systemctl", "useradd", "userdel", "getent", "chown", "rabbitmqctl", "curl", "journalctl",
                        *(() if product else ("make",))):
            shim = self.bin / command
            shim.write_text(SHIM.format(log=self.log, users=tmp_path / "users",
                                        unit_dir=self.sysroot / "etc" / "systemd" / "system"))
            shim.chmod(0o755)

    def run(self, script: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        env = {"PATH": f"{self.bin}:{os.environ['PATH']}", "EXCHANGER_SYSROOT": str(self.sysroot),
               **{name: value for name, value in os.environ.items() if name.startswith("PIP_")}}  # pip's index
        result = subprocess.run(["bash", str(self.root / "services-management" / script), *args],
                                capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == expect, result.stdout + result.stderr
        return result

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        return {str(p.relative_to(self.sysroot)): (p.read_bytes() if p.is_file() else b"",
                                                   stat.S_IMODE(p.stat().st_mode))
                for p in sorted(self.sysroot.rglob("*"))}

    def unit(self, daemon: str, instance: int = 1) -> Path:
        name = f"exchanger-{daemon}@.service" if instance == 1 else f"exchanger-{daemon}-{instance}@.service"
        return self.sysroot / "etc" / "systemd" / "system" / name


@pytest.fixture
def installation(tmp_path: Path) -> Installation:
    return Installation(tmp_path)


def test_install_fills_the_placeholders_creates_the_user_and_is_idempotent(installation: Installation) -> None:
    installation.run("install.sh", "--user", USER, "prod", "dev")
    for daemon in DAEMONS:
        text = installation.unit(daemon).read_text()
        assert not re.search(r"@[A-Z_]+@", text), text
        assert f"User={USER}" in text and f"Group={USER}" in text
        assert f"ExecStart={installation.root}/.venv/bin/exchanger-{daemon}" in text
        assert f"ReadWritePaths=-{installation.root}/logs -{installation.root}/run -{installation.root}/state" in text
        assert "ProtectHome=yes" in text and "RestartPreventExitStatus=2" in text
    conf = installation.sysroot / "etc" / "exchanger"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o700
    assert stat.S_IMODE((conf / "prod.env").stat().st_mode) == 0o600
    calls = installation.calls()
    assert sum(c.startswith("useradd --system") for c in calls) == 1
    assert f"chown -R {USER}:{USER} {installation.root}/logs" in calls
    assert "systemctl enable --now exchanger-worker@dev exchanger-creator@dev exchanger-sync@dev" in calls
    assert f"make -s -C {installation.root} server-venv" in calls  # the product only, never `make venv`
    assert stat.S_IMODE((installation.root / ".env.dev").stat().st_mode) == 0o640

    before = installation.snapshot()
    installation.log.unlink()
    installation.run("install.sh", "--user", USER, "prod", "dev")
    assert installation.snapshot() == before  # nothing changed
    assert not any(c.startswith("useradd") for c in installation.calls())


@pytest.mark.slow
def test_the_server_venv_holds_the_product_only_and_every_unit_command_runs_from_it(tmp_path: Path) -> None:
    installation = Installation(tmp_path, product=True)
    venv = installation.root / ".venv"
    venv.mkdir()
    (venv / "dev.stamp").touch()  # a venv `make venv` made on this checkout: the sandbox, the test tools
    retired = installation.root / "exchanger" / "retired_module.py"
    retired.write_text('"""a module the next version deletes"""\n')
    installation.run("install.sh", "--user", USER, "--instances", "2", "prod", "dev")
    assert not (venv / "dev.stamp").exists(), "the development venv was not replaced"

    python = str(venv / "bin" / "python")
    probe = ("import importlib.metadata, importlib.util, exchanger\n"
             "print(exchanger.__file__)\n"
             "names = (d.metadata['Name'].lower().replace('_', '-') for d in importlib.metadata.distributions())\n"
             "print(' '.join(names))\n"
             "print(importlib.util.find_spec('exchanger_sandbox'))\n")
    found = subprocess.run([python, "-c", probe], cwd="/", capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    package_file, distributions, sandbox = found.stdout.splitlines()
    assert Path(package_file).is_relative_to(venv), f"not installed into the venv (editable?): {package_file}"
    installed = set(distributions.split())
    assert "exchanger" in installed and sandbox == "None", found.stdout
    not_for_a_server = {"exchanger-sandbox", "pytest", "ruff", "mypy", "camunda-external-task-client-python3"}
    assert not installed & not_for_a_server, f"the server venv carries {installed & not_for_a_server}"
    imported = subprocess.run([python, "-c", IMPORT_EVERY_MODULE], cwd="/", capture_output=True, text=True,
                              timeout=120)
    assert imported.returncode == 0, f"requirements.txt misses what the product imports:\n{imported.stderr}"

    units = [installation.unit(daemon) for daemon in DAEMONS] + [installation.unit(d, 2) for d in ("worker", "creator")]
    for unit in units:
        text = unit.read_text().replace("%i", "prod")
        [command] = re.findall(r"^ExecStart=(.+)$", text, re.M)
        environment = dict(line.split("=", 1) for line in re.findall(r"^Environment=(.+)$", text, re.M))
        assert Path(command).parent == venv / "bin", command
        # the unit's environment with one bad value: the command runs, finds .env.prod through EXCHANGER_HOME
        # (not the current folder) and stops at that value with exit 2, before it would connect anywhere
        started = subprocess.run([command], cwd="/", env={"PATH": "/usr/bin:/bin", **environment,
                                                          "EXCHANGER_INSTANCE": "10"},
                                 capture_output=True, text=True, timeout=60)
        output = started.stdout + started.stderr
        assert started.returncode == 2 and "EXCHANGER_INSTANCE='10' is not an instance number" in output, \
            f"{unit.name}: {command} exited {started.returncode}:\n{output}"

    # the upgrade: the checkout changes, install.sh runs again, the venv holds exactly the new code
    retired.unlink()
    (installation.root / "exchanger" / "new_module.py").write_text('"""a module new in this version"""\n')
    rendered = [unit.read_text() for unit in units]
    installation.run("install.sh", "--user", USER, "--instances", "2", "prod", "dev")
    upgraded = subprocess.run([python, "-c", "import importlib.util as u; "
                               "print(u.find_spec('exchanger.new_module') is not None, "
                               "u.find_spec('exchanger.retired_module') is not None)"],
                              cwd="/", capture_output=True, text=True, timeout=60)
    assert upgraded.stdout.split() == ["True", "False"], upgraded.stdout + upgraded.stderr
    assert [unit.read_text() for unit in units] == rendered


def test_install_never_runs_the_services_as_root(installation: Installation) -> None:
    result = installation.run("install.sh", "--user", "root", "dev", expect=2)
    assert "do not run as root" in result.stdout
    installation.run("install.sh", "dev")  # no SUDO_USER, no --user: the dedicated user
    assert "User=exchanger\n" in installation.unit("worker").read_text()
    assert "useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin " \
           "exchanger" in installation.calls()


def test_camunda_sync_is_enabled_only_where_it_is_built_and_configured(installation: Installation) -> None:
    env_file = installation.root / ".env.prod"
    env_file.write_text(env_file.read_text().replace("STORMBPMN_API_KEY=k-prod", "STORMBPMN_API_KEY="))
    result = installation.run("install.sh", "--user", USER, "prod", "dev")
    assert "prod: camunda-sync not enabled (set STORMBPMN_API_KEY" in result.stdout
    assert "systemctl enable --now exchanger-worker@prod exchanger-creator@prod" in installation.calls()
    assert "systemctl enable --now exchanger-worker@dev exchanger-creator@dev exchanger-sync@dev" in \
        installation.calls()
    (installation.root / ".venv" / "bin" / "exchanger-sync").unlink()  # not built
    installation.log.unlink()
    installation.run("install.sh", "--user", USER, "dev")
    assert "systemctl enable --now exchanger-worker@dev exchanger-creator@dev" in installation.calls()


def test_install_stops_disables_and_masks_the_old_exchanger_py_units_before_starting(installation: Installation):
    installation.run("install.sh", "--user", USER, "dev")
    calls = installation.calls()
    for old in ("exchanger-camunda-worker-prod", "exchanger-task-creator-dev", "exchanger-task-creator"):
        for verb in ("stop", "disable", "mask"):
            assert f"systemctl {verb} {old}.service" in calls
    assert calls.index("systemctl mask exchanger-task-creator-prod.service") < calls.index(
        "systemctl enable --now exchanger-worker@dev exchanger-creator@dev exchanger-sync@dev")


def test_uninstall_keeps_logs_and_state_unless_purged(installation: Installation) -> None:
    installation.run("install.sh", "--user", USER, "prod")
    (installation.root / "logs" / "prod").mkdir(parents=True)
    installation.run("uninstall.sh", "--user", USER)
    assert not installation.unit("worker").exists()
    assert (installation.root / "logs" / "prod").is_dir() and (installation.sysroot / "etc" / "exchanger").is_dir()
    installation.run("uninstall.sh", "--user", USER)  # again: nothing to do, no error
    installation.run("uninstall.sh", "--purge", "--user", USER)
    assert not (installation.root / "logs").exists() and not (installation.sysroot / "etc" / "exchanger").exists()


def test_a_second_instance_of_worker_and_creator_is_a_unit_of_its_own(installation: Installation) -> None:
    installation.run("install.sh", "--user", USER, "--instances", "2", "prod")
    for daemon, component in (("worker", "camunda-worker"), ("creator", "task-creator")):
        first, second = installation.unit(daemon).read_text(), installation.unit(daemon, 2).read_text()
        assert "Environment=EXCHANGER_INSTANCE=1\n" in first and f"Description=Exchanger {component} (%i)" in first
        assert "Environment=EXCHANGER_INSTANCE=2\n" in second and f"Description=Exchanger {component}-2 (%i)" in second
        assert second.replace("Environment=EXCHANGER_INSTANCE=2", "Environment=EXCHANGER_INSTANCE=1").replace(
            f"Exchanger {component}-2", f"Exchanger {component}") == first  # nothing else differs
    assert not installation.unit("sync", 2).exists()  # camunda-sync runs once per environment
    assert "systemctl enable --now exchanger-worker@prod exchanger-worker-2@prod exchanger-creator@prod " \
           "exchanger-creator-2@prod exchanger-sync@prod" in installation.calls()

    installation.log.unlink()
    result = installation.run("exchangerctl", "status", "prod")
    units = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert units == [f"exchanger-{u}@prod.service" for u in ("worker", "worker-2", "creator", "creator-2", "sync")]
    ports = [call.split("/readyz")[0].rsplit(":", 1)[1] for call in installation.calls() if "/readyz" in call]
    assert ports == ["9101", "9201", "9102", "9202"]  # instance 2 answers 100 higher (the .env sets 9101)
    installation.run("exchangerctl", "restart", "prod", "creator")
    assert "systemctl restart exchanger-creator@prod.service exchanger-creator-2@prod.service" in installation.calls()

    installation.run("install.sh", "--user", USER, "--instances", "ten", "prod", expect=2)
    installation.run("uninstall.sh", "--user", USER)
    assert not installation.unit("worker", 2).exists() and not installation.unit("creator", 2).exists()


def test_exchangerctl_status_summarises_every_unit(installation: Installation) -> None:
    result = installation.run("exchangerctl", "status", expect=2)
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(lines) == {f"exchanger-{d}@{e}.service" for d in DAEMONS for e in ("prod", "dev")}
    assert "failed" in lines["exchanger-creator@dev.service"]
    assert "active     2" in lines["exchanger-worker@prod.service"]
    assert "not used" in lines["exchanger-sync@prod.service"]
    assert installation.run("exchangerctl", "status", "prod", "worker").stdout.count("active") == 1
    assert "unknown action" in installation.run("exchangerctl", "reboot", expect=2).stdout
    installation.run("exchangerctl", "restart", "dev")
    assert "systemctl restart exchanger-worker@dev.service exchanger-creator@dev.service" in installation.calls()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed "
                    "(.ci/run installs the systemd package)")
def test_the_units_pass_systemd_analyze_verify(installation: Installation, tmp_path: Path) -> None:
    installation.run("install.sh", "--user", "nobody", "--instances", "2", "dev")
    for daemon, number in [*((d, 1) for d in DAEMONS), ("worker", 2), ("creator", 2)]:
        instance = tmp_path / installation.unit(daemon, number).name.replace("@.", "@dev.")
        shutil.copy(installation.unit(daemon, number), instance)
        result = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(instance)],
                                  capture_output=True, text=True, timeout=60)
        exposure = float(security.stdout.split("Overall exposure level for")[1].split(":")[1].split()[0])
        print(f"{instance.name} exposure {exposure}")
        assert exposure < 3.0, security.stdout
