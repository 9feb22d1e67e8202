"""Granting roles on namespaces and issuing scoped CI tokens.

Grants are audited by signals (registry/audit/signals.py: role.grant, role.revoke), so the API,
the admin and a shell leave the same events. Tokens are audited here (token.issue, token.revoke),
in the transaction that writes them; the key is never recorded, only the token's id and name.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import roles
from registry.audit.services import audit_record
from registry.errors import Conflict, NotFound, RegistryError
from registry.models import NamespaceRole, ScopedToken
from registry.models.access import NAMESPACE_ROLES, TOKEN_NAME_PATTERN, TOKEN_SCOPES, token_key_hash
from registry.refs import NAMESPACE_PATTERN

MAX_TOKEN_DAYS = 3650


def namespace_checked(namespace: str) -> str:
    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.match(namespace):
        raise RegistryError("namespace_invalid", f"{str(namespace)[:80]!r} is not a namespace (letters, digits, . _ -)")
    return namespace


def _role_checked(role: str) -> str:
    if role == roles.AUDITOR:
        raise RegistryError(
            "role_invalid",
            "auditor is a global role (the audit trail is one chain for the whole registry): "
            "add the user to the auditor group instead",
        )
    if role not in NAMESPACE_ROLES:
        raise RegistryError("role_invalid", f"{str(role)[:40]!r} is not a role; one of {', '.join(NAMESPACE_ROLES)}")
    return role


def _subject(username: str | None, group_name: str | None) -> dict:
    """The user or group a grant is for: exactly one of the two, and one that exists."""
    if bool(username) == bool(group_name):
        raise RegistryError(
            "grant_subject_invalid", "name exactly one of `user` (a username) or `group` (a group name)"
        )
    if username:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise NotFound("user_not_found", f"no user is named {username[:150]!r}")
        return {"user": user}
    group = Group.objects.filter(name=group_name).first()
    if group is None:
        raise NotFound("group_not_found", f"no group is named {group_name[:150]!r}")
    return {"group": group}


def namespace_role_grant(
    *, namespace: str, role: str, username: str | None = None, group_name: str | None = None, by
) -> tuple[NamespaceRole, bool]:
    """Grant `role` in `namespace` (global admin or that namespace's admin); granting it again is no change."""
    namespace = namespace_checked(namespace)
    roles.require_admin(by, namespace, f"granting roles in {namespace}")
    role = _role_checked(role)
    subject = _subject(username, group_name)
    with transaction.atomic():
        existing = NamespaceRole.objects.filter(namespace=namespace, role=role, **subject).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                grant = NamespaceRole.objects.create(namespace=namespace, role=role, created_by=by, **subject)
        except IntegrityError:  # the same grant, made concurrently
            return NamespaceRole.objects.get(namespace=namespace, role=role, **subject), False
    return grant, True


def namespace_role_get(namespace: str, grant_id: int) -> NamespaceRole:
    grant = (
        NamespaceRole.objects.select_related("user", "group", "created_by")
        .filter(namespace=namespace, id=grant_id)
        .first()
    )
    if grant is None:
        raise NotFound("role_grant_not_found", f"{namespace} has no role grant {grant_id}")
    return grant


def namespace_role_revoke(*, grant: NamespaceRole, by) -> None:
    roles.require_admin(by, grant.namespace, f"revoking roles in {grant.namespace}")
    grant.delete()  # the role.revoke event comes from the post_delete signal


# --- Scoped tokens ---------------------------------------------------------------------------


@dataclass
class IssuedToken:
    token: ScopedToken
    key: str  # shown once, never stored


def _scopes_checked(scopes) -> list[str]:
    unknown = [scope for scope in scopes if scope not in TOKEN_SCOPES]
    if unknown:
        raise RegistryError(
            "token_scope_invalid", f"unknown scope {str(unknown[0])[:40]!r}; one of {', '.join(TOKEN_SCOPES)}"
        )
    return [scope for scope in TOKEN_SCOPES if scope in scopes]  # one spelling, whatever the order given


def _namespaces_checked(user, scopes: list[str], namespaces) -> list[str]:
    """Each namespace must be one where the user may do something the scopes name: a token for a
    namespace its user cannot write to is refused now, not at the pipeline's first push."""
    namespaces = sorted({namespace_checked(namespace) for namespace in namespaces})
    allowed = {roles.SCOPE_PUSH: roles.can_push, roles.SCOPE_PROMOTION_REQUEST: roles.can_request_promotion}
    namespaced = [scope for scope in scopes if scope in allowed]
    for namespace in namespaces:
        if namespaced and not any(allowed[scope](user, namespace) for scope in namespaced):
            raise RegistryError(
                "permission_denied",
                f"you may not {' or '.join(namespaced)} in {namespace} (your roles there: "
                f"{', '.join(sorted(roles.roles_in(user, namespace))) or 'none'}), so neither could this token",
                status_code=403,
            )
    return namespaces


def scoped_token_create(
    *, user, name: str, scopes: list[str], namespaces: list[str], expires_in_days: int | None = None
) -> IssuedToken:
    """A new scoped token for `user` itself; the key is in the answer and nowhere else."""
    roles.token_check(user, None, None, "creating a token")  # a token does not mint tokens
    if not isinstance(name, str) or not TOKEN_NAME_PATTERN.fullmatch(name):
        raise RegistryError("token_name_invalid", "a token name is 1 to 40 letters, digits, '.', '_' or '-'")
    scopes = _scopes_checked(scopes)
    if roles.SCOPE_TELEMETRY in scopes and not roles.can_post_telemetry(user):
        raise RegistryError(
            "permission_denied",
            "a token with the telemetry scope posts for the whole serving fleet and needs the global admin role",
            status_code=403,
        )
    namespaces = _namespaces_checked(user, scopes, namespaces)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise RegistryError("token_expiry_invalid", f"expires_in_days is 1 to {MAX_TOKEN_DAYS} (or left out: never)")
    key = ScopedToken.new_key()
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        with transaction.atomic():
            token = ScopedToken.objects.create(
                user=user,
                name=name,
                key_hash=token_key_hash(key),
                key_prefix=key[:9],
                scopes=scopes,
                namespaces=namespaces,
                expires_at=expires_at,
            )
            audit_record(type="token.issue", object_type="token", object_id=token.audit_id, after=_token_state(token))
    except IntegrityError:
        raise Conflict(
            "token_name_taken", f"you already have a token named {name!r}; revoke it or pick another name"
        ) from None
    return IssuedToken(token, key)


def _token_state(token: ScopedToken) -> dict:
    return {
        "user": token.user.get_username(),
        "name": token.name,
        "scopes": token.scopes,
        "namespaces": token.namespaces,
        "expires_at": token.expires_at,
        "key_prefix": token.key_prefix,
    }


def scoped_tokens_of(owner) -> list[ScopedToken]:
    return list(ScopedToken.objects.filter(user=owner).select_related("user"))


def scoped_token_get(token_id: int, *, by) -> ScopedToken:
    """One of `by`'s tokens (any user's, for a global admin); someone else's is not found, not forbidden."""
    tokens = ScopedToken.objects.select_related("user")
    if not roles.is_admin(by):
        tokens = tokens.filter(user=by)
    token = tokens.filter(id=token_id).first()
    if token is None:
        raise NotFound("token_not_found", f"you have no token {token_id}")
    return token


def scoped_token_revoke(*, token: ScopedToken, by) -> ScopedToken:
    """Stop a token from working, at once; revoking it again changes nothing."""
    roles.token_check(by, None, None, "revoking a token")
    with transaction.atomic():
        revoked = ScopedToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        token.refresh_from_db()
        if revoked:
            audit_record(type="token.revoke", object_type="token", object_id=token.audit_id, before=_token_state(token))
    return token
