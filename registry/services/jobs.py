"""Work for the worker pool: create jobs, route them, claim them, record results, reap.

Routing is by affinity: a job for base B goes to the direct queue of a live
worker that already holds B resident; otherwise to the shared `gpu` queue, whose
taker loads B. Claims are conditional updates, so a job runs once however often
its message is delivered, and a result is recorded only by the worker that still
holds the claim.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from registry.audit.services import audit_chain_lock, audit_record, audit_record_many, audit_subject
from registry.broker import publish_job, publish_jobs
from registry.formats.safetensors_header import TensorInfo, read_header_from
from registry.formats.tensor_index import tensor_index, tensors_from_index
from registry.models import AdapterVersion, BaseModelVersion, Check, EvaluationSuite, Job, Status, Worker
from registry.services.signatures import version_countersign
from registry.services.transitions import (
    job_cancelled,
    job_claimed,
    job_finished,
    job_released,
    version_status_move,
    worker_lost,
)
from registry.storage import get_blob_store

logger = logging.getLogger(__name__)
SHARED_GPU_QUEUE = "gpu"
GONE = (Worker.State.LOST, Worker.State.STOPPED)  # workers that consume nothing any more


# --- Headers from the blob store ------------------------------------------------------


def version_tensor_headers(version: AdapterVersion | BaseModelVersion) -> dict[str, TensorInfo]:
    """All tensors of a version's safetensors files, reading only their headers."""
    store = get_blob_store()
    tensors: dict[str, TensorInfo] = {}
    for file in version.files.filter(path__endswith=".safetensors"):
        with store.open(file.blob_id) as handle:
            tensors.update(read_header_from(handle, file.size, file.path).tensors)
    return tensors


def base_tensor_index(base: BaseModelVersion) -> dict[str, TensorInfo]:
    """A base's tensors from the index stored on its row, so an adapter push opens no base blob.

    A row registered before the index existed (or holding one this code cannot read) is read
    from its blobs this once, and the index is saved for every later push."""
    tensors = tensors_from_index(base.tensor_index)
    if tensors is None:
        tensors = version_tensor_headers(base)
        base.tensor_index = tensor_index(tensors)
        BaseModelVersion.objects.filter(pk=base.pk).update(tensor_index=base.tensor_index)
    return tensors


# --- Routing ----------------------------------------------------------------------------


# The live workers, as written SQL in the model's hostname order: the router reads them for every
# push, and this took 0.3 ms where building the same query with the ORM took 1 ms more.
_LIVE_WORKERS_SQL = (
    f"SELECT * FROM {Worker._meta.db_table} WHERE state = %s AND last_heartbeat_at >= %s ORDER BY hostname"
)


def live_workers() -> list[Worker]:
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_LOST_AFTER_SECONDS)
    return list(Worker.objects.raw(_LIVE_WORKERS_SQL, [Worker.State.ONLINE, cutoff]))


def route_job(job: Job) -> str:
    """The queue for a job: a live worker that holds its base, else the shared gpu queue.

    Among holders, the least busy; between equally busy ones, one that has the adapter attached
    already (a switch instead of a hot-swap or a load)."""
    return job_router()(job)


def job_router():
    """route_job's rule as a function of a job, with the live workers read once: for many jobs at
    once (a bulk registration's), each worker's running jobs are counted once too."""
    holders = [(worker, worker.resident_snapshot) for worker in live_workers() if SHARED_GPU_QUEUE in worker.queues]
    running: dict = {}

    def route(job: Job) -> str:
        base_id = str(job.adapter_version.base_version_id)
        ranked = []
        for worker, snapshot in holders:
            if snapshot.holds_base(base_id):
                if worker.pk not in running:
                    running[worker.pk] = worker.claimed_jobs.filter(state=Job.State.RUNNING).count()
                attached = snapshot.holds_adapter(job.adapter_version_id)
                ranked.append((running[worker.pk], not attached, worker.hostname, worker.direct_queue))
        return min(ranked)[-1] if ranked else SHARED_GPU_QUEUE

    return route


