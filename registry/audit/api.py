"""GET /api/v1/audit/events[/<seq>]: the audit chain for auditors and admins."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import roles
from registry.api.pagination import VersionCursorPagination
from registry.api.permissions import token_scope_check
from registry.api.schema import NameField, TextField
from registry.api.serializers import ListFilterSerializer, QueryDateTimeField
from registry.audit import selectors
from registry.audit.services import audit_event_data
from registry.models import AuditEvent
from registry.refs import parse_name


class IsAuditorOrAdmin(BasePermission):
    message = "the audit trail is for the auditor and admin roles"
    applies_token_scope = True  # a scoped CI token reads the trail as its user, and starts no export

    def has_permission(self, request, view):
        token_scope_check(request, view)
        return bool(roles.roles_of(request.user) & {roles.AUDITOR, roles.ADMIN})


class AuditCursorPagination(VersionCursorPagination):
    """Newest first, keyed on the sequence number: a page is one index range scan."""

    ordering = ("-seq",)


class AuditEventFilterSerializer(ListFilterSerializer):
    after = QueryDateTimeField(required=False, help_text="recorded at or after (RFC 3339)")
    before = QueryDateTimeField(required=False, help_text="recorded before (RFC 3339)")
    namespace = TextField(required=False, allow_blank=True)
    adapter = NameField(required=False, allow_blank=True, help_text="namespace/name of an adapter")
    type = TextField(
        required=False, allow_blank=True, help_text='an event type ("version.status"), or a prefix ("job.*")'
    )
    actor = TextField(required=False, allow_blank=True, help_text="the actor's name as recorded")
    object_id = TextField(required=False, allow_blank=True)
    outcome = serializers.ChoiceField(choices=AuditEvent.Outcome.choices, required=False, allow_blank=True)

    def validate_adapter(self, value: str) -> str:
        if not value:
            return value
        namespace, name = parse_name(value)
        return f"{namespace}/{name}"


@extend_schema_field(OpenApiTypes.ANY)
class _AnyJSONField(serializers.JSONField):
    pass


class AuditEventSerializer(serializers.Serializer):
    """An event as the chain hashed it (its stored canonical JSON), plus its entry_hash."""

    id = serializers.UUIDField()
    seq = serializers.IntegerField()
    time = serializers.CharField(help_text="RFC 3339, UTC, microseconds, as hashed")
    type = serializers.CharField()
    actor_kind = serializers.ChoiceField(choices=AuditEvent.ActorKind.choices)
    actor_id = serializers.CharField(allow_blank=True)
    actor_name = serializers.CharField(allow_blank=True)
    actor_role = serializers.CharField(allow_blank=True)
    token_id = serializers.CharField(allow_blank=True)
    request_id = serializers.CharField(allow_blank=True)
    client_address = serializers.CharField(allow_blank=True)
    object_type = serializers.CharField(allow_blank=True)
    object_id = serializers.CharField(allow_blank=True)
    object_digest = serializers.CharField(allow_blank=True)
    namespace = serializers.CharField(allow_blank=True)
    adapter = serializers.CharField(allow_blank=True)
    before = _AnyJSONField(allow_null=True)
    after = _AnyJSONField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    evidence = _AnyJSONField(allow_null=True)
    outcome = serializers.ChoiceField(choices=AuditEvent.Outcome.choices)
    prev_hash = serializers.CharField()
    entry_hash = serializers.CharField()

    def to_representation(self, event: AuditEvent) -> dict:
        data = audit_event_data(event)
        return {name: data.get(name) for name in self.fields}


class AuditEventListView(APIView):
    """Audit events, newest first (auditor and admin roles)."""

    permission_classes = [IsAuditorOrAdmin]
    pagination_class = AuditCursorPagination

    @extend_schema(parameters=[AuditEventFilterSerializer], responses=AuditEventSerializer(many=True))
    def get(self, request):
        filters = AuditEventFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = selectors.audit_event_list(**filters.validated_data).only("seq", "body", "entry_hash")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)


class AuditEventDetailView(APIView):
    """One audit event by its sequence number (auditor and admin roles)."""

    permission_classes = [IsAuditorOrAdmin]

    @extend_schema(
        parameters=[
            OpenApiParameter("seq", int, OpenApiParameter.PATH, description="the event's sequence number (1, 2, ...)")
        ],
        responses=AuditEventSerializer,
    )
    def get(self, request, seq: int):
        return Response(AuditEventSerializer(selectors.audit_event_get(seq)).data)
