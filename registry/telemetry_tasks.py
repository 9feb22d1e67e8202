"""The telemetry roll-up (beat, cpu queue): raw windows into hours, hours into days, old days deleted.

Imported by the worker through CELERY_INCLUDE (config/settings.py). Idempotent and safe to overlap:
one transaction under an advisory lock (registry/services/telemetry.py telemetry_rollup), so a
second run at the same time skips and a redelivered one finds nothing left to move.
"""

from celery import shared_task

from registry.services.telemetry import telemetry_rollup


@shared_task(name="residency.telemetry_rollup", queue="cpu", acks_late=True, time_limit=600, soft_time_limit=540,
             ignore_result=True)  # fmt: skip
def rollup_telemetry() -> dict:
    """Roll telemetry up by age (TELEMETRY_*_RETENTION_* settings); answers the row counts moved."""
    return telemetry_rollup()