def job_dispatch(job_id) -> bool:
    """Route a queued job and publish its message; False (logged, never raised) when it could not be sent.

    A failed publish leaves the job queued with its old `dispatched_at`, so the periodic
    dispatcher sends it again; a write that already committed is never turned into an error.
    """
    try:
        job = Job.objects.select_related("adapter_version").get(id=job_id, state=Job.State.QUEUED)
        queue = route_job(job)
        publish_job(str(job.id), queue)
    except Job.DoesNotExist:
        return False  # claimed, finished or cancelled meanwhile: nothing to send
    except Exception:
        logger.exception("could not dispatch job %s; the dispatcher will send it again", job_id)
        return False
    _record_dispatch(job, queue)
    return True


@transaction.atomic
def _record_dispatch(job: Job, queue: str) -> None:
    audit_chain_lock()
    Job.objects.filter(id=job.id).update(
        queue=queue, dispatched_at=timezone.now(), dispatch_attempts=F("dispatch_attempts") + 1
    )
    audit_record(
        type="job.dispatch" if job.dispatch_attempts == 0 else "job.redispatch",
        **audit_subject(job),
        after={"queue": queue, "kind": job.kind, "attempt": job.dispatch_attempts + 1},
    )


def jobs_dispatch(job_ids: list) -> list[str]:
    """job_dispatch for many new jobs (a bulk registration's), in order: one read, one routing pass,
    one producer connection and one transaction for their dispatch events. Returns the ids sent;
    like job_dispatch it logs and never raises, and what was not sent the dispatcher sends later."""
    try:
        queued = Job.objects.select_related("adapter_version__adapter").filter(id__in=job_ids, state=Job.State.QUEUED)
        by_id = {job.id: job for job in queued}
        jobs = [by_id[job_id] for job_id in job_ids if job_id in by_id]
        route = job_router()
        queues = {job.id: route(job) for job in jobs}
    except Exception:
        logger.exception("could not dispatch %d jobs; the dispatcher will send them again", len(job_ids))
        return []
    sent = set(publish_jobs([(str(job.id), queues[job.id]) for job in jobs]))
    dispatched = [job for job in jobs if str(job.id) in sent]
    if dispatched:
        _record_dispatches(dispatched, queues)
    return [str(job.id) for job in dispatched]


@transaction.atomic
def _record_dispatches(jobs: list[Job], queues: dict) -> None:
    """_record_dispatch for many jobs: one UPDATE per queue, their events in one append."""
    audit_chain_lock()
    now = timezone.now()
    for queue in set(queues[job.id] for job in jobs):
        Job.objects.filter(id__in=[job.id for job in jobs if queues[job.id] == queue]).update(
            queue=queue, dispatched_at=now, dispatch_attempts=F("dispatch_attempts") + 1
        )
    audit_record_many(
        [
            {
                "type": "job.dispatch" if job.dispatch_attempts == 0 else "job.redispatch",
                **audit_subject(job),
                "after": {"queue": queues[job.id], "kind": job.kind, "attempt": job.dispatch_attempts + 1},
            }
            for job in jobs
        ]
    )


def job_enqueue(job: Job) -> None:
    """Send the job to its queue once the transaction that created it commits."""
    # robust: a broker failure after commit is logged by Django, never raised into the request.
    transaction.on_commit(lambda: job_dispatch(job.id), robust=True)


def job_create(*, kind: str, adapter_version: AdapterVersion, suite: EvaluationSuite | None = None, route=None) -> Job:
    """A queued job, routed and recorded as dispatched in the caller's transaction; its message is
    published once that transaction commits.

    Routing and the `job.dispatch` event ride in the transaction that creates the job (a push's),
    rather than in a second one after the commit: one commit, and no re-read of the job, per job.
    If the publish then fails, the dispatch is undone (`_publish_failed`) and the periodic
    dispatcher sends the job later, as for any lost message. `route`: a `job_router()` shared by
    the jobs of one push, so the live workers are read once for all of them."""
    audit_chain_lock()  # before the job's row, which share-locks its version: see transitions.py
    job = Job(kind=kind, adapter_version=adapter_version, suite=suite)
    queue = (route or route_job)(job)
    job.queue, job.dispatched_at, job.dispatch_attempts = queue, timezone.now(), 1
    job.save(force_insert=True)
    audit_record(type="job.dispatch", **audit_subject(job), after={"queue": queue, "kind": job.kind, "attempt": 1})
    # robust: a broker failure after commit is logged by Django, never raised into the request.
    transaction.on_commit(lambda: _publish_created(job, queue), robust=True)
    return job


