"""Errors the registry reports to people: a stable code, a message, an HTTP status.

Every refusal the API, the UI or the CLI shows comes from one of these, so the
code a CI pipeline matches on is the same wherever the refusal happened.
"""


class RegistryError(Exception):
    """A refusal with a stable machine-readable code and a human-actionable message."""

    status_code = 400

    def __init__(self, code: str, message: str, *, status_code: int | None = None, **detail):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code

    def as_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class InvalidArtifact(RegistryError):
    """An uploaded file or set of files that fails validation (HTTP 422)."""

    status_code = 422


class UploadRefused(RegistryError):
    """An upload refused before its content was looked at: names, sizes, counts (HTTP 400/413)."""

    status_code = 400


class NotFound(RegistryError):
    status_code = 404


class Conflict(RegistryError):
    status_code = 409
