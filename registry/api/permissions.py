"""The API's permission classes. Role checks that need a namespace happen where it is known (the
services and views call registry/roles.py); these classes refuse early what no namespace would allow.

A scoped CI token reads, and writes only where the view declares the scope the write needs
(`required_scope = "push"` on the upload views, "promotion.request" on POST promotions).
TokenScope enforces it, from DEFAULT_PERMISSION_CLASSES and from each class here that a view may
name instead (they carry `applies_token_scope`); tests/registry/test_scoped_tokens.py checks that
every view that writes applies it.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from registry import roles


def token_scope_check(request, view) -> None:
    """403 token_scope when a scoped token writes where the view does not declare one of its scopes.

    Namespaces are checked later, where the namespace written to is known (registry/roles.py)."""
    token = roles.scoped_token(request.user)
    if token is None or request.method in SAFE_METHODS:
        return
    scope = getattr(view, "required_scope", None)
    if scope not in token.scopes:
        raise roles.token_refusal(token, scope, None, f"{request.method} {request.path}")


class TokenScope(BasePermission):
    """A request with a scoped token may write only where the view's `required_scope` is one of its scopes."""

    applies_token_scope = True

    def has_permission(self, request, view):
        token_scope_check(request, view)
        return True


def _signed_in(request) -> bool:
    return bool(request.user and request.user.is_authenticated)


class SignedInReadsRoleWrites(BasePermission):
    """Anyone signed in reads; a write needs what `may_write` says of the user (and the view's
    token scope, token_scope_check). Subclasses say who may write and the message when not."""

    applies_token_scope = True

    def may_write(self, user) -> bool:
        raise NotImplementedError

    def has_permission(self, request, view):
        if not _signed_in(request):
            return False
        token_scope_check(request, view)
        return request.method in SAFE_METHODS or self.may_write(request.user)


class CanPushOrReadOnly(SignedInReadsRoleWrites):
    """Writes need the engineer or admin role somewhere (globally or on a namespace). The namespace
    written to is checked once it is known (roles.require_push)."""

    message = "pushing needs the engineer or admin role, globally or in a namespace"

    def may_write(self, user) -> bool:
        return roles.can_push(user)


class IsAdminRole(BasePermission):
    """Operator actions (jobs, webhooks) need the global admin role."""

    applies_token_scope = True
    message = "this action needs the admin role"

    def has_permission(self, request, view):
        if not _signed_in(request):
            return False
        token_scope_check(request, view)
        if request.method in SAFE_METHODS:  # an admin's scoped token reads what its user reads
            return roles.ADMIN in roles.roles_of(request.user)
        return roles.is_admin(request.user)
