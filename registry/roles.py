"""Roles are Django groups; each user's role decides what they may write."""

ADMIN = "admin"
ENGINEER = "engineer"
APPROVER = "approver"
AUDITOR = "auditor"
ROLES = (ADMIN, ENGINEER, APPROVER, AUDITOR)


def roles_of(user) -> set[str]:
    if not user or not user.is_authenticated:
        return set()
    names = {group.name for group in user.groups.all()}
    if user.is_superuser:
        names.add(ADMIN)
    return names & set(ROLES)


def can_push(user) -> bool:
    return bool(roles_of(user) & {ADMIN, ENGINEER})


def is_admin(user) -> bool:
    return ADMIN in roles_of(user)
