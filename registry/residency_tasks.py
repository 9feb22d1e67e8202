"""The Celery task that re-plans serving residency (cpu queue): periodic (beat) and after alias moves.

Imported by the worker through CELERY_INCLUDE (config/settings.py). Idempotent: a re-plan reads the
fleet as it is and writes a new plan, and one asked for after an alias move skips when a plan that
started later already covers it (registry/services/residency.py residency_replan_soon).
"""

from celery import shared_task
from django.utils.dateparse import parse_datetime

from registry.audit.context import acting_as, actor_system
from registry.services.residency import PERIODIC, residency_replan


@shared_task(name="residency.replan", queue="cpu", acks_late=True, time_limit=600, soft_time_limit=540,
             ignore_result=True)  # fmt: skip
def replan(trigger: str = PERIODIC, requested_at: str | None = None) -> str:
    """Plan the fleet; `requested_at` (RFC 3339) skips when a plan started at or after it exists, and a
    periodic run that changes nothing stores nothing (residency_replan says when)."""
    since = parse_datetime(requested_at) if requested_at else None
    with acting_as(actor_system("residency")):
        plan = residency_replan(trigger=trigger, unless_planned_since=since)
    return f"plan {plan.id} ({plan.trigger})" if plan is not None else "no serving workers: nothing to plan"
