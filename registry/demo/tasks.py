"""The demo seed's follow-up on the worker: the promotion history, once the demo versions are ready.

Queued by the seed (registry/demo/promotions.py) when the versions it promotes are still being
checked or evaluated, which on a first `make run` is always the case: the worker that checks them
starts after the seed. Imported by the worker through CELERY_INCLUDE (config/settings.py).
"""

import logging

from celery import shared_task

from registry.demo.promotions import MAX_RETRIES, RETRY_SECONDS, TASK_NAME, DemoVersions, demo_promotions_seed

logger = logging.getLogger(__name__)


@shared_task(name=TASK_NAME, bind=True, queue="cpu", max_retries=MAX_RETRIES, time_limit=300, soft_time_limit=280,
             ignore_result=True)  # fmt: skip
def seed_demo_promotions(self, version_ids: list[str]) -> str:
    """Seed the history when the versions are ready; look again in RETRY_SECONDS while they are not."""
    versions = DemoVersions.from_ids(version_ids)
    if versions is None:
        return "skipped: a demo version is gone"
    outcome = demo_promotions_seed(versions)
    if outcome.waiting:
        if self.request.retries >= MAX_RETRIES:
            logger.warning("%s; gave up after %d looks", outcome, MAX_RETRIES)
            return str(outcome)
        raise self.retry(countdown=RETRY_SECONDS)
    logger.info("%s", outcome)
    return str(outcome)
