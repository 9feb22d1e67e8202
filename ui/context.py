from registry.roles import ADMIN, AUDITOR, can_push, namespace_grants, roles_of

GRANTS_SHOWN = 3


def shell(request) -> dict:
    """What the navigation bar shows on every page: the user's role and what they may do."""
    user = getattr(request, "user", None)
    user_roles = sorted(roles_of(user)) if user else []
    return {
        "user_role": _role_text(user_roles, namespace_grants(user) if user else {}),
        # Engineers push, globally or in a namespace granted to them; the namespace is checked on upload.
        "user_can_push": bool(user) and can_push(user),
        # The rule of IsAuditorOrAdmin (registry/audit/api.py), which the Audit pages enforce.
        "user_can_audit": bool({AUDITOR, ADMIN} & set(user_roles)),
        "user_is_admin": ADMIN in user_roles,  # the Webhooks link (ui/webhooks.py: admins only)
    }


def _role_text(global_roles: list[str], grants: dict[str, set[str]]) -> str:
    """Global roles, then roles granted on namespaces ("approver in acme"), a few and then a count."""
    granted = [f"{role} in {namespace}" for namespace in sorted(grants) for role in sorted(grants[namespace])]
    shown = global_roles + granted[:GRANTS_SHOWN]
    if len(granted) > GRANTS_SHOWN:
        shown.append(f"+{len(granted) - GRANTS_SHOWN} more")
    return ", ".join(shown) or "no role"
