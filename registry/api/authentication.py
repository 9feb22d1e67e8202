"""Token authentication with an optional lifetime (API_TOKEN_TTL_SECONDS, 0 = tokens never expire).

A token's age is counted from Token.created, which rotation and re-issue reset, so a
pipeline keeps working by rotating before the lifetime runs out.

`Authorization: Token <key>` also takes a scoped CI token (registry/models/access.py, keys start
with "arci_"; DRF's keys are 40 hex digits): looked up by the SHA-256 of the key, refused when
revoked (401 token_revoked) or past its expiry (401 token_expired). What it may write is decided
per view (registry/api/permissions.py TokenScope) and per namespace (registry/roles.py).
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from registry.errors import RegistryError
from registry.models.access import TOKEN_PREFIX, ScopedToken, token_key_hash
from registry.rows import fetch_instances, select_list


class TokenExpired(RegistryError, exceptions.AuthenticationFailed):
    """A RegistryError for its stable code; an AuthenticationFailed so DRF treats the request as anonymous."""

    status_code = 401

    def __init__(self):
        super().__init__(
            "token_expired",
            f"this API token is older than {settings.API_TOKEN_TTL_SECONDS} s and has expired; "
            "get a new one with POST /api/v1/auth/token (username and password), "
            "and rotate it before it expires with POST /api/v1/auth/token/rotate",
        )


def token_is_expired(token: Token) -> bool:
    ttl = settings.API_TOKEN_TTL_SECONDS
    return ttl > 0 and token.created <= timezone.now() - timedelta(seconds=ttl)


class ScopedTokenRefused(RegistryError, exceptions.AuthenticationFailed):
    status_code = 401


def scoped_token_authenticate(key: str):
    """(user, token) for a live scoped token; the user carries the token, so role checks see its limits."""
    token = ScopedToken.objects.select_related("user").filter(key_hash=token_key_hash(key)).first()
    if token is None:
        raise exceptions.AuthenticationFailed("Invalid token.")
    if token.revoked_at is not None:
        raise ScopedTokenRefused(
            "token_revoked", f"the scoped token {token.name!r} was revoked; create a new one (POST /api/v1/auth/tokens)"
        )
    if token.is_expired():
        raise ScopedTokenRefused(
            "token_expired", f"the scoped token {token.name!r} expired; create a new one (POST /api/v1/auth/tokens)"
        )
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed("User inactive or deleted.")
    token.touch()
    token.user._scoped_token = token
    return token.user, token


def _token_with_user(key: str) -> Token | None:
    """DRF's `Token.objects.select_related("user").get(key=key)` as SQL written once: every API call
    reads it, and the ORM took 1.5 ms of a request to build it (registry/rows.py)."""
    user_model = get_user_model()
    sql = (
        f"SELECT {select_list([(Token, 't'), (user_model, 'u')])} FROM {Token._meta.db_table} t "
        f"JOIN {user_model._meta.db_table} u ON u.{user_model._meta.pk.column} = t.user_id WHERE t.key = %s"
    )
    found = fetch_instances(sql, [key], [Token, user_model])
    if found is None:
        return None
    token, token.user = found
    return token


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        if key.startswith(TOKEN_PREFIX):
            return scoped_token_authenticate(key)
        token = _token_with_user(key)
        # DRF's own checks and messages (TokenAuthentication.authenticate_credentials).
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        if token_is_expired(token):
            raise TokenExpired()
        return token.user, token
