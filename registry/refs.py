"""Human references to versions, parsed once for API, UI and CLI alike.

Accepted forms:
    namespace/name:v3              a version number
    namespace/name@sha256:<hex>    a manifest digest
    namespace/name:<alias>         an alias such as production (adapters)
    namespace/name                 the newest version
    <uuid>                         a version's id
"""

import re
import uuid
from dataclasses import dataclass

from registry.errors import RegistryError

# The lengths are the columns' (namespace 64, name 128): a longer name is refused here, not by PostgreSQL.
NAMESPACE_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
NAMESPACE_PATTERN = re.compile(rf"^{NAMESPACE_SEGMENT}$")
NAME_PATTERN = re.compile(rf"^(?P<namespace>{NAMESPACE_SEGMENT})/(?P<name>{SEGMENT})$")
REF_PATTERN = re.compile(
    rf"^(?P<namespace>{NAMESPACE_SEGMENT})/(?P<name>{SEGMENT})"
    r"(?:@sha256:(?P<digest>[0-9a-f]{64})|:v(?P<number>[0-9]{1,9})|:(?P<alias>[a-z][a-z0-9_-]{0,63}))?$"
)


@dataclass(frozen=True)
class Ref:
    text: str
    id: uuid.UUID | None = None
    namespace: str | None = None
    name: str | None = None
    number: int | None = None
    digest: str | None = None
    alias: str | None = None


class InvalidRef(RegistryError):
    status_code = 400


def parse_ref(text: str) -> Ref:
    text = (text or "").strip()
    try:
        return Ref(text=text, id=uuid.UUID(text))
    except ValueError:
        pass
    match = REF_PATTERN.match(text)
    if not match:
        raise InvalidRef(
            "invalid_ref",
            f"{text[:100]!r} is not a reference; use namespace/name:vN, namespace/name@sha256:<hex>, "
            "namespace/name:<alias>, namespace/name or a version UUID",
        )
    number = match["number"]
    return Ref(
        text=text,
        namespace=match["namespace"],
        name=match["name"],
        number=int(number) if number else None,
        digest=match["digest"],
        alias=match["alias"],
    )


def parse_name(text: str) -> tuple[str, str]:
    """Split `namespace/name`, refusing anything else with an actionable message."""
    match = NAME_PATTERN.match((text or "").strip())
    if not match:
        raise RegistryError(
            "invalid_name",
            f"{(text or '')[:100]!r} is not a valid name; use namespace/name with letters, digits, '.', '_' or '-'",
        )
    return match["namespace"], match["name"]
