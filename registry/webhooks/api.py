"""/api/v1/webhooks: the admin's webhooks, their delivery logs, and test deliveries (admin role only).

A webhook's secret is answered once, when it was generated at creation; afterwards only whether one
is set and its last 4 characters.
"""

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api.pagination import VersionCursorPagination
from registry.api.permissions import IsAdminRole
from registry.api.serializers import ListFilterSerializer
from registry.models import Webhook, WebhookAttempt, WebhookDelivery
from registry.webhooks.services import (
    ALL_EVENTS,
    WEBHOOK_EVENTS,
    webhook_create,
    webhook_delete,
    webhook_get,
    webhook_test,
    webhook_update,
)

EVENTS_HELP = f"event names: {', '.join(WEBHOOK_EVENTS)}; or {ALL_EVENTS} for all of them"


@extend_schema_field({"type": "string", "enum": [*WEBHOOK_EVENTS, ALL_EVENTS]})
class EventNameField(serializers.CharField):
    """An event name; an unknown one is refused by the service as webhook_event_unknown."""


@extend_schema_field(OpenApiTypes.ANY)
class AnyJSONField(serializers.JSONField):
    pass


class WebhookWriteSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="http:// or https:// with a host; no user name or password")
    events = serializers.ListField(child=EventNameField(), help_text=EVENTS_HELP)
    secret = serializers.CharField(
        required=False,
        trim_whitespace=False,
        help_text="at least 16 characters, signs every delivery; leave it out to have one generated (answered once)",
    )
    active = serializers.BooleanField(required=False, default=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)


class WebhookSerializer(serializers.ModelSerializer):
    secret_set = serializers.SerializerMethodField(help_text="the secret itself is never answered again")
    secret_last4 = serializers.CharField(read_only=True, help_text="the secret's last 4 characters, to tell them apart")
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="the admin who made it"
    )
    events = serializers.ListField(child=EventNameField())

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "active",
            "description",
            "secret_set",
            "secret_last4",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def get_secret_set(self, webhook: Webhook) -> bool:
        return bool(webhook.secret)


class WebhookCreatedSerializer(WebhookSerializer):
    """The webhook just made; `secret` is the generated secret, answered this once (never read from the row)."""

    secret = serializers.SerializerMethodField(
        help_text="the generated secret when none was sent: store it now, it is never answered again; "
        "null when you chose the secret",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]

    @extend_schema_field({"type": "string", "nullable": True})
    def get_secret(self, webhook: Webhook) -> str | None:
        return self.context.get("generated_secret")


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "finished_at", "status_code", "error", "duration_ms"]
        extra_kwargs = {
            "status_code": {"help_text": "the receiver's answer; null when there was none (see error)"},
            "finished_at": {"help_text": "null while the try is running"},
        }


class WebhookDeliverySerializer(serializers.ModelSerializer):
    payload = AnyJSONField(help_text="the body's `data`")
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True, help_text="every try, first to last")

    class Meta:
        model = WebhookDelivery
        fields = [
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
            "attempt_log",
        ]
        extra_kwargs = {
            "next_attempt_at": {"help_text": "pending: when the next try is due"},
            "response_snippet": {"help_text": "the first 1 KiB of the last answer's body, as text"},
        }


class WebhookListFilterSerializer(ListFilterSerializer):
    """No filters (webhooks are few): only the pagination parameters."""


class DeliveryListFilterSerializer(ListFilterSerializer):
    state = serializers.ChoiceField(choices=WebhookDelivery.State.choices, required=False, allow_blank=True)
    event = serializers.ChoiceField(choices=[(e, e) for e in WEBHOOK_EVENTS], required=False, allow_blank=True)


def _paginated(view, request, rows, serializer_class) -> Response:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class WebhookListView(APIView):
    """Webhooks (admin): list them, newest first, or add one."""

    permission_classes = [IsAdminRole]
    pagination_class = VersionCursorPagination

    @extend_schema(responses=WebhookSerializer(many=True))
    def get(self, request):
        WebhookListFilterSerializer(data=request.query_params).is_valid(raise_exception=True)
        return _paginated(self, request, Webhook.objects.select_related("created_by"), WebhookSerializer)

    @extend_schema(
        request=WebhookWriteSerializer,
        responses={201: WebhookCreatedSerializer},
        description=(
            "Errors: webhook_url_invalid, webhook_event_unknown (naming the event), webhook_events_empty, "
            "webhook_secret_too_short. The answer holds the generated secret when none was sent, the only time "
            "it is ever answered."
        ),
    )
    def post(self, request):
        form = WebhookWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        webhook, generated = webhook_create(**form.validated_data, user=request.user)
        data = WebhookCreatedSerializer(webhook, context={"generated_secret": generated}).data
        return Response(data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    """One webhook (admin): read, change (any field; a new secret replaces the old at once) or delete it."""

    permission_classes = [IsAdminRole]

    @extend_schema(responses=WebhookSerializer)
    def get(self, request, webhook_id):
        return Response(WebhookSerializer(webhook_get(webhook_id)).data)

    @extend_schema(request=WebhookWriteSerializer(partial=True), responses=WebhookSerializer)
    def patch(self, request, webhook_id):
        webhook = webhook_get(webhook_id)
        form = WebhookWriteSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        webhook = webhook_update(webhook=webhook, changes=form.validated_data)
        return Response(WebhookSerializer(webhook_get(webhook.pk)).data)

    @extend_schema(responses={204: None}, description="Deletes the webhook and its delivery log; nothing more is sent.")
    def delete(self, request, webhook_id):
        webhook_delete(webhook=webhook_get(webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesView(APIView):
    """A webhook's delivery log (admin), newest first, each delivery with every try."""

    permission_classes = [IsAdminRole]
    pagination_class = VersionCursorPagination

    @extend_schema(parameters=[DeliveryListFilterSerializer], responses=WebhookDeliverySerializer(many=True))
    def get(self, request, webhook_id):
        filters = DeliveryListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        webhook = webhook_get(webhook_id)
        rows = webhook.deliveries.prefetch_related(
            Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number"))
        )
        rows = rows.filter(**{name: value for name, value in filters.validated_data.items() if value})
        return _paginated(self, request, rows, WebhookDeliverySerializer)


class WebhookTestView(APIView):
    """Send a `webhook.test` delivery now (admin) and answer it after its first try."""

    permission_classes = [IsAdminRole]

    @extend_schema(
        request=None,
        responses=WebhookDeliverySerializer,
        description=(
            "Sent to this webhook whatever events it subscribes to, active or not, through the same path as "
            "every delivery: the answer shows the first try (`state` succeeded, or pending with the receiver's "
            "`last_status_code` / `last_error` and the retry's `next_attempt_at`)."
        ),
    )
    def post(self, request, webhook_id):
        delivery = webhook_test(webhook=webhook_get(webhook_id))
        delivery = WebhookDelivery.objects.prefetch_related("attempt_log").get(pk=delivery.pk)
        return Response(WebhookDeliverySerializer(delivery).data)
