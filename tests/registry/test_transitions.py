"""One write path per state change: registry/services/transitions.py, and nothing else."""

import ast
from pathlib import Path

from django.utils.timezone import now

from registry.models import Job, Status, Worker
from registry.services.transitions import (
    job_cancelled,
    job_claimed,
    job_finished,
    job_released,
    version_status_move,
    worker_lost,
)

ROOT = Path(__file__).resolve().parents[2]
STATE_FIELDS = {"status", "state"}


MOVED_MODELS = {"AdapterVersion", "Job", "Worker"}


def _root_name(node) -> str:
    """`Job` for `Job.objects.filter(...).update`: the name a call chain starts from."""
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _state_writes(path: Path) -> list[str]:
    """`<Model>.objects....update(status=...|state=...)` of a version, job or worker, outside transitions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update":
            if STATE_FIELDS & {k.arg for k in node.keywords} and _root_name(node.func.value) in MOVED_MODELS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_module_but_transitions_writes_a_state():
    sources = [
        p for d in ("registry", "workers", "ui") for p in (ROOT / d).rglob("*.py") if "migrations" not in p.parts
    ]
    writes = [w for p in sources if p.name != "transitions.py" for w in _state_writes(p)]
    assert writes == []


def test_version_moves_report_what_they_left(api_pushed):
    from registry.models import AdapterVersion

    version = AdapterVersion.objects.get()
    assert version.status == Status.CHECKING
    move = version_status_move(version, Status.READY)
    assert (move.before, move.after, move.changed) == (Status.CHECKING, Status.READY, True)
    again = version_status_move(version, Status.READY)
    assert not again.changed
    AdapterVersion.objects.get(status=Status.READY, id=version.id)


def test_of_two_writers_racing_for_a_job_exactly_one_wins(api_pushed):
    job = Job.objects.filter(kind=Job.Kind.COMPATIBILITY).get()
    first, second = (
        Worker.objects.create(hostname=name, direct_queue=f"worker.{name}", device_type="cpu", last_heartbeat_at=now())
        for name in ("w1", "w2")
    )
    assert job_claimed(job.id, first) and not job_claimed(job.id, second)
    assert not job_finished(job, second, Job.State.SUCCEEDED)  # not its claim
    assert job_released(job)  # the reaper takes it back
    assert not job_finished(job, first, Job.State.SUCCEEDED)  # the old claim is gone
    assert job_claimed(job.id, second)
    assert job_cancelled(job, "operator") and not job_cancelled(job, "twice")
    job.refresh_from_db()
    assert (job.state, job.attempts, job.claimed_by_id) == (Job.State.CANCELLED, 2, None)
    assert worker_lost(first) and not worker_lost(first)
