"""Operators see stuck work: GET /api/v1/jobs/ with filters, and admins re-dispatch or
cancel a job from the API or the Workers page."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.models import Job, Status
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory
from tests.workers.conftest import purge_queues


@pytest.fixture
def versions(alice, zoo):
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    pushed = []
    for key in ("attention", "dora"):
        with incoming_from_directory(zoo.adapters[key]) as files:
            pushed.append(
                adapter_version_ingest(name=f"acme/{key}", files=files, base_ref=base.ref, user=alice).version
            )
    yield pushed
    purge_queues()


@pytest.fixture
def carol_client(carol):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=carol).key}")
    return client


def test_it_lists_jobs_with_filters_in_a_cursor_envelope(bob_client, versions):
    old = Job.objects.get(adapter_version=versions[0])
    Job.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(hours=2))
    Job.objects.filter(adapter_version=versions[1]).update(state=Job.State.RUNNING)

    every = bob_client.get("/api/v1/jobs/").json()
    assert set(every) == {"next", "previous", "results"}
    assert len(every["results"]) == 2
    assert {"dispatched_at", "dispatch_attempts", "attempts", "queue"} <= set(every["results"][0])

    queued = bob_client.get("/api/v1/jobs/", {"state": "queued"}).json()["results"]
    assert [job["id"] for job in queued] == [str(old.id)]
    stuck = bob_client.get("/api/v1/jobs/", {"older_than": 3600}).json()["results"]
    assert [job["id"] for job in stuck] == [str(old.id)]
    of_dora = bob_client.get("/api/v1/jobs/", {"adapter": versions[1].ref, "kind": "compatibility"}).json()
    assert [job["adapter"] for job in of_dora["results"]] == [versions[1].ref]


def test_it_refuses_bad_filters_with_a_code(bob_client, db):
    response = bob_client.get("/api/v1/jobs/", {"state": "sleeping"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    response = bob_client.get("/api/v1/jobs/", {"adapter": "acme/nothing:v1"})
    assert response.status_code == 404


def test_an_admin_redispatches_a_queued_job(carol_client, versions):
    job = Job.objects.get(adapter_version=versions[0])
    before = job.dispatch_attempts

    response = carol_client.post(f"/api/v1/jobs/{job.id}/redispatch")

    assert response.status_code == 200, response.json()
    assert response.json()["dispatch_attempts"] == before + 1
    assert response.json()["queue"] == "gpu"


def test_only_queued_jobs_are_redispatched_and_only_by_admins(carol_client, alice_client, versions):
    job = Job.objects.get(adapter_version=versions[0])
    assert alice_client.post(f"/api/v1/jobs/{job.id}/redispatch").status_code == 403
    Job.objects.filter(id=job.id).update(state=Job.State.SUCCEEDED)
    response = carol_client.post(f"/api/v1/jobs/{job.id}/redispatch")
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_not_queued"


def test_an_admin_cancels_a_job_once_and_the_version_is_rejected_with_the_reason(carol_client, alice_client, versions):
    job = Job.objects.get(adapter_version=versions[0])
    assert alice_client.post(f"/api/v1/jobs/{job.id}/cancel").status_code == 403

    response = carol_client.post(f"/api/v1/jobs/{job.id}/cancel", {"reason": "base retired"}, format="json")

    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    versions[0].refresh_from_db()
    assert versions[0].status == Status.REJECTED and "base retired" in versions[0].status_reason
    again = carol_client.post(f"/api/v1/jobs/{job.id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"


def test_the_workers_page_lists_waiting_jobs_and_admins_act_on_them(client, carol, alice, versions):
    job = Job.objects.get(adapter_version=versions[0])
    client.force_login(alice)
    page = client.get("/workers/").content.decode()
    assert str(job.id) in page and versions[0].ref in page and "Cancel" not in page
    assert client.post(f"/jobs/{job.id}/cancel").status_code == 403

    client.force_login(carol)
    page = client.get("/workers/").content.decode()
    assert "Re-dispatch" in page and "Cancel" in page
    response = client.post(f"/jobs/{job.id}/cancel", follow=True)
    assert "was cancelled" in response.content.decode()
    assert Job.objects.get(id=job.id).state == Job.State.CANCELLED
    assert str(job.id) not in client.get("/workers/").content.decode()
