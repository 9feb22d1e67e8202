"""Granting roles on namespaces.

Grants are audited by signals (registry/audit/signals.py: role.grant, role.revoke), so the API,
the admin and a shell leave the same events.
"""

from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from registry import roles
from registry.errors import NotFound, RegistryError
from registry.models import NamespaceRole
from registry.models.access import NAMESPACE_ROLES
from registry.refs import NAMESPACE_PATTERN


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
