"""Real Celery worker processes for the worker-pool tests, on the test database and broker."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from registry.models import Job, Worker

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    db = connection.settings_dict
    host = db["HOST"] or ""
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{db['PORT']}" if db.get("PORT") else ""
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}{port}/{db['NAME']}"


def purge_queues() -> None:
    from workers.celery import app

    with app.connection_for_write() as conn:
        for queue in ("gpu", "cpu"):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # a queue that never existed has nothing to purge
                pass


class WorkerPool:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.processes: dict[str, subprocess.Popen] = {}

    def _env(self, name: str, extra_env: dict) -> dict:
        return {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "SECRET_KEY": "worker-test",
            "BLOB_ROOT": str(settings.BLOB_ROOT),
            "UPLOAD_TEMP_DIR": str(settings.UPLOAD_TEMP_DIR),
            # Workers counter-sign versions that become ready, with the test's registry key.
            "REGISTRY_SIGNING_KEY_FILE": str(settings.REGISTRY_SIGNING_KEY_FILE),
            "WORKER_CACHE_DIR": str(self.tmp_path / f"cache-{name}"),
            "WORKER_HEARTBEAT_SECONDS": "1",
            "WORKER_LOST_AFTER_SECONDS": str(settings.WORKER_LOST_AFTER_SECONDS),
            **extra_env,
        }

    def start(self, name: str, queues: str = "gpu,cpu", **extra_env: str) -> str:
        hostname = f"{name}@{socket.gethostname()}"
        env = self._env(name, extra_env)
        log = (self.tmp_path / f"{name}.log").open("w")
        self.processes[hostname] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery",
                "worker",
                "-n",
                hostname,
                "-Q",
                queues,
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: Worker.objects.filter(hostname=hostname, state=Worker.State.ONLINE).exists(),
            90,
            f"{hostname} to register",
            self,
        )
        return hostname

    def start_beat(self, **extra_env: str) -> None:
        """A real `celery beat` process, as `make run` and docker-compose run it."""
        env = self._env("beat", extra_env)
        schedule = self.tmp_path / "celerybeat-schedule"
        argv = [sys.executable, "-m", "celery", "-A", "workers.celery", "beat", "--schedule", str(schedule)]
        log = (self.tmp_path / "beat.log").open("w")
        self.processes["beat"] = subprocess.Popen(
            [*argv, "--loglevel", "INFO"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_web(self, **extra_env: str) -> str:
        """gunicorn as `make run` runs it (2 processes, 4 threads each); returns its base URL."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = self._env("web", extra_env)
        argv = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.conf.py"]
        argv += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4", "--log-level", "info"]
        log = (self.tmp_path / "web.log").open("w")
        self.processes["web"] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/healthz"), 60, "gunicorn to answer", self)
        return url

    def kill(self, hostname: str) -> None:
        self.processes[hostname].send_signal(signal.SIGKILL)
        self.processes[hostname].wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp_path.glob("*.log"))

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=10).status_code < 500
    except httpx.HTTPError:
        return False


def wait_for(condition, seconds: float, what: str, pool: WorkerPool | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{pool.logs()}" if pool else ""))


@pytest.fixture
def pool(transactional_db, tmp_path, settings):
    settings.WORKER_LOST_AFTER_SECONDS = 4
    purge_queues()
    workers = WorkerPool(tmp_path)
    yield workers
    workers.stop()


def job_done(job_id):
    job = Job.objects.get(id=job_id)
    return job if job.state in (Job.State.SUCCEEDED, Job.State.FAILED) else None
