"""Periodic audit work (beat): signed checkpoints of the chain head."""

from celery import shared_task

from registry.audit.services import audit_checkpoint


@shared_task(name="audit.checkpoint", queue="cpu", time_limit=120, soft_time_limit=100, ignore_result=True)
def checkpoint() -> int | None:
    """Sign the chain head (AUDIT_CHECKPOINT_INTERVAL_SECONDS); skipped when nothing was recorded since."""
    event = audit_checkpoint()
    return event.seq if event else None
