"""One error shape for the whole API: {"error": {"code", "message", "detail"?}}."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from registry.errors import RegistryError

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_request",
    exceptions.Throttled: "throttled",
    exceptions.NotAcceptable: "not_acceptable",
}


def _message_of(detail) -> str:
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        return f"{field}: {_message_of(value)}"
    if isinstance(detail, list) and detail:
        return _message_of(detail[0])
    return str(detail)


def error_response(code: str, message: str, status_code: int, detail=None) -> Response:
    body = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return Response({"error": body}, status=status_code)


def api_exception_handler(exc, context):
    if isinstance(exc, RegistryError):
        return error_response(exc.code, exc.message, exc.status_code, exc.detail or None)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return error_response("validation_error", _message_of(exc.detail), status.HTTP_400_BAD_REQUEST, exc.detail)
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    response.data = {"error": {"code": code, "message": _message_of(exc.detail)}}
    return response
