"""Access: roles granted on one namespace, and API tokens scoped to a few kinds of write.

Global roles stay Django groups (registry/roles.py); a NamespaceRole adds one of them for one
namespace, to a user or to every member of a group. A ScopedToken is a CI credential that acts as
its user for reads and for the writes its scopes name, in its namespaces only. Its key is shown
once at creation and stored only as a SHA-256 hash.
"""

import hashlib
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry.refs import NAMESPACE_SEGMENT

# Roles a namespace can grant. `auditor` is not among them: the audit trail is one chain for the
# whole registry, so reading it is a global role (the auditor group).
NAMESPACE_ROLES = ("viewer", "engineer", "approver", "admin")
TOKEN_SCOPES = ("push", "promotion.request", "telemetry")
TOKEN_PREFIX = "arci_"
TOKEN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
LAST_USED_RESOLUTION = timedelta(minutes=1)


class NamespaceRole(models.Model):
    """`role` in `namespace` for a user, or for every member of a group (exactly one of the two)."""

    class Role(models.TextChoices):
        VIEWER = "viewer"
        ENGINEER = "engineer"
        APPROVER = "approver"
        ADMIN = "admin"

    namespace = models.CharField(
        max_length=64,
        validators=[RegexValidator(rf"^{NAMESPACE_SEGMENT}\Z", "not a namespace (letters, digits, . _ -)")],
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="namespace_roles"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="namespace_roles"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["namespace", "role", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="namespace_role_one_subject",
            ),
            models.UniqueConstraint(
                fields=["namespace", "role", "user"], condition=Q(user__isnull=False), name="namespace_role_user_once"
            ),
            models.UniqueConstraint(
                fields=["namespace", "role", "group"],
                condition=Q(group__isnull=False),
                name="namespace_role_group_once",
            ),
        ]
        indexes = [models.Index(fields=["namespace", "role"], name="namespace_role_ns")]

    def __str__(self) -> str:
        return f"{self.role} in {self.namespace} for {self.subject}"

    @property
    def subject(self) -> str:
        """Who the grant is for, as the API and audit events name it: "user:alice" or "group:ml-team"."""
        if self.user_id:
            return f"user:{self.user.get_username()}"
        return f"group:{self.group.name}"


def token_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ScopedToken(models.Model):
    """A CI token: its user's reads, and only the writes its scopes name, in its namespaces."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scoped_tokens")
    name = models.CharField(max_length=40)
    # SHA-256 of the key: a lookup by hash needs no constant-time comparison, and a copy of the
    # table gives nobody a usable key.
    key_hash = models.CharField(max_length=64, unique=True)
    key_prefix = models.CharField(max_length=12, help_text="the key's first characters, to recognise it")
    scopes = models.JSONField(default=list, help_text=f"a subset of {', '.join(TOKEN_SCOPES)}")
    namespaces = models.JSONField(default=list, blank=True, help_text="empty: every namespace its user may write")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"], condition=Q(revoked_at__isnull=True), name="scoped_token_name_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @staticmethod
    def new_key() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def audit_id(self) -> str:
        """How audit events name the token (its id and name; the key never)."""
        return f"arci:{self.pk}:{self.name}"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def covers(self, scope: str | None, namespace: str | None) -> bool:
        """Whether this token may do a write needing `scope` in `namespace` (None: not known yet)."""
        if scope not in self.scopes:
            return False
        return namespace is None or not self.namespaces or namespace in self.namespaces

    def touch(self) -> None:
        """Record a use, at most once a minute: a busy pipeline does not write on every request."""
        now = timezone.now()
        if self.last_used_at and now - self.last_used_at < LAST_USED_RESOLUTION:
            return
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ScopedToken.objects.filter(stale, pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
