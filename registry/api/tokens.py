"""API tokens: issue, rotate, and the answer to a client locked out after too many failed logins."""

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api.authentication import ExpiringTokenAuthentication, token_is_expired
from registry.api.errors import json_error
from registry.api.permissions import TokenScope
from registry.errors import RegistryError

LOCKED_OUT_CODE = "too_many_login_failures"

TokenResponse = inline_serializer("TokenResponse", fields={"token": serializers.CharField()})


def token_issue(request, user) -> Token:
    """The user's token after a successful password login; an expired one is replaced, not handed out.

    `request` is Django's HttpRequest that authenticate() saw: the login succeeded, so its
    failure count (per username and address) starts again, as it does for the UI login.
    """
    AxesProxyHandler.reset_attempts(ip_address=request.axes_ip_address, username=user.get_username())
    with transaction.atomic():
        token, _ = Token.objects.select_for_update().get_or_create(user=user)
        if token_is_expired(token):
            token.delete()
            token = Token.objects.create(user=user)
    return token


def token_rotate(token: Token) -> Token:
    """Replace a token with a new one; the old key stops working in the same transaction."""
    with transaction.atomic():
        deleted, _ = Token.objects.filter(pk=token.pk).delete()
        if not deleted:
            # A concurrent rotation with the same key got there first.
            raise RegistryError("token_already_rotated", "this token was already rotated", status_code=401)
        return Token.objects.create(user=token.user)


class TokenRotateView(APIView):
    """Exchange the current API token for a new one; the current token stops working at once."""

    authentication_classes = [ExpiringTokenAuthentication]
    permission_classes = [IsAuthenticated, TokenScope]  # a scoped CI token is revoked and re-created, not rotated

    # 401 (no token, a wrong, rotated or expired one) is implied by RegistryAutoSchema, with the Error body.
    @extend_schema(request=None, responses={200: TokenResponse})
    def post(self, request):
        return Response({"token": token_rotate(request.auth).key})


def login_locked_out_response(retry_after: int) -> JsonResponse:
    minutes = max(1, round(retry_after / 60))
    message = (
        f"too many failed logins for this username from this address; try again in {minutes} min "
        f"(after {settings.AXES_FAILURE_LIMIT} failures, logins pause for {settings.LOGIN_COOL_OFF_SECONDS} s)"
    )
    response = json_error(LOCKED_OUT_CODE, message, 429)
    response["Retry-After"] = str(retry_after)
    return response
