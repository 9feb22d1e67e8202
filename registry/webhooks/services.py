"""Announcing events to webhooks, and the admin's operations on webhooks.

`webhook_emit` is the one way to announce an event: call it inside the transaction of the change
it announces. It writes a pending delivery per subscribed webhook in that transaction and sends
them to the cpu queue once it commits, so a change that rolls back announces nothing, and a
delivery whose message is lost is still in the database for the redelivery sweep (delivery.py).
"""

import logging
import secrets
from functools import partial
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry.audit.services import audit_chain_lock, audit_record
from registry.errors import NotFound, RegistryError
from registry.models import AdapterVersion, Status, Webhook, WebhookDelivery

logger = logging.getLogger(__name__)

WEBHOOK_EVENTS = (
    "alias.moved",
    "promotion.requested",
    "promotion.approved",
    "promotion.rejected",
    "promotion.executed",
    "promotion.failed",
    "version.ready",
    "version.rejected",
    "residency.plan_changed",
    "webhook.test",
)
ALL_EVENTS = "*"
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = Webhook._meta.get_field("secret").max_length
URL_MAX_LENGTH = Webhook._meta.get_field("url").max_length
VERSION_EVENTS = {Status.READY: "version.ready", Status.REJECTED: "version.rejected"}


# --- Announcing ----------------------------------------------------------------------------------


def webhook_emit(event: str, payload: dict) -> list[WebhookDelivery]:
    """A pending delivery of `event` for every active webhook subscribed to it (or to "*").

    Call it inside the transaction of the change it announces: the deliveries commit or roll back
    with it, and are sent to the cpu queue only after the commit. `payload` is the body's `data`:
    JSON data (UUIDs, times and Decimals are written as strings).
    """
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; WEBHOOK_EVENTS lists the known ones")
    now = timezone.now()
    subscribed = Webhook.objects.filter(active=True).filter(
        Q(events__contains=[event]) | Q(events__contains=[ALL_EVENTS])
    )
    deliveries = [
        WebhookDelivery(webhook=webhook, event=event, payload=payload, next_attempt_at=now)
        for webhook in subscribed.only("id")
    ]
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries)
        transaction.on_commit(partial(_send_after_commit, [d.id for d in deliveries]), robust=True)
    return deliveries


def _send_after_commit(delivery_ids) -> None:
    from registry.webhooks.delivery import delivery_enqueue

    for delivery_id in delivery_ids:
        if not delivery_enqueue(delivery_id):
            return  # the broker is down: the redelivery sweep sends them all once it is back


def webhook_version_status(version: AdapterVersion, *, before: str, after: str, reason: str) -> None:
    """`version.ready` / `version.rejected` when an adapter version arrives there (transitions.py calls it)."""
    event = VERSION_EVENTS.get(after)
    if event is None or before == after:
        return
    adapter = version.adapter
    webhook_emit(
        event,
        {
            "id": str(version.id),
            "ref": version.ref,
            "digest_ref": version.digest_ref,
            "namespace": adapter.namespace,
            "adapter": adapter.full_name,
            "status": after,
            "status_before": before,
            "reason": reason,
        },
    )


# --- The admin's operations ------------------------------------------------------------------------


def webhook_get(webhook_id) -> Webhook:
    webhook = Webhook.objects.select_related("created_by").filter(pk=webhook_id).first()
    if webhook is None:
        raise NotFound("webhook_not_found", f"no webhook has id {webhook_id}")
    return webhook


def webhook_create(
    *, url: str, events: list[str], secret: str | None = None, active: bool = True, description: str = "", user=None
) -> tuple[Webhook, str | None]:
    """A new webhook, and the secret made for it when none was given (answered once, never again)."""
    generated = None
    if secret is None or secret == "":
        secret = generated = secrets.token_urlsafe(32)
    fields = {
        "url": webhook_url_checked(url),
        "events": webhook_events_checked(events),
        "secret": webhook_secret_checked(secret),
        "active": active,
        "description": description,
    }
    with transaction.atomic():
        audit_chain_lock()
        webhook = Webhook.objects.create(created_by=user if user and user.is_authenticated else None, **fields)
        audit_record(type="webhook.create", **_subject(webhook), after=_audited(webhook))
    return webhook, generated


