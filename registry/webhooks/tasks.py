"""The Celery tasks that send webhook deliveries, on the cpu queue.

Imported by the worker through CELERY_INCLUDE (config/settings.py). `webhooks.deliver` makes one try
of one delivery (a message for a delivery that is not due, or is being tried elsewhere, does
nothing); `webhooks.redeliver` is the beat sweep that sends every due delivery, so retries survive
a worker restart.
"""

from celery import shared_task

from registry.webhooks.delivery import deliveries_redeliver, delivery_attempt


@shared_task(
    name="webhooks.deliver", queue="cpu", acks_late=True, time_limit=60, soft_time_limit=50, ignore_result=True
)
def deliver(delivery_id: str) -> str | None:
    """One try of a due delivery; its state after the try, or None when there was nothing to do."""
    delivery = delivery_attempt(delivery_id)
    return delivery.state if delivery else None


@shared_task(name="webhooks.redeliver", queue="cpu", time_limit=60, soft_time_limit=50, ignore_result=True)
def redeliver() -> int:
    """Queue the deliveries that are due (WEBHOOK_REDELIVER_INTERVAL_SECONDS)."""
    return deliveries_redeliver()
