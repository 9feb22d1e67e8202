"""Periodic audit work (beat): signed checkpoints of the chain head; expiry of old export ZIPs."""

from celery import shared_task

from registry.audit.export import audit_exports_expire
from registry.audit.services import audit_checkpoint


@shared_task(name="audit.checkpoint", queue="cpu", time_limit=120, soft_time_limit=100, ignore_result=True)
def checkpoint() -> int | None:
    """Sign the chain head (AUDIT_CHECKPOINT_INTERVAL_SECONDS); skipped when nothing was recorded since."""
    event = audit_checkpoint()
    return event.seq if event else None


@shared_task(name="audit.exports_expire", queue="cpu", time_limit=600, soft_time_limit=540, ignore_result=True)
def exports_expire() -> int:
    """Delete export ZIPs older than AUDIT_EXPORT_RETENTION_DAYS; the rows and their events stay."""
    return audit_exports_expire()
