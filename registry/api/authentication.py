"""Token authentication with an optional lifetime (API_TOKEN_TTL_SECONDS, 0 = tokens never expire).

A token's age is counted from Token.created, which rotation and re-issue reset, so a
pipeline keeps working by rotating before the lifetime runs out.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from registry.errors import RegistryError


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


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_is_expired(token):
            raise TokenExpired()
        return user, token
