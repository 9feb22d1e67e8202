"""Celery tasks: thin callers of registry services and the worker runtime.

Each names its queue (or is routed per call) and its time limits; jobs are
claimed with a conditional update, so a redelivered message is harmless.
"""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from registry.audit.context import acting_as, actor_worker
from registry.models import Job
from registry.services.jobs import (
    job_claim,
    job_complete_compatibility,
    job_complete_evaluation,
    job_fail,
    jobs_redispatch,
    workers_reap,
)
from registry.services.transitions import job_released
from workers import execute
from workers.lifecycle import current_worker

logger = logging.getLogger(__name__)
TRANSIENT = (OperationalError, InterfaceError, ConnectionError)


# Every task sets both limits: the global soft limit (settings) is meant for long jobs and
# would exceed a short task's hard limit, which makes Celery refuse to send the task at all.


@shared_task(name="workers.ping", queue="cpu", time_limit=30, soft_time_limit=25)
def ping() -> str:
    """Round-trip check: proves a worker is consuming."""
    return "pong"


@shared_task(name="workers.reap", queue="cpu", time_limit=60, soft_time_limit=50, ignore_result=True)
def reap() -> list[str]:
    """Periodic (beat): mark silent workers lost and re-queue their jobs."""
    return workers_reap()


@shared_task(name="workers.redispatch", queue="cpu", time_limit=120, soft_time_limit=100, ignore_result=True)
def redispatch() -> list[str]:
    """Periodic (beat): re-send queued jobs that no worker claimed."""
    return jobs_redispatch()


@shared_task(
    name="workers.run_job",
    queue="gpu",  # the default; the registry routes each job to a worker's direct queue when one holds its base
    bind=True,
    acks_late=True,
    time_limit=3600,
    soft_time_limit=3300,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
    ignore_result=True,
)
def run_job(self, job_id: str) -> str:
    worker = current_worker()
    with acting_as(actor_worker(worker.hostname)):  # every event this job writes names the worker
        return _run_job(job_id, worker)


def _run_job(job_id: str, worker) -> str:
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return "skipped: not queued (done, taken or gone)"
    try:
        if job.kind == Job.Kind.COMPATIBILITY:
            outcome = execute.compatibility(job)
            recorded = job_complete_compatibility(job=job, worker=worker, **outcome)
        else:
            outcome = execute.evaluation(job)
            recorded = job_complete_evaluation(job=job, worker=worker, **outcome)
    except TRANSIENT:
        job_released(job, worker)
        raise
    except Exception as exc:  # the job failed on its merits: record why, do not retry
        logger.exception("job %s failed", job.id)
        job_fail(job=job, worker=worker, error=f"{exc.__class__.__name__}: {exc}")
        return "failed"
    return "done" if recorded else "discarded: the claim was lost to the reaper"
