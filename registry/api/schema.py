"""The OpenAPI schema is the API's contract: every input it accepts and every answer, errors included.

tests/registry/test_schemathesis.py holds the live server to it, so a status code, a shape or a
pattern documented here is a promise. Errors are documented once, here: each operation gets the
error statuses that follow from its inputs, authentication and request body, all with the one
error shape of registry/api/errors.py.
"""

import re

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated

from registry.api.permissions import CanPushOrReadOnly, TokenScope
from registry.refs import NAME_PATTERN, NAMESPACE_SEGMENT, REF_PATTERN


def _json_schema_regex(pattern: re.Pattern) -> str:
    """refs.py's pattern in the ECMA dialect OpenAPI uses: named groups are its only Python-only syntax."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern.pattern)


_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
NAME_REGEX = _json_schema_regex(NAME_PATTERN)
REF_REGEX = rf"^(?:{_json_schema_regex(REF_PATTERN)[1:-1]}|{_UUID})$"
REF_DESCRIPTION = (
    "namespace/name:vN, namespace/name@sha256:<hex>, namespace/name:<alias>, namespace/name (the newest version) "
    "or a version UUID"
)
NAME_SCHEMA = {"type": "string", "pattern": NAME_REGEX, "description": "namespace/name"}
REF_SCHEMA = {"type": "string", "pattern": REF_REGEX, "description": REF_DESCRIPTION}
NAMESPACE_SCHEMA = {"type": "string", "pattern": f"^{NAMESPACE_SEGMENT}$", "description": "a namespace"}
# Free text in queries: anything but NUL, which PostgreSQL cannot hold (DRF refuses it with a 400).
# Non-empty, because allow_blank adds its own `maxLength: 0` alternative to a `oneOf`.
TEXT_SCHEMA = {"type": "string", "pattern": "^[^\\x00]+$"}
ALIAS_REGEX = "^[a-z][a-z0-9_-]{0,63}$"
# Path parameter `alias`: an alias, or "*" where a namespace policy names its default.
ALIAS_SCHEMA = {
    "type": "string",
    "pattern": "^(?:\\*|[a-z][a-z0-9_-]{0,63})$",
    "description": "an alias such as production",
}


@extend_schema_field(NAME_SCHEMA)
class NameField(serializers.CharField):
    """`namespace/name`. Checked by registry.refs.parse_name, whose error code clients match on."""


@extend_schema_field(REF_SCHEMA)
class RefField(serializers.CharField):
    """A version reference (with allow_blank: or none). Checked by registry.refs.parse_ref, whose error
    code clients match on."""


@extend_schema_field(TEXT_SCHEMA)
class TextField(serializers.CharField):
    pass


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable and machine-readable: match on this, not on the message")
    message = serializers.CharField(help_text="what went wrong and what to do about it, for people")
    detail = serializers.DictField(
        required=False, help_text="context, e.g. the offending file or, for validation_error, the message per field"
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


ERROR_DESCRIPTIONS = {
    400: "The request is malformed: a parameter, field or reference that cannot be read (validation_error, "
    "invalid_ref, invalid_name, ...), or an upload refused before its content was looked at.",
    401: "No valid credentials: send `Authorization: Token <key>`.",
    403: "Signed in, but your role does not allow this.",
    404: "The referenced version, suite, job or page (cursor) does not exist.",
    409: "The request conflicts with what is already recorded.",
    413: "The upload, or one of its files, is larger than the configured limit.",
    415: "The request body's media type is not the one this operation reads.",
    422: "Read and refused: the files are not a valid artifact of this kind, or (suite_incompatible) "
    "the suite cannot run on this adapter's base.",
    429: "Too many attempts; wait for the time in `Retry-After`.",
    503: "A service the registry depends on (the broker) did not answer; try again later.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses to list in an operation's `extend_schema(responses=...)` beyond the implied ones."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


# Permission classes whose only refusal is "not signed in" for reads; any other may answer 403.
_READ_OPEN_PERMISSIONS = (AllowAny, IsAuthenticated, CanPushOrReadOnly, TokenScope)


class RegistryAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus what our views share: reference patterns and error answers."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "ref":
                parameter["schema"] = dict(REF_SCHEMA)
                parameter["description"] = REF_DESCRIPTION
            if parameter["in"] == "path" and parameter["name"] == "namespace":
                parameter["schema"] = dict(NAMESPACE_SCHEMA)
            if parameter["in"] == "path" and parameter["name"] == "name":
                parameter["schema"] = dict(NAME_SCHEMA)
            if parameter["in"] == "path" and parameter["name"] == "alias":
                parameter["schema"] = dict(ALIAS_SCHEMA)
        responses = operation["responses"]
        for code in self._implied_error_statuses(operation) - {int(c) for c in responses if c.isdigit()}:
            responses[str(code)] = self._get_response_for_code(error_responses(code)[code], str(code))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _implied_error_statuses(self, operation: dict) -> set[int]:
        parameters = operation.get("parameters", [])
        body = operation.get("requestBody", {}).get("content", {})
        codes = set()
        if any(p["in"] != "path" or p["schema"].get("format") != "uuid" for p in parameters) or body:
            codes.add(400)  # a <uuid:...> path converter answers 404 itself, before any view code
        if any(p["in"] == "path" for p in parameters) or any(p["name"] == "cursor" for p in parameters):
            codes.add(404)
        if self._requires_authentication(operation):
            codes.add(401)
            if self.method not in SAFE_METHODS or not self._reads_are_open():
                codes.add(403)
        if body:
            codes |= {413, 415}  # 413: past Django's or our own size limits
        if set(body) == {"multipart/form-data"}:
            codes.add(422)  # an upload whose files were read and refused
        return codes

    def _requires_authentication(self, operation: dict) -> bool:
        # drf-spectacular lists `{}` among the requirements when anonymous requests are allowed.
        security = operation.get("security", [])
        return bool(security) and {} not in security

    def _reads_are_open(self) -> bool:
        return all(isinstance(p, _READ_OPEN_PERMISSIONS) for p in self.view.get_permissions())
