"""User, group, role and token changes become audit events, from the API, the admin or a shell alike.

Django's signals fire inside the transaction that saves the row, so each event commits or rolls
back with its change. What is recorded: who was created, changed (the fields that changed, never
a password hash) or deleted; role (group) membership and permissions before and after; tokens
issued and revoked (by their fingerprint, never the key); roles granted on namespaces
(role.grant, role.revoke). Scoped CI tokens are audited by their service (registry/services/access.py);
one deleted with its user is recorded here as revoked.
"""

from django.contrib.auth.models import Group, User
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from registry.audit.context import token_id
from registry.audit.services import audit_record
from registry.models import NamespaceRole, ScopedToken

USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")


def _user_subject(user) -> dict:
    return {"object_type": "user", "object_id": str(user.pk)}


def _user_state(user) -> dict:
    return {field: getattr(user, field) for field in USER_FIELDS}


@receiver(pre_save, sender=User)
def _remember_user(sender, instance, **kwargs):
    old = User.objects.filter(pk=instance.pk).first() if instance.pk else None
    instance._audit_before = _user_state(old) if old else None
    instance._audit_password_changed = bool(old and old.password != instance.password)


@receiver(post_save, sender=User)
def _user_saved(sender, instance, created, update_fields=None, **kwargs):
    if update_fields and set(update_fields) <= {"last_login"}:
        return  # a sign-in, not a change to the account
    if created:
        audit_record(type="user.create", **_user_subject(instance), after=_user_state(instance))
        return
    before, after = getattr(instance, "_audit_before", None) or {}, _user_state(instance)
    changed = sorted(field for field in USER_FIELDS if before.get(field) != after[field])
    if changed:
        audit_record(
            type="user.update",
            **_user_subject(instance),
            before={field: before.get(field) for field in changed},
            after={field: after[field] for field in changed},
        )
    if getattr(instance, "_audit_password_changed", False):
        audit_record(type="user.password_change", **_user_subject(instance), after={"username": instance.username})


@receiver(post_delete, sender=User)
def _user_deleted(sender, instance, **kwargs):
    audit_record(type="user.delete", **_user_subject(instance), before=_user_state(instance))


def _names(queryset) -> list[str]:
    return sorted(str(item) for item in queryset)


def _affected_users(instance, reverse: bool, pk_set) -> list:
    if not reverse:
        return [instance]  # user.groups.add/remove/clear/set
    if pk_set is None:
        return list(instance.user_set.all())  # group.user_set.clear()
    return list(User.objects.filter(pk__in=pk_set))


@receiver(m2m_changed, sender=User.groups.through)
def _roles_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """Role (group) membership, per user, with the roles before and after."""
    if action.startswith("pre_"):
        users = _affected_users(instance, reverse, pk_set)
        for user in users:
            user._audit_roles = _names(user.groups.values_list("name", flat=True))
        instance._audit_affected = users
        return
    for user in getattr(instance, "_audit_affected", []):
        before, after = user._audit_roles, _names(user.groups.values_list("name", flat=True))
        if before != after:
            audit_record(type="user.roles", **_user_subject(user), before={"roles": before}, after={"roles": after})
    instance._audit_affected = []


@receiver(m2m_changed, sender=User.user_permissions.through)
@receiver(m2m_changed, sender=Group.permissions.through)
def _permissions_changed(sender, instance, action, reverse, **kwargs):
    if reverse or action not in ("post_add", "post_remove", "post_clear"):
        return
    kind = "group" if isinstance(instance, Group) else "user"
    permissions = instance.permissions if kind == "group" else instance.user_permissions
    audit_record(
        type=f"{kind}.permissions",
        object_type=kind,
        object_id=str(instance.pk),
        after={"permissions": _names(permissions.values_list("codename", flat=True))},
        reason=action.removeprefix("post_"),
    )


@receiver(post_save, sender=Group)
def _group_saved(sender, instance, created, **kwargs):
    audit_record(
        type="group.create" if created else "group.update",
        object_type="group",
        object_id=str(instance.pk),
        after={"name": instance.name},
    )


@receiver(post_delete, sender=Group)
def _group_deleted(sender, instance, **kwargs):
    audit_record(type="group.delete", object_type="group", object_id=str(instance.pk), before={"name": instance.name})


@receiver(post_save, sender=Token)
def _token_issued(sender, instance, created, **kwargs):
    if created:
        audit_record(
            type="token.issue",
            object_type="token",
            object_id=token_id(instance.key),
            after={"user": instance.user.get_username()},
        )


@receiver(post_delete, sender=Token)
def _token_revoked(sender, instance, **kwargs):
    audit_record(
        type="token.revoke",
        object_type="token",
        object_id=token_id(instance.key),
        before={"user": instance.user.get_username()},
    )


def _grant_state(grant: NamespaceRole) -> dict:
    return {"namespace": grant.namespace, "role": grant.role, "subject": grant.subject}


def _grant_record(kind: str, grant: NamespaceRole, state: dict) -> None:
    audit_record(
        type=f"role.{kind}",
        object_type="namespace_role",
        object_id=str(grant.pk),
        namespace=state["namespace"],
        **({"after": state} if kind == "grant" else {"before": state}),
    )


@receiver(pre_save, sender=NamespaceRole)
def _remember_grant(sender, instance, **kwargs):
    old = NamespaceRole.objects.filter(pk=instance.pk).select_related("user", "group").first() if instance.pk else None
    instance._audit_before = _grant_state(old) if old else None


@receiver(post_save, sender=NamespaceRole)
def _grant_saved(sender, instance, created, **kwargs):
    """A new grant is role.grant; a changed one (a shell's edit) is the old one revoked and the new one granted."""
    before, after = getattr(instance, "_audit_before", None), _grant_state(instance)
    if before == after:
        return
    if before is not None:
        _grant_record("revoke", instance, before)
    _grant_record("grant", instance, after)


@receiver(pre_delete, sender=NamespaceRole)
def _remember_deleted_grant(sender, instance, **kwargs):
    # Read before anything is deleted: a grant deleted with its user can no longer name them afterwards.
    instance._audit_before = _grant_state(instance)


@receiver(post_delete, sender=NamespaceRole)
def _grant_deleted(sender, instance, **kwargs):
    _grant_record("revoke", instance, instance._audit_before)


@receiver(post_delete, sender=ScopedToken)
def _scoped_token_deleted(sender, instance, **kwargs):
    if instance.revoked_at is None:  # a revoked token's event was recorded when it was revoked
        audit_record(
            type="token.revoke",
            object_type="token",
            object_id=instance.audit_id,
            before={"user_id": instance.user_id, "name": instance.name, "scopes": instance.scopes},
            reason="deleted",
        )
