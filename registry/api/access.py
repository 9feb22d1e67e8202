"""Roles granted on namespaces, over the API. Rules live in registry/services/access.py.

GET/POST namespaces/<ns>/roles, DELETE namespaces/<ns>/roles/<id>: anyone signed in reads who holds
which role (reads are open); a global admin or the namespace's admin grants and revokes.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api.schema import error_responses
from registry.api.serializers import NoFilterSerializer
from registry.models import NamespaceRole
from registry.models.access import NAMESPACE_ROLES
from registry.services import access


class _StringOnly:
    """A JSON string and nothing else: DRF would read 0 as "0", which the schema does not promise."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    pass


# --- Namespace roles -------------------------------------------------------------------------


class NamespaceRoleSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", default=None, allow_null=True)
    group = serializers.CharField(source="group.name", default=None, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)

    class Meta:
        model = NamespaceRole
        fields = ["id", "namespace", "role", "user", "group", "created_at", "created_by"]


class NamespaceRoleGrantSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=NAMESPACE_ROLES, help_text="auditor is global only (the auditor group)")
    user = StrictCharField(required=False, max_length=150, help_text="a username; or `group`, not both")
    group = StrictCharField(required=False, max_length=150, help_text="a group name: every member holds the role")


def _grants(namespace: str):
    return NamespaceRole.objects.filter(namespace=namespace).select_related("user", "group", "created_by")


class NamespaceRoleListView(APIView):
    """Who holds which role in a namespace (beyond global roles); POST grants one (namespace admin)."""

    parser_classes = [JSONParser]

    @extend_schema(responses={200: NamespaceRoleSerializer(many=True), **error_responses(400)})
    def get(self, request, namespace):
        NoFilterSerializer(data=request.query_params).is_valid(raise_exception=True)
        return Response(NamespaceRoleSerializer(_grants(access.namespace_checked(namespace)), many=True).data)

    @extend_schema(
        request=NamespaceRoleGrantSerializer,
        responses={201: NamespaceRoleSerializer, 200: NamespaceRoleSerializer, **error_responses(400, 403, 404)},
    )
    def post(self, request, namespace):
        """Grant a role; granting one that is already held answers it with 200."""
        form = NamespaceRoleGrantSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        grant, created = access.namespace_role_grant(
            namespace=namespace,
            role=form.validated_data["role"],
            username=form.validated_data.get("user"),
            group_name=form.validated_data.get("group"),
            by=request.user,
        )
        grant = _grants(namespace).get(pk=grant.pk)
        return Response(
            NamespaceRoleSerializer(grant).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class NamespaceRoleDetailView(APIView):
    @extend_schema(responses={204: None, **error_responses(403, 404)})
    def delete(self, request, namespace, grant_id):
        """Revoke a grant (namespace admin). Global roles are group memberships: change them in the admin."""
        grant = access.namespace_role_get(access.namespace_checked(namespace), grant_id)
        access.namespace_role_revoke(grant=grant, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
