"""Versions registered in bulk go through the worker pool exactly as single pushes do: a real
Celery worker runs their compatibility check and the evaluations of suites attached to their name."""

from contextlib import ExitStack
from datetime import timedelta

import httpx
from django.utils import timezone
from rest_framework.authtoken.models import Token

from registry.demo import build
from registry.models import AdapterVersion, AuditEvent, Check, Job, Status
from registry.services.bulk import BulkItem, adapter_versions_bulk_ingest
from registry.services.jobs import jobs_redispatch
from registry.services.suites import evaluation_suite_attach
from registry.uploads import incoming_from_directory
from tests.registry.test_bulk_register import bulk_body
from tests.workers.conftest import job_done, wait_for
from tests.workers.test_dispatch import ADAPTER_FILES
from tests.workers.test_worker_pool import push_base, register_suite, wait_for_status


def bulk_push(user, base, items: list[tuple[str, object]]) -> list[AdapterVersion]:
    with ExitStack() as stack:
        batch = [
            BulkItem(index=i, name=name, base=base.ref, files=stack.enter_context(incoming_from_directory(directory)))
            for i, (name, directory) in enumerate(items)
        ]
        report = adapter_versions_bulk_ingest(items=batch, user=user)
    assert [result.status for result in report.results] == ["created"] * len(items), report.results
    return [AdapterVersion.objects.get(id=result.id) for result in report.results]


def test_bulk_registered_versions_are_checked_and_evaluated_by_a_real_worker(pool, alice, zoo, tmp_path):
    base = push_base(alice, zoo.llama)
    [first, other] = bulk_push(
        alice, base, [("acme/bot", zoo.adapters["attention"]), ("acme/other", zoo.adapters["dora"])]
    )
    # Dispatched after the batch committed: sent to the shared queue, recorded once each.
    for version in (first, other):
        job = version.jobs.get()
        assert (job.state, job.queue, job.dispatch_attempts) == (Job.State.QUEUED, "gpu", 1)
    suite = register_suite(
        alice, tmp_path, [{"text": line} for line in (build.DEMO_DIR / "corpus.txt").read_text().splitlines()]
    )
    evaluation_suite_attach(suite=suite, adapter_name="acme/bot")
    [second] = bulk_push(alice, base, [("acme/bot", zoo.child_adapter)])  # the attached suite runs for it

    pool.start("w1")

    for version in (first, other, second):
        assert wait_for_status(version, pool).status == Status.READY
        dynamic = Check.objects.get(adapter_version=version, kind=Check.Kind.DYNAMIC)
        assert dynamic.verdict == Check.Verdict.PASS
        assert version.signatures.filter(is_registry=True).exists()  # counter-signed when it became ready
    evaluation = wait_for(
        lambda: job_done(Job.objects.get(adapter_version=second, kind=Job.Kind.EVALUATION).id),
        120,
        "the evaluation",
        pool,
    )
    assert evaluation.state == Job.State.SUCCEEDED, evaluation.error
    assert evaluation.result["reference"]["ref"] == first.ref


def bulk_over_http(url: str, alice, base, directories: dict) -> httpx.Response:
    token = Token.objects.get_or_create(user=alice)[0].key
    items = [{"name": name, "base": base.ref} for name in directories]
    files = [[(path, (directory / path).read_bytes()) for path in ADAPTER_FILES] for directory in directories.values()]
    body, content_type = bulk_body(items, files)
    return httpx.post(
        f"{url}/api/v1/adapters/bulk",
        content=body,
        headers={"Authorization": f"Token {token}", "Content-Type": content_type},
        timeout=60,
    )


def test_a_batch_on_the_embedded_broker_is_sent_message_by_message_and_checked(pool, alice, zoo, tmp_path):
    # The kombu filesystem transport has no publish batches: each message is sent at once.
    broker = {"CELERY_BROKER_URL": "", "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "broker")}
    url = pool.start_web(**broker)
    pool.start("w1", **broker)
    base = push_base(alice, zoo.llama)

    response = bulk_over_http(
        url, alice, base, {"acme/fs-a": zoo.adapters["attention"], "acme/fs-b": zoo.child_adapter}
    )

    assert response.status_code == 200 and response.json()["created"] == 2, response.text
    for result in response.json()["results"]:
        assert wait_for_status(AdapterVersion.objects.get(id=result["id"]), pool).status == Status.READY


def test_a_batch_while_the_broker_is_down_is_registered_and_dispatched_later(pool, alice, zoo):
    url = pool.start_web(CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # nothing listens on port 9
    base = push_base(alice, zoo.llama)

    response = bulk_over_http(
        url, alice, base, {"acme/off-a": zoo.adapters["attention"], "acme/off-b": zoo.child_adapter}
    )

    assert response.status_code == 200 and response.json()["created"] == 2, response.text
    jobs = Job.objects.filter(adapter_version__adapter__name__in=["off-a", "off-b"])
    assert [(j.state, j.dispatched_at, j.dispatch_attempts) for j in jobs] == [(Job.State.QUEUED, None, 0)] * 2
    assert not AuditEvent.objects.filter(type="job.dispatch").exists()
    # The broker is back (this process's own broker) and the jobs have waited past the threshold.
    jobs.update(created_at=timezone.now() - timedelta(minutes=5))
    assert sorted(jobs_redispatch()) == sorted(str(job.id) for job in jobs)
    assert AuditEvent.objects.filter(type="job.dispatch").count() == 2
