"""The daemons keep working under the units' restrictions, as far as this machine can apply them.

systemd is not PID 1 here (containers, CI), so the unit itself cannot be started. The test applies the
restrictions that matter to a Python daemon by hand, in a private mount namespace: the whole file
system read-only except the logs and run folders (``ProtectSystem=strict`` + ``ReadWritePaths``), a
private /tmp (``PrivateTmp``), no capabilities at all (``CapabilityBoundingSet=``) and
``NoNewPrivileges``. Then camunda-worker and task-creator must start, become ready against the sandbox
engine and the broker, write their logs, and stop cleanly on SIGTERM. Not covered: the dedicated user
(the interpreter lives under /root here), ``ProtectHome``, the system-call filter and
``PrivateDevices``, which need systemd itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from ops_sandbox import Sandbox

BIN = Path(sys.executable).parent
CONFINE = r"""
set -e
mount --bind "$HOME_DIR" /srv                 # keep the project folder while /tmp is replaced
mount -t tmpfs -o mode=1777 tmpfs /tmp        # PrivateTmp
mkdir -p "$HOME_DIR" && mount --bind /srv "$HOME_DIR"
for rw in "$RW_LOGS" "$RW_RUN"; do mount --bind "$rw" "$rw"; done   # ReadWritePaths
mount -o remount,bind,ro "$HOME_DIR"
mount -o remount,bind,ro /                    # ProtectSystem=strict
exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all "$@"
"""


def _can_confine() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not _can_confine(), reason="needs root and unshare/setpriv to build the restricted namespace")
@pytest.mark.parametrize("daemon", ["worker", "creator"])
def test_a_daemon_runs_read_only_without_capabilities(daemon: str, sandbox: Sandbox, rabbit_settings,
                                                      tmp_path: Path) -> None:
    home = tmp_path / "exchanger"
    logs, run = home / "logs", home / "run"
    logs.mkdir(parents=True)
    run.mkdir()
    port = _free_port()
    (home / ".env.dev").write_text(
        f"RABBITMQ_VIRTUAL_HOST={rabbit_settings.virtual_host}\nCAMUNDA_BASE_URL={sandbox.url}\n"
        f"CAMUNDA_WORKER_ID=hardened\nWORKER_HEALTH_PORT={port}\nCREATOR_HEALTH_PORT={port}\n"
        "CREATOR_QUEUES=python.queue\nCAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS=1000\n")
    env = {"PATH": os.environ["PATH"], "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(home),
           "PYTHONDONTWRITEBYTECODE": "1", "HOME_DIR": str(home), "RW_LOGS": str(logs), "RW_RUN": str(run)}
    process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", CONFINE, "confine",
                                str(BIN / f"exchanger-{daemon}")], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and process.poll() is None and not ready:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                pass
            time.sleep(0.2)
        if not ready:
            process.kill()
            output = process.communicate(timeout=10)[0]
            pytest.fail(f"exchanger-{daemon} never became ready under the restrictions:\n{output[-3000:]}")
        process.send_signal(signal.SIGTERM)  # bash exec'd into the daemon: the signal reaches it
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    component = "camunda-worker" if daemon == "worker" else "task-creator"
    assert (logs / "dev" / f"{component}.log").stat().st_size > 0
