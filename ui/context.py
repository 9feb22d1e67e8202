from registry.roles import can_push, roles_of


def shell(request) -> dict:
    """What the navigation bar shows on every page: the user's role and what they may do."""
    user = getattr(request, "user", None)
    user_roles = sorted(roles_of(user)) if user else []
    return {"user_role": ", ".join(user_roles) or "no role", "user_can_push": bool(user) and can_push(user)}
