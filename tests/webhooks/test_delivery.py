"""Deliveries: announced in the change's transaction, signed, retried from the database, given up on.

These call the delivery function the Celery task calls (delivery_attempt) directly; test_worker.py
runs it in a real worker process.
"""

import json
import random
import socket
import uuid
from datetime import timedelta

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from registry.models import WebhookDelivery
from registry.webhooks.delivery import (
    ABANDONED,
    USER_AGENT,
    _claim,
    deliveries_redeliver,
    delivery_attempt,
    retry_wait_seconds,
)
from registry.webhooks.services import webhook_create, webhook_emit, webhook_update
from tests.webhooks.conftest import SECRET
from tests.workers.conftest import purge_queues

PAYLOAD = {"ref": "acme/bot:v3", "status": "ready"}


def _emitted(event="version.ready", payload=PAYLOAD) -> list[WebhookDelivery]:
    with transaction.atomic():
        return webhook_emit(event, payload)


def _make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def _log(delivery: WebhookDelivery) -> list[tuple]:
    return [(a.number, a.status_code, a.error) for a in delivery.attempt_log.order_by("number")]


def test_it_delivers_a_signed_body_to_the_receiver(webhook, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        (delivery,) = _emitted()
    assert len(callbacks) == 1  # the message to the cpu queue, sent once the change commits
    delivery = delivery_attempt(delivery.id)

    (received,) = receiver.received
    assert received.verified, "the signature checks out with the webhook's secret"
    assert received.json == {
        "id": str(delivery.id),
        "event": "version.ready",
        "created_at": delivery.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": PAYLOAD,
    }
    headers = received.headers
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == USER_AGENT
    assert (headers["X-Registry-Event"], headers["X-Registry-Delivery"]) == ("version.ready", str(delivery.id))
    assert delivery.state == "succeeded" and delivery.attempts == 1 and delivery.delivered_at
    assert (delivery.last_status_code, delivery.response_snippet) == (200, '{"ok": true}')
    assert _log(delivery) == [(1, 200, "")]
    assert delivery_attempt(delivery.id) is None  # done: a redelivered message sends nothing


def test_a_body_signed_with_another_secret_does_not_verify(receiver, carol):
    receiver.secret = "the-receivers-own-secret"
    hook, _ = webhook_create(url=receiver.url, events=["version.ready"], secret=SECRET, user=carol)
    (delivery,) = _emitted()
    delivery_attempt(delivery.id)
    assert not receiver.received[0].verified


def test_a_500_is_retried_with_backoff_then_succeeds(webhook, receiver, settings):
    receiver.statuses = [500]
    receiver.answer_body = b"<b>down</b>"
    (delivery,) = _emitted()
    before = timezone.now()
    delivery = delivery_attempt(delivery.id)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "HTTP 500" and delivery.response_snippet == "<b>down</b>"
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 8 <= wait <= 12.5, "the first retry waits 10 s with ±20% jitter"
    assert delivery_attempt(delivery.id) is None, "not due yet"

    _make_due(delivery)
    delivery = delivery_attempt(delivery.id)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    assert _log(delivery) == [(1, 500, "HTTP 500"), (2, 200, "")]
    first, second = receiver.received
    assert first.body == second.body and first.headers["X-Registry-Delivery"] == second.headers["X-Registry-Delivery"]
    assert first.verified and second.verified


def test_it_gives_up_after_the_last_attempt(webhook, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    receiver.statuses = [503] * 10
    (delivery,) = _emitted()
    while delivery_attempt(delivery.id) is not None:
        pass
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert _log(delivery) == [(1, 503, "HTTP 503"), (2, 503, "HTTP 503"), (3, 503, "HTTP 503")]
    assert len(receiver.received) == 3


def test_retry_waits_grow_threefold_with_jitter_and_a_cap():
    rng = random.Random(7)
    waits = [retry_wait_seconds(n, base=10, rng=rng) for n in range(1, 6)]
    for wait, nominal in zip(waits, (10, 30, 90, 270, 810), strict=True):
        assert nominal * 0.8 <= wait <= nominal * 1.2
    assert retry_wait_seconds(30, base=10, rng=rng) <= 6 * 3600 * 1.2


def test_no_answer_in_time_and_a_refused_connection_are_retried(webhook, receiver, settings, carol):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.delay = 1.5
    (slow,) = _emitted()
    slow = delivery_attempt(slow.id)
    assert (slow.state, slow.last_status_code, slow.last_error) == ("pending", None, "no answer within 1 s")
    assert slow.duration_ms < 1400

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    webhook_update(webhook=webhook, changes={"url": f"http://127.0.0.1:{closed}/hooks"})
    (refused,) = _emitted()
    refused = delivery_attempt(refused.id)
    assert refused.state == "pending" and refused.last_error.startswith("could not connect")


def test_redirects_are_not_followed(webhook, receiver):
    receiver.statuses = [302]
    receiver.headers = {"Location": receiver.url + "/elsewhere"}
    (delivery,) = _emitted()
    delivery = delivery_attempt(delivery.id)
    assert delivery.state == "pending" and delivery.last_error == "HTTP 302 (redirects are not followed)"
    assert len(receiver.received) == 1


def test_only_the_first_kibibyte_of_the_answer_is_kept(webhook, receiver):
    receiver.answer_body = b"x" * 5000
    (delivery,) = _emitted()
    assert delivery_attempt(delivery.id).response_snippet == "x" * 1024


def test_a_rolled_back_change_announces_nothing(webhook, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            webhook_emit("alias.moved", {"alias": "production"})
            raise RuntimeError("the move failed after announcing it")
    assert callbacks == [] and not WebhookDelivery.objects.exists()


def test_only_active_subscribed_webhooks_get_an_event(receiver, carol):
    everything, _ = webhook_create(url=receiver.url, events=["*"], secret=SECRET, user=carol)
    moves, _ = webhook_create(url=receiver.url, events=["alias.moved"], secret=SECRET, user=carol)
    off, _ = webhook_create(url=receiver.url, events=["*"], secret=SECRET, active=False, user=carol)
    assert {d.webhook_id for d in _emitted("version.ready")} == {everything.id}
    assert {d.webhook_id for d in _emitted("alias.moved", {})} == {everything.id, moves.id}
    with pytest.raises(ValueError):
        webhook_emit("alias.renamed", {})


def test_a_webhook_deactivated_after_the_event_is_not_sent_it(webhook, receiver):
    (delivery,) = _emitted()
    webhook_update(webhook=webhook, changes={"active": False})
    delivery = delivery_attempt(delivery.id)
    assert delivery.state == "failed" and delivery.last_error == "not sent: the webhook was deactivated"
    assert receiver.received == []


def test_two_claims_of_one_delivery_exactly_one_wins(webhook):
    (delivery,) = _emitted()
    now = timezone.now()
    assert _claim(delivery.id, now) is not None
    assert _claim(delivery.id, now) is None


def test_a_try_whose_worker_died_is_claimed_again_after_its_claim_runs_out(webhook, receiver):
    (delivery,) = _emitted()
    _claim(delivery.id, timezone.now())  # a worker took it and died before recording an answer
    assert delivery_attempt(delivery.id) is None, "the claim still holds"
    _make_due(delivery)
    delivery = delivery_attempt(delivery.id)
    assert delivery.state == "succeeded" and _log(delivery) == [(1, None, ABANDONED), (2, 200, "")]


def test_the_sweep_queues_due_deliveries_and_fails_those_without_tries_left(webhook, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    purge_queues()
    due, later, exhausted = _emitted(), _emitted(), _emitted()
    WebhookDelivery.objects.filter(pk=later[0].pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    WebhookDelivery.objects.filter(pk=exhausted[0].pk).update(state="delivering", attempts=2)
    try:
        assert deliveries_redeliver(now=timezone.now() + timedelta(minutes=5)) == 1
    finally:
        purge_queues()
    assert WebhookDelivery.objects.get(pk=due[0].pk).state == "pending"
    gave_up = WebhookDelivery.objects.get(pk=exhausted[0].pk)
    assert gave_up.state == "failed" and gave_up.last_error.startswith("gave up: 2 tries")


def test_uuids_and_times_in_a_payload_are_sent_as_strings(webhook, receiver):
    moment = timezone.now()
    (delivery,) = _emitted("alias.moved", {"id": uuid.UUID(int=1), "at": moment})
    delivery_attempt(delivery.id)
    assert json.loads(receiver.received[0].body)["data"] == {
        "id": "00000000-0000-0000-0000-000000000001",
        "at": DjangoJSONEncoder().default(moment),
    }
