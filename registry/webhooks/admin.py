"""Admin: webhooks and their deliveries, read-only (changes go through the API, which audits them).

A webhook's secret is never shown; a response snippet is shown as text (the admin escapes it).
"""

from django.contrib import admin

from registry.models import Webhook, WebhookAttempt, WebhookDelivery


class _ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Webhook)
class WebhookAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("url", "events", "active", "secret_last4", "created_by", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "description")
    fields = ("id", "url", "events", "active", "description", "secret_last4", "created_by", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="secret (last 4)")
    def secret_last4(self, webhook: Webhook) -> str:
        return f"…{webhook.secret_last4}"


class WebhookAttemptInline(_ReadOnly, admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "started_at", "finished_at", "status_code", "error", "duration_ms")
    readonly_fields = fields
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("created_at", "event", "webhook", "state", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("state", "event")
    search_fields = ("id", "webhook__url")
    list_select_related = ("webhook",)
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
    fields = (
        "id",
        "webhook",
        "event",
        "payload",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "response_snippet",
        "duration_ms",
        "created_at",
        "delivered_at",
    )
    readonly_fields = fields
