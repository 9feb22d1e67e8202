"""Who is acting, and in which request: what every audit event records about its origin.

`AuditContextMiddleware` keeps the current request in a context variable, with its request id
(the client's X-Request-ID when it is a sane token, else a new one; echoed in the response) and
the client address (REMOTE_ADDR: X-Forwarded-For is not trusted here). The actor is resolved
lazily, when an event is recorded: DRF authenticates a token inside the view, after every
middleware has run, and sets request.user and request.auth on the Django request then.

Outside requests (Celery tasks, management commands) the actor is the system, unless the caller
names one with `acting_as(actor_worker(hostname))`.
"""

import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from registry.models.access import ScopedToken
from registry.roles import roles_of

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SYSTEM_ACTOR_NAME = "registry"


@dataclass(frozen=True)
class Actor:
    kind: str  # user | token | worker | system (AuditEvent.ActorKind)
    id: str = ""
    name: str = ""
    role: str = ""
    token_id: str = ""


@dataclass
class RequestContext:
    request_id: str
    client_address: str
    request: object = None  # the Django HttpRequest, read for its user when an event is recorded


_request: ContextVar[RequestContext | None] = ContextVar("audit_request", default=None)
_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def token_id(key: str) -> str:
    """A stable, public id for an API token: a fingerprint of its key, from which the key cannot be had.
    (A token's primary key is its key, so neither the pk nor a prefix of it is recorded.)"""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def actor_for_user(user, token=None) -> Actor:
    """A signed-in user; with the API token they used, a token actor that records the token's id."""
    if user is None or not user.is_authenticated:
        return Actor(kind="user", name="anonymous")
    return Actor(
        kind="token" if token is not None else "user",
        id=str(user.pk),
        name=user.get_username(),
        role=",".join(sorted(roles_of(user))),
        token_id=_token_audit_id(token) if token is not None else "",
    )


def _token_audit_id(token) -> str:
    """A scoped CI token by its id and name ("arci:12:ci"), a personal token by its key's fingerprint."""
    if isinstance(token, ScopedToken):
        return token.audit_id
    return token_id(token.key)


def actor_worker(hostname: str) -> Actor:
    return Actor(kind="worker", id=hostname, name=hostname)


def actor_system(name: str = SYSTEM_ACTOR_NAME) -> Actor:
    return Actor(kind="system", id=name, name=name)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Record `actor` for every event written inside the block (a worker's task, a command)."""
    reset = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(reset)


def current_request() -> RequestContext | None:
    return _request.get()


def current_actor() -> Actor:
    """The actor named by acting_as, else the current request's user, else the system."""
    actor = _actor.get()
    if actor is not None:
        return actor
    context = _request.get()
    if context is None or context.request is None:
        return actor_system()
    request = context.request
    # getattr: request.auth exists only once DRF authenticated the request.
    user, auth = getattr(request, "user", None), getattr(request, "auth", None)
    return actor_for_user(user, auth if _is_token(auth) else None)


def _is_token(auth) -> bool:
    return isinstance(auth, ScopedToken) or (auth is not None and isinstance(getattr(auth, "key", None), str))


def request_id_from(header: str | None) -> str:
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class AuditContextMiddleware:
    """Sets the audit context for the request and answers its request id in X-Request-ID."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        context = RequestContext(
            request_id=request_id_from(request.headers.get(REQUEST_ID_HEADER)),
            client_address=request.META.get("REMOTE_ADDR", "")[:64],
            request=request,
        )
        request.request_id = context.request_id
        reset = _request.set(context)
        try:
            response = self.get_response(request)
        finally:
            _request.reset(reset)
        response[REQUEST_ID_HEADER] = context.request_id
        return response
