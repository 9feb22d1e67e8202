"""Webhooks: receivers that hear about moves, and the log of every delivery to them.

A delivery is made in the transaction of the change it announces (registry/webhooks/services.py)
and sent after that commits; every try is a WebhookAttempt, so the log shows each status code.
Deliveries are at least once: a receiver de-duplicates on the delivery id.
"""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

RESPONSE_SNIPPET_BYTES = 1024


class Webhook(models.Model):
    """A URL that is sent the events it subscribes to, each body signed with its secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.CharField(max_length=2000, help_text="http(s) URL the deliveries are POSTed to")
    events = models.JSONField(default=list, help_text='event names (WEBHOOK_EVENTS), or "*" for all')
    # Kept in clear because signing needs it; the API never answers it after creation.
    secret = models.CharField(max_length=256)
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret_last4(self) -> str:
        return self.secret[-4:] if self.secret else ""

    def subscribes_to(self, event: str) -> bool:
        return "*" in self.events or event in self.events


class WebhookDelivery(models.Model):
    """One event for one webhook, from pending to succeeded or failed, tried up to WEBHOOK_MAX_ATTEMPTS times.

    `next_attempt_at` is when it is due: the next try of a pending delivery, or, while one is
    `delivering`, the end of that claim (a worker that died mid-try leaves it to be claimed again).
    """

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERING = "delivering"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder, help_text="the body's `data`")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="tries started so far")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_snippet = models.TextField(blank=True, help_text="the first 1 KiB of the last answer's body")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="of the last try")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["webhook", "-created_at", "-id"], name="webhook_delivery_log"),
            # The redelivery sweep: due rows among the few that are not finished.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(state__in=["pending", "delivering"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One try of a delivery: when it started, what the receiver answered (or why there was no answer)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
