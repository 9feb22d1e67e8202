"""`make run`: migrate, seed, then run the web server and one Celery worker until Ctrl-C.

This process keeps its handle on the embedded PostgreSQL for the whole run, so
the database stays up while the children come and go, and stops after them.
"""

import os
import signal
import subprocess
import sys
import time

import psutil
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.embedded import prune_dead_handles
from registry.demo.seed import DEMO_USERS


class Command(BaseCommand):
    help = "Run the registry on this machine: web server plus one worker, demo data when embedded."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-seed", action="store_true", help="skip building and registering demo models")

    def handle(self, *args, port: int, no_seed: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("signing_key", verbosity=0)  # made on first start: counter-signatures need it
        if settings.EMBEDDED and not no_seed:
            call_command("seed_demo")
        children = [self._web(port), self._worker()]
        self._announce(port)
        self._supervise(children)

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        # Children get their own process group so Ctrl-C reaches them through us, in order.
        return subprocess.Popen(argv, cwd=settings.BASE_DIR, start_new_session=True)

    def _web(self, port: int) -> subprocess.Popen:
        return self._spawn(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "-c",
                "config/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
                "--log-level",
                "warning",
            ]
        )

    def _worker(self) -> subprocess.Popen:
        # One solo-pool worker consumes both queues, so its resident models serve every job;
        # --beat runs the reaper that re-queues the jobs of lost workers.
        argv = [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "-Q", "cpu,gpu", "--pool", "solo"]
        argv += ["--loglevel", "WARNING", "--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]
        return self._spawn(argv)

    def _announce(self, port: int) -> None:
        url = f"http://127.0.0.1:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nAdapter Registry is running at {url}"))
        self.stdout.write(f"  API docs: {url}api/docs/    health: {url}healthz")
        if settings.EMBEDDED:
            logins = ", ".join(f"{name}/{name}" for name in DEMO_USERS)
            self.stdout.write(f"  demo logins (user/password): {logins}")
        self.stdout.write("  Ctrl-C stops everything.\n")

    def _supervise(self, children: list[subprocess.Popen]) -> None:
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping:
            if any(child.poll() is not None for child in children):
                self._terminate(children)
                raise CommandError("a child process exited; stopped the others (see its log above)")
            time.sleep(0.5)
        self.stdout.write("stopping...")
        self._terminate(children)

    @staticmethod
    def _terminate(children: list[subprocess.Popen]) -> None:
        # SIGTERM to each leader first: gunicorn and celery then stop their own workers cleanly.
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # Then whatever is left in each child's process group, whatever happened to its leader:
        # a worker orphaned by a SIGKILLed master, a worker stuck in a job.
        for child in children:
            stop_process_group(child.pid)
        if settings.EMBEDDED:
            # Children killed without their exit hooks leave their ids in pgserver's handle list;
            # drop them so that this process, the last handle, stops the database when it exits.
            prune_dead_handles(settings.VAR_DIR / "pgdata")


STOP_TIMEOUT_SECONDS = 20


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def stop_process_group(pgid: int, grace_seconds: float = 5) -> None:
    """SIGTERM a process group, then SIGKILL what is still there after the grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_members(pgid):
            return
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_seconds
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