def _publish_created(job: Job, queue: str) -> None:
    try:
        publish_job(str(job.id), queue)
    except Exception as exc:
        logger.exception("could not publish job %s; the dispatcher will send it again", job.id)
        _publish_failed(job, queue, exc)


@transaction.atomic
def _publish_failed(job: Job, queue: str, exc: Exception) -> None:
    """The message of a job recorded as dispatched never left: the job is undispatched again, so
    the dispatcher treats it as never sent, and the failure is on the audit trail."""
    audit_chain_lock()
    undone = Job.objects.filter(id=job.id, state=Job.State.QUEUED, dispatch_attempts=1).update(
        dispatched_at=None, dispatch_attempts=0
    )
    if undone:
        audit_record(
            type="job.dispatch_failed",
            **audit_subject(job),
            after={"queue": queue, "kind": job.kind},
            outcome="failed",
            reason=f"the message could not be published: {exc.__class__.__name__}: {exc}"[:2000],
        )


# --- Claims and results ------------------------------------------------------------------


def job_claim(*, job_id, worker: Worker) -> Job | None:
    """Take a queued job for this worker; None when it is gone, done or taken."""
    if not job_claimed(job_id, worker):
        return None
    return Job.objects.select_related(
        "adapter_version__base_version__base_model", "adapter_version__adapter", "suite"
    ).get(id=job_id)


def _refresh_adapter_status(version: AdapterVersion) -> None:
    """ready when both checks pass, rejected as soon as one fails, else checking."""
    checks = {c.kind: c for c in version.checks.all()}
    failed = [c for c in checks.values() if c.verdict == Check.Verdict.FAIL]
    if failed:
        reason = "; ".join(f"{c.kind} check: {c.reasons[0]}" for c in failed if c.reasons)
        status = Status.REJECTED
    elif {Check.Kind.STATIC, Check.Kind.DYNAMIC} <= set(checks):
        status, reason = Status.READY, ""
    else:
        status, reason = Status.CHECKING, ""
    move = version_status_move(version, status, reason)
    if move.changed and move.after == Status.READY:
        _countersign(version)


def _countersign(version: AdapterVersion) -> None:
    """Counter-sign a version that just became ready. A missing or unreadable key must not hold
    the version back: the failure is logged loudly and `manage.py countersign` signs it later."""
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the completion intact
            version_countersign(version)
    except (OSError, ImproperlyConfigured, DatabaseError) as exc:
        logger.error(
            "could not counter-sign %s: %s; run `manage.py countersign` once the key is fixed", version.ref, exc
        )


@transaction.atomic
def job_complete_compatibility(
    *, job: Job, worker: Worker, verdict: str, reasons: list[str], details: dict, base_was_resident: bool
) -> bool:
    if not job_finished(
        job,
        worker,
        Job.State.SUCCEEDED,
        base_was_resident=base_was_resident,
        result={"verdict": verdict, "reasons": reasons},
    ):
        return False
    Check.objects.update_or_create(
        adapter_version=job.adapter_version,
        kind=Check.Kind.DYNAMIC,
        defaults={"job": job, "verdict": verdict, "reasons": reasons, "details": details},
    )
    audit_record(
        type="check.dynamic",
        **audit_subject(job.adapter_version),
        after={"verdict": verdict},
        evidence={"reasons": reasons, "job": str(job.id), "ran_on": worker.hostname},
    )
    _refresh_adapter_status(job.adapter_version)
    return True


@transaction.atomic
def job_complete_evaluation(*, job: Job, worker: Worker, result: dict, base_was_resident: bool) -> bool:
    return job_finished(job, worker, Job.State.SUCCEEDED, base_was_resident=base_was_resident, result=result)


