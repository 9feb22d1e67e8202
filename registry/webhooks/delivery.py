"""Sending a delivery: claim it, sign it, POST it, record the answer, schedule the next try.

Retries live in the database, not in a worker's memory: a failed try sets `next_attempt_at`, and
the redelivery sweep (a beat task) sends every delivery that is due, so a worker restart loses
nothing. A short wait is also sent as a countdown message, the fast path; whichever message comes
first claims the delivery with a conditional UPDATE and the others find nothing to do, so one
delivery is never sent twice at the same time. It can be sent twice in sequence (a worker that dies
after the receiver answered, before the answer was recorded): deliveries are at least once, and
receivers de-duplicate on `X-Registry-Delivery`.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from registry.audit.services import rfc3339
from registry.broker import publish_task
from registry.models import WebhookAttempt, WebhookDelivery
from registry.models.webhooks import RESPONSE_SNIPPET_BYTES

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.deliver"
QUEUE = "cpu"
USER_AGENT = "adapter-registry-webhooks/1"
CONNECT_TIMEOUT_SECONDS = 5
# A claim outlasts the deliver task's hard time limit (60 s): while it holds, no one else sends.
CLAIM = timedelta(seconds=120)
RETRY_FACTOR = 3
RETRY_JITTER = 0.2  # each wait is drawn from ±20% around base x 3^(n-1), so receivers are not hit in step
MAX_RETRY_WAIT_SECONDS = 6 * 3600
# Waits up to this long are also sent as a countdown message; longer ones are left to the sweep
# (a countdown message is held in a worker's memory until it is due).
FAST_RETRY_MAX_SECONDS = 300
# The sweep leaves a due delivery alone this long, for the message already sent for it.
SWEEP_GRACE = timedelta(seconds=10)
SWEEP_BATCH = 500
ABANDONED = "no answer recorded: the worker stopped during this try"

State = WebhookDelivery.State


@dataclass(frozen=True)
class Answer:
    """How one try went: the receiver's status code (None when there was no answer) and why it failed."""

    status_code: int | None
    error: str
    snippet: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# --- What is sent --------------------------------------------------------------------------------


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The JSON body: the same bytes on every try of one delivery."""
    body = {
        "id": str(delivery.id),
        "event": delivery.event,
        "created_at": rfc3339(delivery.created_at),
        "data": delivery.payload,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 with the webhook's secret over "<timestamp>." and the body."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def delivery_headers(delivery: WebhookDelivery, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Registry-Event": delivery.event,
        "X-Registry-Delivery": str(delivery.id),
        "X-Registry-Timestamp": str(timestamp),
        "X-Registry-Signature": signature(delivery.webhook.secret, timestamp, body),
    }


def retry_wait_seconds(attempt: int, *, base: float | None = None, rng=random) -> float:
    """How long to wait after failed try number `attempt`: 10, 30, 90, 270 s, ... (±20%), capped at 6 h."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS if base is None else base
    wait = min(base * RETRY_FACTOR ** (attempt - 1), MAX_RETRY_WAIT_SECONDS)
    return wait * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)


