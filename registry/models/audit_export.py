"""Audit exports: one row per requested export ZIP (registry/audit/export.py builds it)."""

import uuid

from django.conf import settings
from django.db import models


class AuditExport(models.Model):
    """An export of a slice of the audit chain, from its request to its downloadable ZIP.

    The slice is fixed when it is requested: the filters, and `up_to_seq`, the last event recorded
    before the request (its own `audit.export` event comes right after), so building it later on
    a worker gives the same events. The ZIP lives in the blob store under its SHA-256.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        EXPIRED = "expired"  # done, and its ZIP deleted after AUDIT_EXPORT_RETENTION_DAYS

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_name = models.CharField(max_length=150, blank=True, help_text="as it was at the time")
    registry_url = models.CharField(max_length=300, blank=True, help_text="the registry's URL as the request named it")
    filters = models.JSONField(default=dict, help_text="after, before, namespace, adapter, type, actor, ...")
    up_to_seq = models.BigIntegerField(help_text="the chain's last event when the export was requested")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    first_seq = models.BigIntegerField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    events_total = models.BigIntegerField(default=0, help_text="events in the range, exported or omitted")
    events_done = models.BigIntegerField(default=0, help_text="events of the range written so far")
    events_exported = models.BigIntegerField(default=0)
    events_omitted = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, help_text="of the ZIP, which the blob store keeps")
    size = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"audit export {self.id} ({self.state})"

    @property
    def progress(self) -> float:
        """0.0 to 1.0: the share of the range written (1.0 once done)."""
        if self.state == self.State.DONE:
            return 1.0
        return min(self.events_done / self.events_total, 1.0) if self.events_total else 0.0
