"""Fixtures for promotions: approvers, and adapter versions made ready through the workers' own services."""

import json

import pytest
from django.utils import timezone

from registry import roles
from registry.models import AdapterVersion, Job, Worker
from registry.services.jobs import job_claim, job_complete_compatibility, job_complete_evaluation
from tests.conftest import _client_for, _user
from tests.helpers import directory_files, upload
from tests.workers.conftest import pool  # noqa: F401  (real worker processes for the live test)

ADAPTERS = ("attention", "all_linear", "dora")


@pytest.fixture
def dave(db):
    return _user("dave", roles.APPROVER)


@pytest.fixture
def erin(db):
    return _user("erin", roles.APPROVER)


@pytest.fixture
def dave_client(dave):
    return _client_for(dave)


@pytest.fixture
def erin_client(erin):
    return _client_for(erin)


@pytest.fixture
def carol_client(carol):
    return _client_for(carol)


def _worker() -> Worker:
    worker, _ = Worker.objects.get_or_create(
        hostname="w-promotions",
        defaults={"direct_queue": "worker.w-promotions", "device_type": "cpu", "last_heartbeat_at": timezone.now()},
    )
    return worker


def pass_checks(version_id) -> AdapterVersion:
    """What a worker does for a new version: claim its compatibility job and pass it (ready)."""
    job = Job.objects.get(adapter_version_id=version_id, kind=Job.Kind.COMPATIBILITY, state=Job.State.QUEUED)
    worker = _worker()
    claimed = job_claim(job_id=job.id, worker=worker)
    job_complete_compatibility(
        job=claimed, worker=worker, verdict="pass", reasons=[], details={}, base_was_resident=False
    )
    return AdapterVersion.objects.get(id=version_id)


def push(client, zoo, key: str, name: str = "acme/bot", base: str = "acme/llama:v1") -> dict:
    response = upload(client, "/api/v1/adapters/", {"name": name, "base": base}, directory_files(zoo.adapters[key]))
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def ready(alice_client, zoo):
    """acme/bot v1, v2, v3 on acme/llama:v1, each ready."""
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama))
    assert base.status_code == 201
    versions = []
    for key in ADAPTERS:
        versions.append(pass_checks(push(alice_client, zoo, key)["id"]))
    return versions


def suite(client, name: str = "acme/corpus") -> str:
    content = json.dumps({"text": "hello world"}).encode() + b"\n"
    response = upload(client, "/api/v1/suites/", {"name": name, "task_type": "causal_lm"}, [("suite.jsonl", content)])
    assert response.status_code in (200, 201)
    return response.json()["ref"]


def evaluated(client, version: AdapterVersion, suite_ref: str, metrics: dict, reference: dict | None = None) -> None:
    """An evaluation of `version` on the suite, finished by a worker with these metrics."""
    queued = client.post(f"/api/v1/adapters/{version.ref}/evaluations", {"suite": suite_ref}, format="json")
    assert queued.status_code == 202, queued.content
    worker = _worker()
    job = job_claim(job_id=queued.json()["id"], worker=worker)
    result = {
        "suite": suite_ref,
        "metrics": {"adapter": metrics, **({"reference": reference["metrics"]} if reference else {})},
        "reference": {"ref": reference["ref"] if reference else None, "compared": bool(reference), "reason": "test"},
    }
    job_complete_evaluation(job=job, worker=worker, result=result, base_was_resident=True)
