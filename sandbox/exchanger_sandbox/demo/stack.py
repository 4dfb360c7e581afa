"""Starting and stopping the whole product on one machine: broker check, sandbox servers, daemons.

Used by ``make demo``, ``make chaos``, the pipeline benchmark and the end-to-end tests, so that the
way the pipeline is assembled exists once. Everything runs as real subprocesses: the sandbox servers
(``python -m exchanger_sandbox <kind> --port 0``, whose first stdout line is a JSON object of the
settings a daemon needs) and the daemons (``python main.py`` in their unit folder with
``EXCHANGER_ENV=dev`` and ``EXCHANGER_HOME`` pointing at a work folder holding the generated
``.env.dev``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from loguru import logger

from env_loader import process_name

ROOT = Path(__file__).resolve().parents[3]  # the repository (sandbox/exchanger_sandbox/demo/stack.py)
SANDBOX_START_TIMEOUT_S = 20.0  # a sandbox prints its settings line within a second or two
STOP_TIMEOUT_S = 30.0  # a daemon's graceful shutdown deadline plus a margin


class StackError(RuntimeError):
    """The pipeline cannot be assembled; the message says what to do."""


def broker_answers(host: str = "127.0.0.1", port: int = 5672) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def ensure_rabbitmq(wait_s: float = 60.0) -> None:
    """Make sure RabbitMQ answers on localhost:5672: start it if installed, install it if we can."""
    if broker_answers():
        return
    if shutil.which("rabbitmq-server") is None:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            logger.info("RabbitMQ is not installed; installing it with apt-get")
            subprocess.run(["apt-get", "install", "-y", "rabbitmq-server"], check=True)
        else:
            raise StackError(
                "RabbitMQ is not installed. Install and start it, e.g. "
                "`sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached`, then run again."
            )
    logger.info("RabbitMQ is not answering on localhost:5672; starting it (rabbitmq-server -detached)")
    subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if broker_answers():
            subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=False, capture_output=True, timeout=60)
            return
        time.sleep(0.5)
    raise StackError("RabbitMQ did not come up within a minute; see `rabbitmqctl status` and its log")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@dataclass
class Process:
    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> Process:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.popen = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.popen is not None
            self.popen.send_signal(signum)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        if self.popen is None:
            return None
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("{} did not stop within {}s; killing it", self.name, timeout_s)
                self.popen.kill()
                self.popen.wait(10)
        if self._log is not None:
            self._log.close()
        return self.popen.returncode


@dataclass
class Stack:
    """A work folder, a vhost of its own, the sandbox servers and the daemons."""

    workdir: Path
    vhost: str = field(default_factory=lambda: f"exchanger-demo-{uuid.uuid4().hex[:8]}")
    settings: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # sandbox kind → its port (kept across restarts)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)

    # --- broker -----------------------------------------------------------------------------

    def create_vhost(self) -> None:
        ensure_rabbitmq()
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.settings.update({"RABBITMQ_HOST": "localhost", "RABBITMQ_PORT": "5672",
                              "RABBITMQ_VIRTUAL_HOST": self.vhost})

    def delete_vhost(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True, timeout=60)

    # --- sandbox servers ----------------------------------------------------------------------

    def start_sandbox(self, kind: str, *args: str, port: int = 0) -> dict[str, str]:
        """Start ``python -m exchanger_sandbox <kind> --port <port>`` (0: any free port); merge and return its
        settings line."""
        log_path = self.workdir / "logs" / f"sandbox-{kind}.log"
        if kind == "camunda" and "--db" not in args:
            args = (*args, "--db", str(self.workdir / "camunda-sandbox.db"))  # a fresh engine per stack
        command = [sys.executable, "-m", "exchanger_sandbox", kind, "--port", str(port), *args]
        log = open(log_path, "ab")  # noqa: SIM115 - closed by Process.stop
        popen = subprocess.Popen(command, cwd=ROOT, env=self._base_env(), stdout=subprocess.PIPE,
                                 stderr=log, start_new_session=True)
        assert popen.stdout is not None
        line = _read_line(popen, SANDBOX_START_TIMEOUT_S)
        if not line:
            popen.kill()
            raise StackError(f"sandbox {kind} did not print its settings; see {log_path}")
        found = {k: str(v) for k, v in json.loads(line).items()}
        self.ports[kind] = next((urlsplit(v).port or 0 for v in found.values() if v.startswith("http")), 0)
        os.set_blocking(popen.stdout.fileno(), True)
        threading.Thread(target=_drain, args=(popen.stdout, log_path), daemon=True).start()
        process = Process(kind, command, ROOT, {}, log_path, popen=popen, _log=log)
        self.processes[f"sandbox-{kind}"] = process
        self.settings.update(found)
        return found

    def restart_sandbox(self, kind: str, down_s: float, stop: threading.Event | None = None) -> None:
        """Stop a sandbox server, keep it away ``down_s`` seconds, start it again on the same port (with its
        state: the engine's SQLite file stays); e.g. Camunda away for maintenance."""
        process = self.processes[f"sandbox-{kind}"]
        process.stop()
        (stop or threading.Event()).wait(down_s)
        args = process.command[process.command.index("--port") + 2:]
        self.start_sandbox(kind, *args, port=self.ports[kind])

    # --- daemons ------------------------------------------------------------------------------

    def write_env_file(self, extra: dict[str, str] | None = None) -> Path:
        """The ``.env.dev`` the daemons read: everything the sandbox printed plus ``extra``."""
        self.settings.update(extra or {})
        path = self.workdir / ".env.dev"
        path.write_text("".join(f"{k}={v}\n" for k, v in sorted(self.settings.items())), encoding="utf-8")
        return path

    def start_daemon(self, unit: str, env: dict[str, str] | None = None) -> Process:
        """Start ``<unit>/main.py`` (camunda-worker or task-creator) in the dev environment; with
        ``EXCHANGER_INSTANCE=n`` in ``env`` it is the n-th instance, named ``<unit>-n``."""
        daemon_env = {**self._base_env(), "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(self.workdir),
                      **(env or {})}
        name = process_name(unit, int(daemon_env.get("EXCHANGER_INSTANCE", "1")))
        process = Process(name, [sys.executable, "main.py"], ROOT / unit, daemon_env,
                          self.workdir / "logs" / f"{name}.stdout.log").start()
        self.processes[name] = process
        return process

    def run_once(self, unit: str, *args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run ``<unit>/main.py args`` to completion in the dev environment (e.g. ``camunda-sync --once``)."""
        env = {**self._base_env(), "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(self.workdir)}
        return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT / unit, env=env, capture_output=True,
                              text=True, timeout=timeout_s)

    def restart(self, name: str) -> Process:
        old = self.processes[name]
        if old.running:
            old.stop()
        return self.start_daemon(old.cwd.name, {k: v for k, v in old.env.items() if k not in self._base_env()})

    def kill(self, name: str) -> None:
        self.processes[name].signal(signal.SIGKILL)
        popen = self.processes[name].popen
        assert popen is not None
        popen.wait(10)

    def stop_all(self) -> dict[str, int | None]:
        """Daemons first (they drain), then the sandbox servers."""
        codes = {}
        for name in sorted(self.processes, key=lambda n: n.startswith("sandbox-")):
            codes[name] = self.processes[name].stop()
        return codes

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
        return {k: os.environ[k] for k in keep if k in os.environ}


def _read_line(popen: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The first stdout line of ``popen`` within ``timeout_s`` ('' if none)."""
    assert popen.stdout is not None
    os.set_blocking(popen.stdout.fileno(), False)
    buffer = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and popen.poll() is None:
        chunk = popen.stdout.read()
        if chunk:
            buffer += chunk
            if b"\n" in buffer:
                return buffer.split(b"\n", 1)[0].decode("utf-8").strip()
        time.sleep(0.02)
    return ""


def _drain(stream: IO[bytes], log_path: Path) -> None:
    """Keep reading a sandbox's stdout so that it never blocks on a full pipe."""
    with open(log_path, "ab") as log:
        for line in stream:
            log.write(line)
