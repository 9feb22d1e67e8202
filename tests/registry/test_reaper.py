"""The reaper: silent workers become lost; their running jobs and the jobs waiting in their
direct queues go back to the shared queue. Claims are conditional updates."""

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import Job, Worker
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.services.jobs import job_claim, job_complete_evaluation, jobs_redispatch, workers_reap
from registry.uploads import incoming_from_directory


@pytest.fixture
def version(alice, zoo):
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    with incoming_from_directory(zoo.adapters["attention"]) as files:
        return adapter_version_ingest(name="acme/bot", files=files, base_ref=base.ref, user=alice).version


def worker(name, seconds_ago):
    return Worker.objects.create(
        hostname=name,
        direct_queue=f"worker.{name}",
        queues=["gpu"],
        device_type="cpu",
        last_heartbeat_at=timezone.now() - timedelta(seconds=seconds_ago),
    )


def test_silent_workers_lose_their_jobs_to_the_shared_queue(version, django_capture_on_commit_callbacks):
    silent, alive = worker("silent@h", 600), worker("alive@h", 1)
    running = Job.objects.get(adapter_version=version)
    assert job_claim(job_id=running.id, worker=silent) is not None
    assert job_claim(job_id=running.id, worker=alive) is None  # a job is claimed once
    waiting = Job.objects.create(kind=Job.Kind.EVALUATION, adapter_version=version, queue=silent.direct_queue)

    with django_capture_on_commit_callbacks(execute=True):
        requeued = workers_reap()
        redispatched = jobs_redispatch()  # the waiting job's queue is gone with its worker

    assert requeued == [str(running.id)] and redispatched == [str(waiting.id)]
    assert Worker.objects.get(id=silent.id).state == Worker.State.LOST
    assert Worker.objects.get(id=alive.id).state == Worker.State.ONLINE
    running.refresh_from_db()
    assert running.state == Job.State.QUEUED and running.claimed_by is None and running.queue == "gpu"
    assert Job.objects.get(id=waiting.id).queue == "gpu"
    # The lost worker finishing late records nothing: its claim is gone.
    assert job_complete_evaluation(job=running, worker=silent, result={"x": 1}, base_was_resident=True) is False
    assert workers_reap() == []
    assert jobs_redispatch() == []