def webhook_update(*, webhook: Webhook, changes: dict) -> Webhook:
    """Change any of url, events, secret, active, description; the event shows what changed (a secret
    only as "changed")."""
    checks = {"url": webhook_url_checked, "events": webhook_events_checked, "secret": webhook_secret_checked}
    changes = {name: checks.get(name, _as_is)(value) for name, value in changes.items()}
    with transaction.atomic():
        audit_chain_lock()
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        before = _audited(webhook)
        changed = [name for name, value in changes.items() if getattr(webhook, name) != value]
        if not changed:
            return webhook
        for name in changed:
            setattr(webhook, name, changes[name])
        webhook.save(update_fields=[*changed, "updated_at"])
        after = _audited(webhook)
        if "secret" in changed:
            after["secret"] = "changed"
        audit_record(
            type="webhook.update",
            **_subject(webhook),
            before={k: v for k, v in before.items() if k in changed},
            after={k: v for k, v in after.items() if k in changed},
        )
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    """Delete a webhook with its delivery log; deliveries not yet sent are never sent."""
    with transaction.atomic():
        audit_chain_lock()
        before = _audited(webhook)
        before["deliveries"] = webhook.deliveries.count()
        subject = _subject(webhook)
        webhook.delete()
        audit_record(type="webhook.delete", **subject, before=before)


def webhook_test(*, webhook: Webhook) -> WebhookDelivery:
    """Send a `webhook.test` delivery to this webhook now (whatever it subscribes to, active or not),
    through the same path as every delivery: a failed try is retried like any other."""
    from registry.webhooks.delivery import delivery_attempt

    with transaction.atomic():
        audit_chain_lock()
        delivery = WebhookDelivery.objects.create(
            webhook=webhook,
            event="webhook.test",
            payload={"webhook": str(webhook.id), "message": "a test delivery, sent on request"},
            next_attempt_at=timezone.now(),
        )
        audit_record(type="webhook.test", **_subject(webhook), after={"delivery": str(delivery.id)})
    # After the commit, outside any transaction: the audit chain is not held while the receiver answers.
    delivery_attempt(delivery.id)
    return WebhookDelivery.objects.get(pk=delivery.pk)


def _subject(webhook: Webhook) -> dict:
    return {"object_type": "webhook", "object_id": str(webhook.pk)}


def _audited(webhook: Webhook) -> dict:
    """What an audit event shows of a webhook: everything but the secret."""
    return {
        "url": webhook.url,
        "events": list(webhook.events),
        "active": webhook.active,
        "description": webhook.description,
    }


def _as_is(value):
    return value


# --- Checks, with the codes the API answers ---------------------------------------------------------


def webhook_url_checked(url: str) -> str:
    """An http(s) URL with a host, and without credentials (the URL is shown to every admin and
    recorded in the audit trail; the signature is how a receiver authenticates the registry)."""
    url = url.strip()
    if len(url) > URL_MAX_LENGTH:
        raise _url_invalid(url, f"is longer than {URL_MAX_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise _url_invalid(url, "contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError as exc:
        raise _url_invalid(url, f"cannot be read ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise _url_invalid(url, "must start with http:// or https://")
    if not parts.hostname:
        raise _url_invalid(url, "names no host")
    if parts.username is not None or parts.password is not None:
        raise _url_invalid(url, "must not carry a user name or password; receivers check the signature instead")
    return url


def _url_invalid(url: str, why: str) -> RegistryError:
    return RegistryError("webhook_url_invalid", f"the webhook URL {why}", url=url[:200])


def webhook_events_checked(events: list[str]) -> list[str]:
    if not events:
        raise RegistryError(
            "webhook_events_empty", f"name at least one event to send (one of {', '.join(WEBHOOK_EVENTS)}, or *)"
        )
    for event in events:
        if event != ALL_EVENTS and event not in WEBHOOK_EVENTS:
            raise RegistryError(
                "webhook_event_unknown",
                f"unknown event {event!r}; the events are {', '.join(WEBHOOK_EVENTS)}, or * for all of them",
                event=event,
                known=list(WEBHOOK_EVENTS),
            )
    return list(dict.fromkeys(events))  # without duplicates, in the order given


def webhook_secret_checked(secret: str) -> str:
    if len(secret) < SECRET_MIN_LENGTH:
        raise RegistryError(
            "webhook_secret_too_short",
            f"the secret must have at least {SECRET_MIN_LENGTH} characters; leave it out to have one generated",
            min_length=SECRET_MIN_LENGTH,
        )
    if len(secret) > SECRET_MAX_LENGTH:
        raise RegistryError(
            "webhook_secret_too_long",
            f"the secret must have at most {SECRET_MAX_LENGTH} characters",
            max_length=SECRET_MAX_LENGTH,
        )
    return secret
