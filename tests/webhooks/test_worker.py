"""A real Celery worker process (cpu queue only) delivers what a committed change announced, retrying a 500."""

import pytest
from django.db import transaction

from registry.models import WebhookDelivery
from registry.webhooks.services import webhook_emit
from tests.workers.conftest import WorkerPool, purge_queues, wait_for


@pytest.fixture
def cpu_worker(transactional_db, tmp_path):
    purge_queues()
    workers = WorkerPool(tmp_path)
    # Only the cpu queue: the delivery task must be routed there. A 1 s retry base keeps the retry quick.
    workers.start("webhooks-cpu", queues="cpu", WEBHOOK_RETRY_BASE_SECONDS="1")
    yield workers
    workers.stop()
    purge_queues()


def test_a_worker_delivers_a_committed_event_and_retries_after_a_500(cpu_worker, webhook, receiver):
    receiver.statuses = [500]
    with transaction.atomic():
        (delivery,) = webhook_emit("alias.moved", {"adapter": "acme/bot", "alias": "production"})
    first, second = receiver.wait_for(2)
    assert first.verified and second.verified and first.body == second.body
    assert first.json["event"] == "alias.moved" and first.json["id"] == str(delivery.id)

    def succeeded():
        row = WebhookDelivery.objects.get(pk=delivery.pk)
        return row if row.state == "succeeded" else None

    row = wait_for(succeeded, 30, "the delivery to be recorded as succeeded", cpu_worker)
    assert [(a.number, a.status_code) for a in row.attempt_log.order_by("number")] == [(1, 500), (2, 200)]
