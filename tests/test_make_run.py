"""`make run` (manage.py runregistry) as a user runs it: the embedded PostgreSQL, the
filesystem broker, gunicorn with threads and a worker with beat, all under one var/.
Ctrl-C must leave nothing running, even after a child was SIGKILLed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The embedded default is what a user without DATABASE_URL or a broker server gets.
SERVER_ENV = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_FILESYSTEM_BROKER_DIR", "BLOB_ROOT", "UPLOAD_TEMP_DIR")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(condition, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:]}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=10).json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None


def _start(var: Path, port: int, log: Path) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if name not in SERVER_ENV}
    env.update(ADAPTER_REGISTRY_VAR_DIR=str(var), PORT=str(port))
    return subprocess.Popen(
        [sys.executable, "manage.py", "runregistry", "--no-seed"],
        cwd=ROOT,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_ctrl_c_stops_everything_even_after_a_child_was_sigkilled(tmp_path):
    var, log = tmp_path / "var", tmp_path / "run.log"
    pgdata = var / "pgdata"
    for round_number in range(2):  # a second start must not inherit a dead handle
        port = _free_port()
        supervisor = _start(var, port, log)
        try:
            _wait(lambda port=port: _healthy(f"http://127.0.0.1:{port}"), 240, "make run to answer", log)
            descendants = psutil.Process(supervisor.pid).children(recursive=True)
            postmaster = _postmaster_pid(pgdata)
            assert postmaster and psutil.pid_exists(postmaster)
            # SIGKILL one gunicorn worker: it never runs its exit hooks, so its id stays in
            # pgserver's handle list; gunicorn starts another one in its place.
            victim = next(p for p in descendants if "gunicorn" in " ".join(p.cmdline()) and p.ppid() != supervisor.pid)
            victim.kill()
            victim.wait(10)
            assert victim.pid in json.loads((pgdata / ".handle_pids.json").read_text())
            _wait(lambda port=port: _healthy(f"http://127.0.0.1:{port}"), 60, "gunicorn to replace it", log)
            descendants = psutil.Process(supervisor.pid).children(recursive=True)
        finally:
            supervisor.send_signal(signal.SIGINT)
            supervisor.wait(90)

        still_running = [p.pid for p in descendants if _alive(p.pid)]
        assert still_running == [], f"round {round_number}: left running {still_running}"
        # The postmaster is a daemon: init reaps it a moment after it exits.
        _wait(lambda pid=postmaster: not _alive(pid), 15, "the embedded PostgreSQL to stop", log)
        assert _postmaster_pid(pgdata) is None
    assert "Traceback" not in log.read_text()