@transaction.atomic
def job_fail(*, job: Job, worker: Worker, error: str) -> bool:
    if not job_finished(job, worker, Job.State.FAILED, error=error[:4000]):
        return False
    if job.kind == Job.Kind.COMPATIBILITY:
        Check.objects.update_or_create(
            adapter_version=job.adapter_version,
            kind=Check.Kind.DYNAMIC,
            defaults={
                "job": job,
                "verdict": Check.Verdict.FAIL,
                "reasons": [f"the check could not run: {error[:500]}"],
                "details": {},
            },
        )
        _refresh_adapter_status(job.adapter_version)
    return True


# --- The reaper and the dispatcher ----------------------------------------------------------


def workers_reap() -> list[str]:
    """Mark silent workers lost and put their running jobs back in a queue; returns the job ids."""
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_LOST_AFTER_SECONDS)
    requeued = []
    with transaction.atomic():
        audit_chain_lock()  # before the worker rows: see registry/services/transitions.py
        silent = Worker.objects.select_for_update(skip_locked=True).filter(
            state=Worker.State.ONLINE, last_heartbeat_at__lt=cutoff
        )
        for worker in silent:
            if worker_lost(worker):
                logger.warning("worker %s stopped heartbeating; marked lost", worker.hostname)
        for job in Job.objects.filter(state=Job.State.RUNNING, claimed_by__state__in=GONE):
            if job_released(job):
                job_enqueue(job)
                requeued.append(str(job.id))
    return requeued


def redispatch_due(dispatched_at, dispatch_attempts: int, now) -> bool:
    """Whether a queued, unclaimed job has waited long enough to send its message again.

    The wait doubles with each re-send (60 s, 120 s, 240 s ... capped at 64x), so a job
    legitimately waiting behind long work gains a few duplicate messages, not one a minute;
    duplicates are harmless because claims are conditional.
    """
    if dispatched_at is None:
        return True
    backoff = 2 ** min(max(dispatch_attempts - 1, 0), 6)
    return now - dispatched_at >= timedelta(seconds=settings.JOB_REDISPATCH_AFTER_SECONDS * backoff)


def _dead_direct_queues() -> set[str]:
    """Direct queues nobody consumes: those of workers that are lost or stopped."""
    return set(Worker.objects.filter(state__in=GONE).values_list("direct_queue", flat=True))


def jobs_redispatch(*, limit: int = 500) -> list[str]:
    """Periodic (beat): re-send queued jobs no worker claimed; returns the ids sent.

    Covers a message lost between commit and broker (a publish that failed, a broker
    that restarted empty), a job never dispatched at all, and jobs waiting in the direct
    queue of a worker that is gone, which are re-routed at once.
    """
    now = timezone.now()
    age = timedelta(seconds=settings.JOB_REDISPATCH_AFTER_SECONDS)
    dead_queues = _dead_direct_queues()
    candidates = Job.objects.filter(state=Job.State.QUEUED, created_at__lt=now - age).exclude(
        dispatched_at__gte=now - age
    )
    orphans = Job.objects.filter(state=Job.State.QUEUED, queue__in=dead_queues)
    sent = []
    for job in (candidates | orphans).order_by("created_at")[:limit]:
        orphaned = job.queue in dead_queues
        if orphaned or redispatch_due(job.dispatched_at, job.dispatch_attempts, now):
            if job_dispatch(job.id):
                logger.warning("re-dispatched job %s (%s)", job.id, "queue gone" if orphaned else "unclaimed")
                sent.append(str(job.id))
    return sent


# --- Operator actions -----------------------------------------------------------------------


@transaction.atomic
def job_cancel(*, job: Job, reason: str = "cancelled by an operator") -> bool:
    """Cancel a job that is queued or running; a worker still running it records nothing.

    A cancelled compatibility job leaves the adapter without its dynamic check, so the
    version is rejected with the reason rather than left `checking` forever.
    """
    if not job_cancelled(job, reason):
        return False
    if job.kind == Job.Kind.COMPATIBILITY:
        Check.objects.update_or_create(
            adapter_version=job.adapter_version,
            kind=Check.Kind.DYNAMIC,
            defaults={"job": job, "verdict": Check.Verdict.FAIL, "reasons": [f"the check was cancelled: {reason}"]},
        )
        _refresh_adapter_status(job.adapter_version)
    return True
