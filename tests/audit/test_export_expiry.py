"""Retention of audit export ZIPs: old ones are deleted by the beat task, their rows and events stay."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from registry.audit.export import audit_exports_expire
from registry.audit.services import audit_chain_verify
from registry.models import AuditEvent, AuditExport, Blob
from registry.storage import get_blob_store
from tests.audit.export_helpers import export_zip, record_events
from workers.celery import app

pytestmark = pytest.mark.django_db


def _age(export: AuditExport, days: int) -> None:
    AuditExport.objects.filter(pk=export.pk).update(finished_at=timezone.now() - timedelta(days=days))


def _exports(bob, tmp_path, count: int) -> list[AuditExport]:
    record_events(bob, count=3)
    for index in range(count):
        export_zip(bob, tmp_path, name=f"export-{index}.zip")
    return list(AuditExport.objects.order_by("created_at"))


def test_an_old_export_loses_its_zip_and_keeps_its_record(
    bob, bob_client, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.AUDIT_EXPORT_RETENTION_DAYS = 30
    old, recent = _exports(bob, tmp_path, 2)
    _age(old, 31)
    _age(recent, 29)
    store = get_blob_store()
    assert store.exists(old.sha256) and store.exists(recent.sha256)

    with django_capture_on_commit_callbacks(execute=True):  # the ZIP is deleted once the expiry commits
        assert audit_exports_expire() == 1
    assert audit_exports_expire() == 0  # nothing left to do: idempotent

    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.state, recent.state) == ("expired", "done")
    assert not store.exists(old.sha256) and store.exists(recent.sha256)
    [event] = AuditEvent.objects.filter(type="audit.export_expired")
    assert (event.object_id, event.actor_kind, event.before, event.after) == (
        str(old.id),
        "system",
        {"state": "done"},
        {"state": "expired"},
    )
    assert event.evidence["sha256"] == old.sha256
    audit_chain_verify()

    response = bob_client.get(f"/api/v1/audit/exports/{old.id}/download")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "export_expired"
    assert bob_client.get(f"/api/v1/audit/exports/{old.id}").json()["state"] == "expired"
    assert bob_client.get(f"/api/v1/audit/exports/{recent.id}/download").status_code == 200


def test_zero_days_keeps_every_export(bob, tmp_path, settings):
    settings.AUDIT_EXPORT_RETENTION_DAYS = 0
    [export] = _exports(bob, tmp_path, 1)
    _age(export, 10_000)
    assert audit_exports_expire() == 0
    assert get_blob_store().exists(export.sha256)


def test_bytes_a_registered_blob_still_names_are_not_deleted(
    bob, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.AUDIT_EXPORT_RETENTION_DAYS = 1
    [export] = _exports(bob, tmp_path, 1)
    Blob.objects.create(sha256=export.sha256, size=export.size)
    _age(export, 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert audit_exports_expire() == 1
    assert get_blob_store().exists(export.sha256)


def test_the_beat_schedule_runs_the_expiry_task_on_the_cpu_queue():
    import registry.audit.tasks  # noqa: F401 - what the worker's autodiscovery imports

    entry = django_settings.CELERY_BEAT_SCHEDULE["audit-exports-expire"]
    assert entry["task"] in app.tasks
    assert entry["options"]["queue"] == "cpu"
