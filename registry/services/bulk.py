"""Bulk registration: many adapter versions from one request, each as if pushed alone.

Every item goes through `adapter_version_ingest`, the single push's service, so an item is
validated, permission-checked in its own namespace, signed, audited and queued for checks
exactly like `adapterctl push`. Each item commits (or rolls back) on its own: a refused item
leaves no rows and no blobs, only its `adapter.upload_refused` audit event, and does not stop
the items after it.

Why not one transaction for the whole batch with a savepoint per item: the audit chain head is
locked from an item's first event until its transaction commits (registry/audit/services.py), so
a batch transaction would hold every other writer of the registry for the length of the batch.
Measured, the commit per item is a small part of an item's cost (BENCHMARKS.md, "Bulk
registration").
"""

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser

from registry.errors import RegistryError
from registry.formats.artifact import IncomingFile
from registry.services.ingest import adapter_version_ingest, upload_refusal_record

# Items per request. The request's file parts are bounded too, by the single push's limits
# (settings.MAX_FILES_PER_UPLOAD parts, MAX_UPLOAD_BYTES in all), so `adapterctl push-many`
# sends 200 items or fewer per request.
BULK_MAX_ITEMS = 200

CREATED, EXISTING, REFUSED = "created", "existing", "refused"


@dataclass
class BulkItem:
    """One adapter version to register; `refusal` is set when its fields already failed validation."""

    index: int
    name: str
    base: str = ""
    parent: str | None = None
    provenance: dict | None = None
    files: list[IncomingFile] = field(default_factory=list)
    signature: bytes | None = None
    refusal: RegistryError | None = None


@dataclass
class BulkItemResult:
    index: int
    name: str
    status: str
    code: str = ""
    message: str = ""
    ref: str = ""
    digest: str = ""
    id: str = ""
    version_status: str = ""  # received, checking, ready or rejected (a failed static check)


@dataclass
class BulkReport:
    results: list[BulkItemResult]

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)


def adapter_versions_bulk_ingest(*, items: list[BulkItem], user: AbstractBaseUser | None) -> BulkReport:
    """Register `items` in order, each in its own transaction; a refusal is reported, never raised."""
    return BulkReport(results=[_bulk_item_ingest(item, user) for item in items])


def _bulk_item_ingest(item: BulkItem, user) -> BulkItemResult:
    try:
        if item.refusal is not None:
            raise item.refusal
        result = adapter_version_ingest(
            name=item.name,
            files=item.files,
            base_ref=item.base,
            parent_ref=item.parent,
            provenance=item.provenance,
            signature=item.signature,
            user=user,
        )
    except RegistryError as exc:
        _bulk_refusal_record(item, exc)
        return BulkItemResult(index=item.index, name=item.name, status=REFUSED, code=exc.code, message=exc.message)
    version = result.version
    return BulkItemResult(
        index=item.index,
        name=item.name,
        status=CREATED if result.created else EXISTING,
        ref=version.ref,
        digest=version.digest,
        id=str(version.id),
        version_status=version.status,
    )


def _bulk_refusal_record(item: BulkItem, exc: RegistryError) -> None:
    """The same event a refused single push records, with the item's place in the batch."""
    upload_refusal_record(kind="adapter", name=item.name, code=exc.code, message=exc.message, bulk_index=item.index)
