"""The Celery task that builds large audit exports (small ones are built in the request).

Imported by the worker through CELERY_INCLUDE (config/settings.py). The build claims the export
with a conditional update, so a redelivered message does not build it twice; an export left
"running" by a worker that died is built again when its message is redelivered (acks_late).
"""

from celery import shared_task

from registry.audit.export import audit_export_build


@shared_task(
    name="audit.export",
    queue="cpu",
    acks_late=True,
    time_limit=3600,
    soft_time_limit=3300,
    ignore_result=True,
)
def build_audit_export(export_id: str) -> str:
    """Write the export's ZIP into the blob store; the export row says how it went."""
    return audit_export_build(export_id=export_id).state
