"""One error shape for the whole API: {"error": {"code", "message", "detail"?}}.

Three layers keep it so whatever goes wrong and whatever DEBUG says:
- `api_exception_handler` (DRF) turns every exception an API view raises into the
  shape, the unexpected ones into a 500 `internal_error` without a traceback;
- `handler400/403/404/500` (config/urls.py) answer JSON for /api/ paths when Django
  itself refuses a request outside a view, and the HTML templates elsewhere;
- `ApiErrorMiddleware` catches what Django renders as a page even so (with DEBUG on,
  Django shows its debug pages instead of calling the handlers).
"""

import logging

from django.core import signals
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from registry.errors import RegistryError

API_PREFIX = "/api/"
INTERNAL_ERROR_MESSAGE = "the server failed to answer this request; the error was logged"
# Headers an error page may carry that clients act on; kept when the page is replaced.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
_STATUS_CODES = {
    400: ("bad_request", "the request could not be understood"),
    401: ("not_authenticated", "authentication is required"),
    403: ("permission_denied", "you do not have permission to do this"),
    404: ("not_found", "no API endpoint or object at this path"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("request_too_large", "the request is too large"),
    429: ("throttled", "too many requests; retry later"),
}
logger = logging.getLogger("django.request")

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


def _refused_request(exc: Exception) -> tuple[str, str, int]:
    """Django's refusals of a request body or headers (SuspiciousOperation, BadRequest)."""
    if isinstance(exc, RequestDataTooBig):
        return "request_too_large", "the request body is larger than the server accepts", 413
    if isinstance(exc, TooManyFilesSent):
        return "too_many_files", "the request holds more file parts than the server accepts", 400
    if isinstance(exc, TooManyFieldsSent):
        return "too_many_fields", "the request holds more form fields than the server accepts", 400
    return "bad_request", "the request was refused as malformed", 400


def _internal_error(exc: Exception, request) -> Response:
    # Logged with its traceback and signalled as Django does for a 500 (error reporters
    # and the test client listen); the client gets no traceback.
    logger.error("Internal Server Error: %s", getattr(request, "path", ""), exc_info=exc)
    signals.got_request_exception.send(sender=None, request=getattr(request, "_request", request))
    set_rollback()
    return error_response("internal_error", INTERNAL_ERROR_MESSAGE, status.HTTP_500_INTERNAL_SERVER_ERROR)


def api_exception_handler(exc, context):
    if isinstance(exc, RegistryError):
        response = error_response(exc.code, exc.message, exc.status_code, exc.detail or None)
        if getattr(exc, "auth_header", None):  # a 401 (token_expired) says how to authenticate, as DRF's do
            response["WWW-Authenticate"] = exc.auth_header
        if exc.status_code == 403:  # a service's own role check refused a signed-in user
            record_denied_write(context.get("request"), exc.message)
        return response
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        return error_response(*_refused_request(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return _internal_error(exc, context.get("request"))
    if isinstance(exc, exceptions.PermissionDenied):  # signed in, not allowed (anonymous 401s are not logged)
        record_denied_write(context.get("request"), _message_of(exc.detail))
    if isinstance(exc, exceptions.ValidationError):
        return error_response("validation_error", _message_of(exc.detail), status.HTTP_400_BAD_REQUEST, exc.detail)
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    response.data = {"error": {"code": code, "message": _message_of(exc.detail)}}
    return response


def record_denied_write(request, message: str) -> None:
    """A refused attempt to change something is an audit event (reads that are refused are not).

    Written in its own transaction: the request's work, if any, is being rolled back."""
    if request is None or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    from registry.audit.services import audit_record

    audit_record(
        type="access.denied",
        outcome="denied",
        reason=message[:2000],
        evidence={"method": request.method, "path": request.path[:500]},
    )


# --- Django's own error views and pages, under /api/ -------------------------------------------


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def json_error(code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status_code)


def handler400(request, exception=None):
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    return json_error(*_refused_request(exception))


def handler403(request, exception=None):
    record_denied_write(request, str(exception or "permission denied"))
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return json_error(*_STATUS_CODES[403], 403)


def handler404(request, exception=None):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return json_error(*_STATUS_CODES[404], 404)


def handler500(request):
    if not _is_api(request):
        return defaults.server_error(request)
    return json_error("internal_error", INTERNAL_ERROR_MESSAGE, 500)


class ApiErrorMiddleware:
    """Under /api/, an error that Django rendered as a page becomes the JSON error shape.

    Place it before CommonMiddleware, so a slash redirect still happens first. JSON
    error responses (the API's own) pass untouched.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not _is_api(request) or response.status_code < 400 or _is_json(response):
            return response
        status_code = response.status_code
        if status_code >= 500:
            code, message = "internal_error", INTERNAL_ERROR_MESSAGE
        else:
            code, message = _STATUS_CODES.get(status_code, ("error", response.reason_phrase.lower()))
        replaced = json_error(code, message, status_code)
        for header in _KEPT_HEADERS:
            if header in response:
                replaced[header] = response[header]
        return replaced


def _is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() in ("application/json", "application/problem+json")
