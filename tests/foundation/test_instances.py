"""EXCHANGER_INSTANCE: a second camunda-worker or task-creator on one host runs when numbered, an accidental
second start of the same instance fails naming the lock file and the PID, and instances never share a
health port, a lock file or a log file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from broker_queues import wait_for

from env_loader import EnvironmentSelectionError, load_environment
from exchanger.errors import ConfigError
from exchanger.health import HealthServer
from exchanger.instances import PORT_STEP, InstanceLock, InstanceLocked, health_port, lock_path

ROOT = Path(__file__).resolve().parents[2]
UNITS = {"worker": "camunda-worker", "creator": "task-creator"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".env.dev").write_text("")
    monkeypatch.setenv("EXCHANGER_HOME", str(tmp_path))
    return tmp_path


def test_the_instance_number_names_the_lock_the_logs_and_the_port(home: Path) -> None:
    first = load_environment({"EXCHANGER_ENV": "dev"})
    second = load_environment({"EXCHANGER_ENV": "dev", "EXCHANGER_INSTANCE": "2"})
    assert (first.instance, second.instance) == (1, 2)
    assert (first.process_name("task-creator"), second.process_name("task-creator")) == ("task-creator",
                                                                                          "task-creator-2")
    assert lock_path("task-creator", first) == home / "run" / "task-creator.dev.lock"  # the name it always had
    assert lock_path("task-creator", second, "/locks") == Path("/locks/task-creator-2.dev.lock")
    assert (health_port(9102, first, "X"), health_port(9102, second, "X")) == (9102, 9102 + PORT_STEP)
    assert health_port(0, second, "X") == 0  # off stays off


@pytest.mark.parametrize("value", ["0", "10", "two", "-1"])
def test_a_bad_instance_number_names_the_variable(home: Path, value: str) -> None:
    with pytest.raises(EnvironmentSelectionError, match=f"EXCHANGER_INSTANCE='{value}'.*1..9"):
        load_environment({"EXCHANGER_ENV": "dev", "EXCHANGER_INSTANCE": value})


def test_a_port_past_the_last_one_names_the_setting(home: Path) -> None:
    ninth = load_environment({"EXCHANGER_ENV": "dev", "EXCHANGER_INSTANCE": "9"})
    with pytest.raises(ConfigError, match="WORKER_HEALTH_PORT=65500 leaves no port for instance 9"):
        health_port(65500, ninth, "WORKER_HEALTH_PORT")


def test_a_taken_health_port_is_a_clear_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*set CREATOR_HEALTH_PORT.*EXCHANGER_INSTANCE=2"):
            HealthServer(port, None, {}, setting="CREATOR_HEALTH_PORT")  # type: ignore[arg-type]


def test_a_second_lock_on_the_same_environment_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "task-creator.dev.lock"
    with InstanceLock(path, "task-creator (dev)"):
        with pytest.raises(InstanceLocked, match=f"task-creator \\(dev\\) is already running as PID {os.getpid()}"):
            InstanceLock(path, "task-creator (dev)").acquire()
    InstanceLock(path, "task-creator (dev)").acquire()  # released: free again


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "task-creator.dev.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(dead.stdout)
    lock = InstanceLock(path, "task-creator (dev)")
    lock.acquire()
    assert path.read_text().strip() == str(os.getpid())
    lock.release()


def _two_free_ports() -> int:
    """A port p with p and p + PORT_STEP free (instance 1 and 2)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + PORT_STEP > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + PORT_STEP))
            except OSError:
                continue
        return port
    pytest.fail("no pair of free ports found")


class Instances:
    """``<unit>/main.py`` processes of one environment in one home, started with EXCHANGER_INSTANCE."""

    def __init__(self, daemon: str, home: Path, vhost: str) -> None:
        self.unit = UNITS[daemon]
        self.home = home
        self.port = _two_free_ports()
        prefix = daemon.upper()
        (home / ".env.dev").write_text(
            f"RABBITMQ_VIRTUAL_HOST={vhost}\nCAMUNDA_BASE_URL=http://127.0.0.1:9/engine-rest\n"
            f"CAMUNDA_ASYNC_RESPONSE_TIMEOUT_MS=1000\nCREATOR_QUEUES=python.queue\nCREATOR_DRAIN_S=2\n"
            f"CREATOR_LEGACY_LOCK_FILE=\nWORKER_SHUTDOWN_DEADLINE_S=5\n{prefix}_HEALTH_PORT={self.port}\n")
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, instance: int | None = None) -> subprocess.Popen[str]:
        env = {"PATH": os.environ["PATH"], "EXCHANGER_ENV": "dev", "EXCHANGER_HOME": str(self.home)}
        if instance is not None:
            env["EXCHANGER_INSTANCE"] = str(instance)
        process = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT / self.unit, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def alive(self, process: subprocess.Popen[str], port: int) -> None:
        def answers() -> bool:
            assert process.poll() is None, process.communicate()
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, 30, f"{self.unit} to answer /healthz on {port}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


@pytest.mark.parametrize("daemon", ["worker", "creator"])
def test_a_second_start_fails_naming_the_holder_and_a_second_instance_runs(
        daemon: str, tmp_path: Path, vhost_factory) -> None:
    instances = Instances(daemon, tmp_path, vhost_factory())
    unit = instances.unit
    try:
        first = instances.start()
        instances.alive(first, instances.port)

        again = instances.start()  # the same instance by accident: refused, the holder named
        _, err = again.communicate(timeout=60)
        assert again.returncode == 3, err
        lock = tmp_path / "run" / f"{unit}.dev.lock"
        assert f"{unit} (dev) is already running as PID {first.pid} (lock file {lock})" in err
        assert "EXCHANGER_INSTANCE=2" in err

        second = instances.start(2)  # on purpose: runs next to the first, with its own port, lock and logs
        instances.alive(second, instances.port + PORT_STEP)
        assert (tmp_path / "run" / f"{unit}-2.dev.lock").read_text().strip() == str(second.pid)
        assert lock.read_text().strip() == str(first.pid)

        third = instances.start(2)
        _, err = third.communicate(timeout=60)
        assert third.returncode == 3 and f"{unit}-2 (dev) is already running as PID {second.pid}" in err
    finally:
        instances.stop()
    logs = tmp_path / "logs" / "dev"
    assert f"{unit}-2 |" in (logs / f"{unit}-2.log").read_text()  # every line says which instance wrote it
    assert f"{unit}-2 |" not in (logs / f"{unit}.log").read_text()
