from rest_framework.permissions import SAFE_METHODS, BasePermission

from registry.roles import can_push, is_admin


class CanPushOrReadOnly(BasePermission):
    """Anyone signed in reads; only engineers and admins push new versions."""

    message = "pushing versions needs the engineer or admin role"

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or can_push(request.user)


class IsAdminRole(BasePermission):
    """Operator actions (re-dispatch, cancel) need the admin role."""

    message = "this action needs the admin role"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and is_admin(request.user))
