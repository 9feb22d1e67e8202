"""Celery tasks: thin callers of registry services, each naming its queue and time limit."""

from celery import shared_task


@shared_task(name="workers.ping", queue="cpu", time_limit=30, acks_late=True)
def ping() -> str:
    """Round-trip check used by operators (and tests) to prove a worker is consuming."""
    return "pong"
