"""Who may write what: roles are Django groups (global) and grants on namespaces (NamespaceRole).

A user's roles in a namespace are their global roles (their groups; a superuser is an admin) and
the roles granted on that namespace to them or to one of their groups. Namespaces scope writes,
not reads: every signed-in user reads everything.

- viewer: reads only (the same as having no role; a grant records who is expected to look)
- engineer: pushes bases, adapters and suites; attaches suites and signatures; asks for evaluations
  and promotions
- approver: requests, approves and rejects promotions; rolls aliases back; moves canaries
- auditor (global only): reads the audit trail and exports it
- admin: everything in its namespace (signing and promotion policies, role grants); a global admin
  also operates jobs and webhooks

A request made with a scoped CI token (registry/models/access.py) may do no more than its user and
no more than the token: its scopes name the writes, its namespaces where. `token_check` says why
with the code `token_scope`, so a pipeline is told its token is the reason, not its user.

Roles are read with one query per user object (global groups and namespace grants together),
memoised on the object: a request's user is loaded once, so a page asking about many namespaces
asks the database once. A change to groups or grants (signals below) makes every memo stale, so a long-lived user
object (a shell, a test) sees it at once.
"""

from dataclasses import dataclass, field

from registry.errors import RegistryError

ADMIN = "admin"
ENGINEER = "engineer"
APPROVER = "approver"
AUDITOR = "auditor"
VIEWER = "viewer"
ROLES = (ADMIN, ENGINEER, APPROVER, AUDITOR, VIEWER)

PUSHERS = frozenset({ADMIN, ENGINEER})
REQUESTERS = frozenset({ADMIN, ENGINEER, APPROVER})
DECIDERS = frozenset({ADMIN, APPROVER})

# Scopes a CI token may carry (registry/models/access.py TOKEN_SCOPES); a view names the one its
# write needs in `required_scope` (registry/api/permissions.py TokenScope).
SCOPE_PUSH = "push"
SCOPE_PROMOTION_REQUEST = "promotion.request"
# A serving fleet's telemetry: not namespaced (one fleet serves every namespace), so a token
# carrying it ignores its namespaces for this write, and only a global admin may create one.
SCOPE_TELEMETRY = "telemetry"

_generation = 0  # bumped by every change to groups or grants: memos older than it are reloaded


@dataclass
class _Access:
    generation: int
    global_roles: frozenset
    granted: dict = field(default_factory=dict)  # namespace -> frozenset of roles


def _access(user) -> _Access:
    memo = getattr(user, "_registry_access", None)
    if memo is not None and memo.generation == _generation:
        return memo
    generation = _generation  # read first: a change while loading leaves the memo stale, not wrong
    names = set()
    if user.is_superuser:
        names.add(ADMIN)
    granted: dict[str, set] = {}
    for namespace, role in _roles_rows(user.pk):
        if namespace == "":
            names.add(role)
        else:
            granted.setdefault(namespace, set()).add(role)
    memo = _Access(generation, frozenset(names & set(ROLES)), {ns: frozenset(r) for ns, r in granted.items()})
    user._registry_access = memo
    return memo


def _roles_rows(user_id) -> list[tuple[str, str]]:
    """One statement for both (every authenticated write asks): the user's groups, as rows with an
    empty namespace (a grant always names one), and the namespace grants to them or their groups.
    Written as SQL: the same union built by the ORM took 3 ms a request, this 0.6 ms with its round trip."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from registry.models import NamespaceRole

    memberships = get_user_model().groups.through._meta.db_table
    sql = (
        f"SELECT '', g.name FROM {Group._meta.db_table} g JOIN {memberships} m ON m.group_id = g.id "
        "WHERE m.user_id = %(user)s "
        f"UNION ALL SELECT r.namespace, r.role FROM {NamespaceRole._meta.db_table} r WHERE r.user_id = %(user)s "
        f"OR r.group_id IN (SELECT group_id FROM {memberships} WHERE user_id = %(user)s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": user_id})
        return cursor.fetchall()


def _signed_in(user) -> bool:
    return bool(user is not None and user.is_authenticated)


def roles_of(user) -> set[str]:
    """The user's global roles (their groups; a superuser is an admin)."""
    if not _signed_in(user):
        return set()
    return set(_access(user).global_roles)


def roles_in(user, namespace: str) -> set[str]:
    """The user's roles in `namespace`: global roles and those granted on it to them or their groups."""
    if not _signed_in(user):
        return set()
    access = _access(user)
    return set(access.global_roles | access.granted.get(namespace, frozenset()))


def namespace_grants(user) -> dict[str, set[str]]:
    """Namespace -> roles granted there (global roles not included)."""
    if not _signed_in(user):
        return {}
    return {namespace: set(roles) for namespace, roles in _access(user).granted.items()}


def invalidate() -> None:
    """Forget every memo: called when groups, memberships or grants change."""
    global _generation
    _generation += 1


# --- Scoped tokens ---------------------------------------------------------------------------


def scoped_token(user):
    """The scoped CI token this request authenticated with (set by registry/api/authentication.py), or None."""
    return getattr(user, "_scoped_token", None)


def _token_allows(user, scope: str | None, namespace: str | None) -> bool:
    token = scoped_token(user)
    return token is None or token.covers(scope, namespace)


class TokenScopeDenied(RegistryError):
    status_code = 403

    def __init__(self, message: str):
        super().__init__("token_scope", message)


