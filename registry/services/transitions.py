"""The one write path for every state change of an adapter version, a job or a worker.

Every module that moves a state calls one of these, never a bare `.update(status=...)`:
the conditions that make concurrent writers safe (a worker finishing, the reaper, an
operator cancelling) live here once, and so will the audit event each move records.

Each function is a conditional UPDATE: it moves the row only from the states it names
and says whether it did, so of two writers racing for one transition exactly one wins.
(healthchecks' `Check.create_flip` is the model: one place that knows a state changed.)
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from registry.models import AdapterVersion, Job, Status, Worker


@dataclass(frozen=True)
class Move:
    """What a transition did: the state before and after; `changed` False when it was already there."""

    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


# --- Adapter versions: received -> checking -> ready | rejected ------------------------------


@transaction.atomic
def version_status_move(version: AdapterVersion, status: str, reason: str = "") -> Move:
    """Set an adapter version's status (and why). The row is locked, so `before` is the status it left."""
    current = AdapterVersion.objects.select_for_update().only("status", "status_reason").get(id=version.id)
    reason = reason[:2000]
    if (current.status, current.status_reason) != (status, reason):
        AdapterVersion.objects.filter(id=version.id).update(status=status, status_reason=reason)
    version.status, version.status_reason = status, reason
    return Move(before=current.status, after=status)


def version_rejected(version: AdapterVersion, reason: str) -> Move:
    return version_status_move(version, Status.REJECTED, reason)


# --- Jobs: queued -> running -> succeeded | failed; cancelled; running -> queued again -------


def job_state_move(job: Job | str, to_state: str, *, from_states, where: dict | None = None, **fields) -> bool:
    """Move a job from one of `from_states` to `to_state` (with `where` as extra conditions, e.g. the
    claiming worker); False when another writer moved it first."""
    job_id = job.id if isinstance(job, Job) else job
    moved = Job.objects.filter(id=job_id, state__in=list(from_states), **(where or {})).update(state=to_state, **fields)
    return bool(moved)


def job_claimed(job_id, worker: Worker) -> bool:
    return job_state_move(
        job_id,
        Job.State.RUNNING,
        from_states=[Job.State.QUEUED],
        claimed_by=worker,
        ran_on=worker.hostname,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )


def job_finished(job: Job, worker: Worker, state: str, **fields) -> bool:
    """succeeded or failed, only while this worker still holds the claim (the reaper may have taken it)."""
    return job_state_move(
        job,
        state,
        from_states=[Job.State.RUNNING],
        where={"claimed_by": worker},
        finished_at=timezone.now(),
        **fields,
    )


def job_released(job: Job, worker: Worker | None = None) -> bool:
    """Back to queued: a transient error on the worker, or the reaper taking a lost worker's job."""
    where = {"claimed_by": worker} if worker is not None else None
    return job_state_move(
        job, Job.State.QUEUED, from_states=[Job.State.RUNNING], where=where, claimed_by=None, started_at=None
    )


def job_cancelled(job: Job, reason: str) -> bool:
    return job_state_move(
        job,
        Job.State.CANCELLED,
        from_states=[Job.State.QUEUED, Job.State.RUNNING],
        claimed_by=None,
        finished_at=timezone.now(),
        error=reason[:4000],
    )


# --- Workers: online <-> lost, stopped -----------------------------------------------------------


def worker_state_move(hostname: str, state: str, *, from_states=None, **fields) -> bool:
    """Set a worker's state (a heartbeat passes its report as fields); False when no row matched."""
    rows = Worker.objects.filter(hostname=hostname)
    if from_states is not None:
        rows = rows.filter(state__in=list(from_states))
    return bool(rows.update(state=state, **fields))


def worker_lost(worker: Worker) -> bool:
    """The reaper's verdict on a silent worker; its resident models are gone with it."""
    return worker_state_move(worker.hostname, Worker.State.LOST, from_states=[Worker.State.ONLINE], resident={})


def worker_stopped(hostname: str) -> bool:
    return worker_state_move(hostname, Worker.State.STOPPED, resident={})
