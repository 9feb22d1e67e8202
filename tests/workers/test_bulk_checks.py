"""Versions registered in bulk go through the worker pool exactly as single pushes do: a real
Celery worker runs their compatibility check and the evaluations of suites attached to their name."""

from contextlib import ExitStack

from registry.demo import build
from registry.models import AdapterVersion, Check, Job, Status
from registry.services.bulk import BulkItem, adapter_versions_bulk_ingest
from registry.services.suites import evaluation_suite_attach
from registry.uploads import incoming_from_directory
from tests.workers.conftest import job_done, wait_for
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