def token_refusal(token, scope: str | None, namespace: str | None, action: str) -> TokenScopeDenied:
    """Why `token` may not do `action`: the scope it lacks, or the namespaces it is limited to."""
    has = ", ".join(token.scopes) or "no scope"
    if scope is None:
        return TokenScopeDenied(
            f"{action} needs a personal API token or a signed-in session; the scoped token {token.name!r} "
            f"carries {has}, and scoped tokens only push, request promotions and post telemetry"
        )
    if scope not in token.scopes:
        return TokenScopeDenied(
            f"{action} needs the {scope!r} scope; the token {token.name!r} carries {has}: "
            f"create one with --scope {scope}"
        )
    return TokenScopeDenied(
        f"the token {token.name!r} is limited to namespaces {', '.join(token.namespaces)}; "
        f"{action} in {namespace!r} needs a token for that namespace"
    )


def token_check(user, scope: str | None, namespace: str | None, action: str = "this write") -> None:
    """Refuse (403 token_scope) when the request's scoped token does not cover `scope` in `namespace`.

    scope None: a write no scoped token may do (approving, policies, grants). Nothing happens for a
    request made with a session or a personal token.
    """
    token = scoped_token(user)
    if token is not None and not token.covers(scope, namespace):
        raise token_refusal(token, scope, namespace, action)


# --- What a user (through this request's credentials) may do ---------------------------------


def _holds(user, namespace: str | None, wanted: frozenset) -> bool:
    """One of `wanted` in `namespace`; without one, globally or in at least one namespace (a first
    check, made before the namespace is known, that refuses those who could do it nowhere)."""
    if namespace is None:
        return bool(_global(user, wanted) or namespaces_where(user, wanted))
    return bool(roles_in(user, namespace) & wanted)


def can_push(user, namespace: str | None = None) -> bool:
    """Push into `namespace` (bases, adapters, suites; attach suites and signatures; ask for evaluations)."""
    return _token_allows(user, SCOPE_PUSH, namespace) and _holds(user, namespace, PUSHERS)


def can_request_promotion(user, namespace: str | None = None) -> bool:
    return _token_allows(user, SCOPE_PROMOTION_REQUEST, namespace) and _holds(user, namespace, REQUESTERS)


def can_decide_promotion(user, namespace: str | None = None) -> bool:
    """Approve, reject, roll back, move canaries: never with a scoped token."""
    return scoped_token(user) is None and _holds(user, namespace, DECIDERS)


def can_post_telemetry(user) -> bool:
    """Post serving telemetry: a global admin, in person or through a token with the telemetry scope."""
    return _token_allows(user, SCOPE_TELEMETRY, None) and ADMIN in roles_of(user)


def is_admin(user, namespace: str | None = None) -> bool:
    """Admin of `namespace` (a global admin is admin everywhere); without one, a global admin.
    Never through a scoped token: its writes are its scopes."""
    if scoped_token(user) is not None:
        return False
    if namespace is None:
        return ADMIN in roles_of(user)
    return ADMIN in roles_in(user, namespace)


def _global(user, wanted: frozenset) -> bool:
    return bool(roles_of(user) & wanted)


def namespaces_where(user, wanted: frozenset) -> set[str]:
    """Namespaces where a grant gives the user one of `wanted` (global roles not counted)."""
    return {namespace for namespace, roles in namespace_grants(user).items() if roles & wanted}


def _role_names(roles: frozenset) -> str:
    ordered = [role for role in ROLES if role in roles]
    return ", ".join(ordered[:-1]) + f" or {ordered[-1]}" if len(ordered) > 1 else ordered[0]


def require_push(user, namespace: str, action: str = "pushing") -> None:
    """Refuse a push-like write into `namespace`: 403 token_scope (the token's limits) or permission_denied."""
    token_check(user, SCOPE_PUSH, namespace, f"{action} to {namespace}")
    if not can_push(user, namespace):
        raise RegistryError(
            "permission_denied",
            f"{action} to {namespace} needs the {_role_names(PUSHERS)} role, globally or in {namespace} "
            f"(you have: {', '.join(sorted(roles_in(user, namespace))) or 'no role'})",
            status_code=403,
        )


def require_admin(user, namespace: str, action: str) -> None:
    """Refuse a namespace admin's write (policies, grants) to anyone who is not admin of `namespace`."""
    token_check(user, None, namespace, action)
    if not is_admin(user, namespace):
        raise RegistryError(
            "permission_denied", f"{action} needs the admin role, globally or in {namespace}", status_code=403
        )


def connect_signals() -> None:
    """Called once from RegistryConfig.ready: any change to who holds which role invalidates memos."""
    from django.contrib.auth.models import Group, User
    from django.db.models.signals import m2m_changed, post_delete, post_save

    from registry.models import NamespaceRole

    def changed(update_fields=None, **kwargs):
        if update_fields and set(update_fields) <= {"last_login"}:
            return  # a sign-in changes no role
        invalidate()

    for sender in (NamespaceRole, Group, User):
        post_save.connect(changed, sender=sender, weak=False, dispatch_uid=f"roles.saved.{sender.__name__}")
        post_delete.connect(changed, sender=sender, weak=False, dispatch_uid=f"roles.deleted.{sender.__name__}")
    m2m_changed.connect(changed, sender=User.groups.through, weak=False, dispatch_uid="roles.memberships")
