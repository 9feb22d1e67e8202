"""The Celery tasks that execute approved promotions (cpu queue) and resume lost ones (beat).

Imported by the worker through CELERY_INCLUDE (config/settings.py). Execution claims the request
with a conditional update, so a redelivered message never moves an alias twice; a request left
executing by a worker that died is taken again after PROMOTION_STALE_SECONDS.
"""

from celery import shared_task

from registry.audit.context import acting_as, actor_system
from registry.services.promotions import promotion_execute, promotions_resume


@shared_task(name="promotions.execute", queue="cpu", acks_late=True, time_limit=600, soft_time_limit=540,
             ignore_result=True)  # fmt: skip
def execute_promotion(request_id: str) -> str:
    """Re-verify, re-check the gates and move the alias; the request records how it went."""
    with acting_as(actor_system("promotions")):
        request = promotion_execute(request_id)
    return request.state if request is not None else "skipped: not approved (done, taken or gone)"


@shared_task(name="promotions.resume", queue="cpu", time_limit=60, soft_time_limit=50, ignore_result=True)
def resume_promotions() -> list[str]:
    """Re-queue approved requests whose message was lost and executions left by a dead worker."""
    return promotions_resume()
