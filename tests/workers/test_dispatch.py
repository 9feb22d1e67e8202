"""Job dispatch that cannot lose work, in the process setup users run: gunicorn with
threads publishing after commit, a broker that is down, messages that are lost, and a
real beat process whose dispatcher sends them again. Real workers claim every job once."""

import threading
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from registry.models import AuditEvent, Job, Worker
from registry.services.jobs import job_cancel, jobs_redispatch, redispatch_due
from tests.workers.conftest import job_done, purge_queues, wait_for
from tests.workers.test_worker_pool import push_adapter, push_base

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def push_over_http(url: str, token: str, directory, name: str, base_ref: str) -> httpx.Response:
    files = [("file", (path, (directory / path).read_bytes(), "application/octet-stream")) for path in ADAPTER_FILES]
    return httpx.post(
        f"{url}/api/v1/adapters/",
        data={"name": name, "base": base_ref},
        files=files,
        headers={"Authorization": f"Token {token}"},
        timeout=60,
    )


def test_concurrent_pushes_through_threaded_gunicorn_on_the_embedded_broker(pool, alice, zoo, tmp_path):
    # The embedded default: the kombu filesystem transport, no broker server, as `make run` has it.
    broker = {"CELERY_BROKER_URL": "", "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "broker")}
    url = pool.start_web(**broker)
    worker = pool.start("w1", **broker)
    base = push_base(alice, zoo.llama)
    token = Token.objects.create(user=alice).key
    # A first push loads the base on the worker, so the pushes below are routed to its direct
    # queue (worker.w1@host), which the web processes declare and publish to themselves.
    first = push_over_http(url, token, zoo.adapters["attention"], "acme/concurrent-first", base.ref)
    assert first.status_code == 201, first.text
    wait_for(lambda: Worker.objects.get(hostname=worker).holds_base(str(base.id)), 120, "the base to be resident", pool)
    adapters = list(zoo.adapters.values())
    responses: list[httpx.Response] = []

    def push(index: int) -> None:
        directory = adapters[index % len(adapters)]
        responses.append(push_over_http(url, token, directory, f"acme/concurrent-{index}", base.ref))

    threads = [threading.Thread(target=push, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.status_code for r in responses) == [201] * 12, [r.text[:300] for r in responses]
    jobs = Job.objects.filter(adapter_version__adapter__name__regex=r"^concurrent-\d+$")
    assert jobs.count() == 12
    assert {job.queue for job in jobs} == {f"worker.{worker}"}
    assert all(job.dispatched_at and job.dispatch_attempts == 1 for job in jobs)
    for job in jobs:
        done = wait_for(lambda job=job: job_done(job.id), 240, f"job {job.id}", pool)
        assert done.state == Job.State.SUCCEEDED and done.attempts == 1, done.error
    assert "Traceback" not in (tmp_path / "web.log").read_text()


def test_a_push_while_the_broker_is_down_succeeds_and_is_dispatched_later(pool, alice, zoo):
    url = pool.start_web(CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # nothing listens on port 9
    base = push_base(alice, zoo.llama)
    token = Token.objects.create(user=alice).key

    response = push_over_http(url, token, zoo.adapters["attention"], "acme/offline", base.ref)

    assert response.status_code == 201, response.text
    job = Job.objects.get(adapter_version__adapter__name="offline")
    assert job.state == Job.State.QUEUED and job.dispatched_at is None and job.dispatch_attempts == 0
    # Routed and recorded in the push's transaction, then undone when the publish failed.
    events = AuditEvent.objects.filter(object_id=str(job.id)).order_by("seq")
    assert [(e.type, e.outcome) for e in events] == [("job.dispatch", "success"), ("job.dispatch_failed", "failed")]
    assert events[1].reason.startswith("the message could not be published: "), events[1].reason
    # The broker is back (this process's own broker) and the job has waited past the threshold.
    Job.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(minutes=5))
    assert jobs_redispatch() == [str(job.id)]
    job.refresh_from_db()
    assert job.dispatch_attempts == 1 and job.dispatched_at is not None


def test_a_job_whose_message_is_lost_is_redispatched_by_beat_and_runs_once(pool, alice, zoo):
    base = push_base(alice, zoo.llama)
    version = push_adapter(alice, zoo.adapters["attention"], base)
    job = Job.objects.get(adapter_version=version)
    assert job.dispatch_attempts == 1
    purge_queues()  # the message is lost: a broker restarted without persistence, say

    fast = {"JOB_REDISPATCH_AFTER_SECONDS": "2", "JOB_REDISPATCH_INTERVAL_SECONDS": "1"}
    pool.start("w1", **fast)
    time.sleep(3)
    assert Job.objects.get(id=job.id).state == Job.State.QUEUED  # nothing delivers it without the dispatcher
    pool.start_beat(**fast)

    done = wait_for(lambda: job_done(job.id), 120, "the re-dispatched job to run", pool)
    assert done.state == Job.State.SUCCEEDED and done.attempts == 1
    assert done.dispatch_attempts >= 2


@pytest.mark.django_db
def test_redispatch_waits_longer_after_each_resend(settings):
    settings.JOB_REDISPATCH_AFTER_SECONDS = 60
    now = timezone.now()
    assert redispatch_due(None, 0, now)
    assert not redispatch_due(now - timedelta(seconds=59), 1, now)
    assert redispatch_due(now - timedelta(seconds=60), 1, now)
    assert not redispatch_due(now - timedelta(seconds=119), 2, now)
    assert redispatch_due(now - timedelta(seconds=120), 2, now)
    assert redispatch_due(now - timedelta(seconds=64 * 60), 50, now)  # capped


def test_fresh_claimed_and_cancelled_jobs_are_left_alone_and_orphans_are_rerouted(pool, alice, zoo, settings):
    base = push_base(alice, zoo.llama)
    versions = [push_adapter(alice, zoo.adapters[key], base, name=f"acme/{key}") for key in ("attention", "dora")]
    fresh, orphan = (Job.objects.get(adapter_version=v) for v in versions)
    gone = Worker.objects.create(
        hostname="gone@h",
        direct_queue="worker.gone@h",
        device_type="cpu",
        state=Worker.State.LOST,
        last_heartbeat_at=timezone.now(),
    )
    Job.objects.filter(id=orphan.id).update(queue=gone.direct_queue)
    assert jobs_redispatch() == [str(orphan.id)]  # at once, however young
    assert Job.objects.get(id=orphan.id).queue == "gpu"

    Job.objects.filter(id=fresh.id).update(created_at=timezone.now() - timedelta(minutes=5))
    assert job_cancel(job=fresh, reason="superseded")
    assert jobs_redispatch() == []
    fresh.refresh_from_db()
    assert fresh.state == Job.State.CANCELLED and fresh.adapter_version.status == "rejected"
    purge_queues()