# --- Sending -------------------------------------------------------------------------------------


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST once, with `timeout` seconds in all (connecting: at most 5 of them), no redirects followed."""
    started = time.monotonic()

    def answer(status_code, error, snippet=b""):
        text = snippet.decode("utf-8", "replace").replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
        return Answer(status_code, error, text, int((time.monotonic() - started) * 1000))

    try:
        status_code, snippet = asyncio.run(asyncio.wait_for(_post(url, body, headers, timeout), timeout))
    except (TimeoutError, httpx.TimeoutException):
        return answer(None, f"no answer within {timeout:g} s")
    except httpx.ConnectError as exc:
        return answer(None, f"could not connect: {exc}"[:2000])
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return answer(None, f"{type(exc).__name__}: {exc}"[:2000])
    if 200 <= status_code < 300:
        return answer(status_code, "", snippet)
    why = " (redirects are not followed)" if 300 <= status_code < 400 else ""
    return answer(status_code, f"HTTP {status_code}{why}", snippet)


async def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """The status code and the first 1 KiB of the answer (the rest is not read)."""
    limits = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT_SECONDS, timeout))
    async with httpx.AsyncClient(timeout=limits, follow_redirects=False) as client:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            snippet = bytearray()
            try:
                async for chunk in response.aiter_bytes():
                    snippet += chunk
                    if len(snippet) >= RESPONSE_SNIPPET_BYTES:
                        break
            except (httpx.DecodingError, httpx.ReadError, httpx.RemoteProtocolError):
                pass  # the status code is the answer; a body cut short or undecodable is only less to show
            return response.status_code, bytes(snippet[:RESPONSE_SNIPPET_BYTES])


# --- One try: claim, send, record ----------------------------------------------------------------


def delivery_attempt(delivery_id) -> WebhookDelivery | None:
    """Make the next try of a delivery that is due; None when it is not (done, not yet due, or being
    tried elsewhere). A failed try is scheduled again, or the delivery fails after the last one."""
    now = timezone.now()
    claimed = _claim(delivery_id, now)
    if claimed is None:
        return None
    delivery, number = claimed
    webhook = delivery.webhook
    if not webhook.active and delivery.event != "webhook.test":
        _record(delivery, number, Answer(None, "not sent: the webhook was deactivated", "", 0), final=True)
    else:
        body = delivery_body(delivery)
        timestamp = int(time.time())
        headers = delivery_headers(delivery, body, timestamp)
        answer = http_post(webhook.url, body, headers, settings.WEBHOOK_TIMEOUT_SECONDS)
        wait = _record(delivery, number, answer)
        if wait is not None and wait <= FAST_RETRY_MAX_SECONDS:
            delivery_enqueue(delivery.id, countdown=wait)
    return WebhookDelivery.objects.select_related("webhook").get(pk=delivery.pk)


@transaction.atomic
def _claim(delivery_id, now) -> tuple[WebhookDelivery, int] | None:
    """Take a due delivery for one try (a conditional UPDATE: of two takers exactly one gets it)."""
    taken = WebhookDelivery.objects.filter(
        id=delivery_id,
        state__in=[State.PENDING, State.DELIVERING],  # delivering: a claim that ran out (its worker died)
        next_attempt_at__lte=now,
        attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
    ).update(state=State.DELIVERING, attempts=F("attempts") + 1, next_attempt_at=now + CLAIM)
    if not taken:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").get(id=delivery_id)
    delivery.attempt_log.filter(finished_at__isnull=True).update(finished_at=now, error=ABANDONED)
    WebhookAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=now)
    return delivery, delivery.attempts


@transaction.atomic
def _record(delivery: WebhookDelivery, number: int, answer: Answer, *, final: bool = False) -> float | None:
    """Write the try's answer and the delivery's next state; the wait before the next try, if any."""
    now = timezone.now()
    WebhookAttempt.objects.filter(delivery=delivery, number=number).update(
        finished_at=now, status_code=answer.status_code, error=answer.error, duration_ms=answer.duration_ms
    )
    fields = {
        "last_status_code": answer.status_code,
        "last_error": answer.error,
        "response_snippet": answer.snippet,
        "duration_ms": answer.duration_ms,
    }
    wait = None
    if answer.succeeded:
        fields.update(state=State.SUCCEEDED, delivered_at=now, next_attempt_at=None)
    elif final or number >= settings.WEBHOOK_MAX_ATTEMPTS:
        fields.update(state=State.FAILED, next_attempt_at=None)
    else:
        wait = retry_wait_seconds(number)
        fields.update(state=State.PENDING, next_attempt_at=now + timedelta(seconds=wait))
    # Only while this try still holds the claim: one that ran out may have been taken by another try.
    held = WebhookDelivery.objects.filter(id=delivery.id, state=State.DELIVERING, attempts=number).update(**fields)
    return wait if held else None


# --- Messages and the sweep ----------------------------------------------------------------------


def delivery_enqueue(delivery_id, *, countdown: float | None = None) -> bool:
    """Send a deliver message to the cpu queue; False (logged, never raised) when the broker did not
    take it: the delivery is in the database, and the sweep sends it later."""
    options = {"countdown": countdown} if countdown else {}
    try:
        publish_task(DELIVER_TASK, [str(delivery_id)], QUEUE, **options)
    except Exception:
        logger.exception("could not queue webhook delivery %s; the redelivery sweep will send it", delivery_id)
        return False
    return True


def deliveries_redeliver(*, now=None) -> int:
    """Queue every delivery that is due (and was not taken by its own message); how many were queued.

    Run by beat every WEBHOOK_REDELIVER_INTERVAL_SECONDS: this is what makes retries survive a
    worker restart. A delivery with no tries left fails here.
    """
    now = now or timezone.now()
    _fail_exhausted(now)
    due = (
        WebhookDelivery.objects.filter(
            state__in=[State.PENDING, State.DELIVERING], next_attempt_at__lte=now - SWEEP_GRACE
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    queued = 0
    for delivery_id in due:
        if not delivery_enqueue(delivery_id):
            break  # the broker is down: the next sweep tries again
        queued += 1
    return queued


def _fail_exhausted(now) -> None:
    """Deliveries that may not be tried again: a last try whose worker died, or attempts already at a
    WEBHOOK_MAX_ATTEMPTS that was lowered since."""
    exhausted = WebhookDelivery.objects.filter(
        state__in=[State.PENDING, State.DELIVERING],
        next_attempt_at__lte=now,
        attempts__gte=settings.WEBHOOK_MAX_ATTEMPTS,
    )
    for delivery_id in exhausted.values_list("id", flat=True)[:SWEEP_BATCH]:
        with transaction.atomic():
            WebhookAttempt.objects.filter(delivery_id=delivery_id, finished_at__isnull=True).update(
                finished_at=now, error=ABANDONED
            )
            WebhookDelivery.objects.filter(id=delivery_id, next_attempt_at__lte=now).update(
                state=State.FAILED,
                next_attempt_at=None,
                last_error=f"gave up: {settings.WEBHOOK_MAX_ATTEMPTS} tries (WEBHOOK_MAX_ATTEMPTS) made",
            )
