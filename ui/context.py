from registry.roles import ADMIN, AUDITOR, can_push, roles_of


def shell(request) -> dict:
    """What the navigation bar shows on every page: the user's role and what they may do."""
    user = getattr(request, "user", None)
    user_roles = sorted(roles_of(user)) if user else []
    return {
        "user_role": ", ".join(user_roles) or "no role",
        "user_can_push": bool(user) and can_push(user),
        # The rule of IsAuditorOrAdmin (registry/audit/api.py), which the Audit pages enforce.
        "user_can_audit": bool({AUDITOR, ADMIN} & set(user_roles)),
        "user_is_admin": ADMIN in user_roles,  # the Webhooks link (ui/webhooks.py: admins only)
    }
