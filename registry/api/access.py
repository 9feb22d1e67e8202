"""Roles granted on namespaces and scoped CI tokens, over the API. Rules live in registry/services/access.py.

- GET/POST namespaces/<ns>/roles, DELETE namespaces/<ns>/roles/<id>: anyone signed in reads who holds
  which role (reads are open); a global admin or the namespace's admin grants and revokes.
- GET/POST auth/tokens, DELETE auth/tokens/<id>: your own scoped tokens (an admin lists anyone's with
  ?user= and revokes any); the key is answered once, at creation.
"""

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import roles
from registry.api.schema import TextField, error_responses
from registry.api.serializers import EmptyIsInvalidMixin, ListFilterSerializer, NoFilterSerializer
from registry.errors import NotFound, RegistryError
from registry.models import NamespaceRole, ScopedToken
from registry.models.access import NAMESPACE_ROLES, TOKEN_NAME_PATTERN, TOKEN_SCOPES
from registry.refs import NAMESPACE_SEGMENT
from registry.services import access


class _StringOnly:
    """A JSON string and nothing else: DRF would read 0 as "0", which the schema does not promise."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    pass


class StrictRegexField(_StringOnly, serializers.RegexField):
    pass


class QueryTextField(EmptyIsInvalidMixin, TextField):
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


# --- Scoped tokens ---------------------------------------------------------------------------


class ScopedTokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=TOKEN_SCOPES))
    namespaces = serializers.ListField(child=serializers.CharField(), help_text="empty: every namespace")
    key_prefix = serializers.CharField(help_text="the key's first characters, to recognise it; never the key")
    state = serializers.SerializerMethodField()

    class Meta:
        model = ScopedToken
        fields = ["id", "name", "user", "scopes", "namespaces", "key_prefix", "state", "created_at", "last_used_at",
                  "expires_at", "revoked_at"]  # fmt: skip

    def get_state(self, token) -> str:
        """active, expired or revoked"""
        if token.revoked_at is not None:
            return "revoked"
        return "expired" if token.is_expired() else "active"


class ScopedTokenCreatedSerializer(ScopedTokenSerializer):
    key = serializers.CharField(help_text="the token, shown this once: store it now (e.g. as a CI secret)")

    class Meta(ScopedTokenSerializer.Meta):
        fields = [*ScopedTokenSerializer.Meta.fields, "key"]


class ScopedTokenCreateSerializer(serializers.Serializer):
    name = StrictRegexField(
        f"^{TOKEN_NAME_PATTERN.pattern}$", max_length=40, help_text="1-40 letters, digits, . _ -; unique among yours"
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TOKEN_SCOPES),
        required=False,
        default=list,
        max_length=len(TOKEN_SCOPES),
        help_text="the writes it may do; none: a read-only token",
    )
    namespaces = serializers.ListField(
        child=StrictRegexField(f"^{NAMESPACE_SEGMENT}$", max_length=64),
        required=False,
        default=list,
        max_length=100,
        help_text="where it may write; none: every namespace its user may write to",
    )
    expires_in_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=access.MAX_TOKEN_DAYS, help_text="none: never"
    )


class TokenListFilterSerializer(ListFilterSerializer):
    paginated = False
    user = QueryTextField(required=False, help_text="admins: this user's tokens (default: yours)")


class ScopedTokenListView(APIView):
    """Your scoped CI tokens (never their keys); POST creates one and answers its key once."""

    # JSON only: a form would turn `namespaces=acme` into a list the schema does not promise to read.
    parser_classes = [JSONParser]

    @extend_schema(parameters=[TokenListFilterSerializer], responses={200: ScopedTokenSerializer(many=True),
                                                                      **error_responses(400, 403, 404)})  # fmt: skip
    def get(self, request):
        filters = TokenListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        owner = _token_owner(request.user, filters.validated_data.get("user"))
        return Response(ScopedTokenSerializer(access.scoped_tokens_of(owner), many=True).data)

    @extend_schema(
        request=ScopedTokenCreateSerializer,
        responses={201: ScopedTokenCreatedSerializer, **error_responses(400, 403, 409)},
    )
    def post(self, request):
        """Create a token for yourself. The key is in this answer only: the registry keeps its SHA-256."""
        form = ScopedTokenCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        issued = access.scoped_token_create(
            user=request.user,
            name=data["name"],
            scopes=data["scopes"],
            namespaces=data["namespaces"],
            expires_in_days=data.get("expires_in_days"),
        )
        body = {**ScopedTokenSerializer(issued.token).data, "key": issued.key}
        return Response(body, status=status.HTTP_201_CREATED)


def _token_owner(user, username: str | None):
    if not username or username == user.get_username():
        return user
    if roles.ADMIN not in roles.roles_of(user):
        raise RegistryError("permission_denied", "only admins list other users' tokens", status_code=403)
    owner = User.objects.filter(username=username).first()
    if owner is None:
        raise NotFound("user_not_found", f"no user is named {username[:150]!r}")
    return owner


class ScopedTokenDetailView(APIView):
    @extend_schema(responses={200: ScopedTokenSerializer, **error_responses(404)})
    def get(self, request, token_id):
        return Response(ScopedTokenSerializer(access.scoped_token_get(token_id, by=request.user)).data)

    @extend_schema(responses={200: ScopedTokenSerializer, **error_responses(403, 404)})
    def delete(self, request, token_id):
        """Revoke the token: it stops working at once (401 token_revoked). Revoking it again changes nothing."""
        token = access.scoped_token_revoke(token=access.scoped_token_get(token_id, by=request.user), by=request.user)
        return Response(ScopedTokenSerializer(token).data)
