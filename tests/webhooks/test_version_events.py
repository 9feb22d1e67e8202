"""version.ready and version.rejected, announced where a version's status moves (the check path)."""

from django.utils.timezone import now

from registry.models import AdapterVersion, Job, Worker
from registry.services.jobs import job_claim, job_complete_compatibility
from registry.webhooks.delivery import delivery_attempt
from tests.helpers import directory_files, upload


def _pushed(client, zoo, name: str) -> AdapterVersion:
    """A base and an adapter pushed through the API: the static check passed, the dynamic one queued."""
    if client.get("/api/v1/bases/acme/llama:v1").status_code != 200:
        assert upload(client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).status_code == 201
    files = directory_files(zoo.adapters["attention"] if name == "acme/bot" else zoo.child_adapter)
    response = upload(client, "/api/v1/adapters/", {"name": name, "base": "acme/llama:v1"}, files)
    assert response.status_code == 201, response.json()
    return AdapterVersion.objects.select_related("adapter").get(id=response.json()["id"])


def _dynamic_check(version: AdapterVersion, worker: Worker, verdict: str, reasons: list[str]) -> None:
    """What a worker does when its compatibility check finishes (workers/execute.py)."""
    job = job_claim(job_id=Job.objects.get(adapter_version=version, kind=Job.Kind.COMPATIBILITY).id, worker=worker)
    job_complete_compatibility(
        job=job, worker=worker, verdict=verdict, reasons=reasons, details={}, base_was_resident=False
    )


def test_a_version_that_passes_its_checks_is_announced_ready_and_one_that_fails_rejected(
    alice_client, zoo, webhook, receiver
):
    worker = Worker.objects.create(hostname="w1", direct_queue="worker.w1", device_type="cpu", last_heartbeat_at=now())
    ready = _pushed(alice_client, zoo, "acme/bot")
    rejected = _pushed(alice_client, zoo, "acme/child")
    assert not webhook.deliveries.exists(), "received -> checking is not announced"

    _dynamic_check(ready, worker, "pass", [])
    _dynamic_check(rejected, worker, "fail", ["logits differ"])

    deliveries = {d.event: d for d in webhook.deliveries.all()}
    assert set(deliveries) == {"version.ready", "version.rejected"}
    for delivery in deliveries.values():
        delivery_attempt(delivery.id)
    bodies = {r.json["event"]: r.json["data"] for r in receiver.wait_for(2)}
    ready.refresh_from_db()
    assert bodies["version.ready"] == {
        "id": str(ready.id),
        "ref": "acme/bot:v1",
        "digest_ref": f"acme/bot@sha256:{ready.digest}",
        "namespace": "acme",
        "adapter": "acme/bot",
        "status": "ready",
        "status_before": "checking",
        "reason": "",
    }
    assert bodies["version.rejected"]["ref"] == "acme/child:v1"
    assert bodies["version.rejected"]["status"] == "rejected"
    assert "logits differ" in bodies["version.rejected"]["reason"]
    assert all(r.verified for r in receiver.received)
