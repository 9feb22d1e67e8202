"""Ingest of base model and adapter versions: validate, store blobs, record rows.

Order matters for "nothing half-written": everything is validated from the
temporary files first; then blobs are moved into the content-addressed store;
then the rows are written in one transaction. If that transaction fails, the
blobs this call created are removed again unless another version uses them.

A push is on the hot path (one adapter per customer, pushed by CI), so it reads
nothing twice: the headers validated here go straight to the static check, the
base's headers come from the tensor index stored on its row at registration, and
the rows are written with as few statements as the checks allow
(tests/registry/test_push_cost.py holds the count).
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from registry import roles
from registry.audit.services import audit_chain_held, audit_chain_lock, audit_record, audit_subject
from registry.errors import Conflict, InvalidArtifact, RegistryError
from registry.formats.artifact import (
    AdapterSummary,
    IncomingFile,
    validate_adapter_upload,
    validate_base_upload,
)
from registry.formats.model_card import ModelCard, base_model_warnings
from registry.formats.strict_json import check_storable
from registry.formats.tensor_index import tensor_index, tensors_from_index
from registry.models import (
    Adapter,
    AdapterFile,
    AdapterVersion,
    BaseModel,
    BaseModelFile,
    BaseModelVersion,
    Blob,
    Status,
)
from registry.refs import NAME_PATTERN, parse_name
from registry.selectors import adapter_version_get, base_version_get
from registry.services.checks import adapter_version_checks_start, static_check_result, static_check_status
from registry.services.jobs import base_tensor_index
from registry.services.signatures import CheckedSignature, signature_check_upload, signature_record
from registry.storage import get_blob_store

PROVENANCE_FIELDS = {
    "mlflow_run_id": 64,
    "mlflow_run_uri": 512,
    "dataset_name": 256,
    "dataset_digest": 128,
    "code_commit": 64,
}


@dataclass
class IngestResult:
    version: BaseModelVersion | AdapterVersion
    created: bool


def _store_blobs(files: list[IncomingFile]) -> list[str]:
    """Move every file into the blob store; return the digests this call newly created."""
    store = get_blob_store()
    created = []
    for incoming in files:
        if store.put_file(incoming.sha256, incoming.temp_path):
            created.append(incoming.sha256)
    return created


def _discard_blobs(digests: list[str]) -> None:
    store = get_blob_store()
    referenced = set(Blob.objects.filter(sha256__in=digests).values_list("sha256", flat=True))
    for digest in digests:
        if digest not in referenced:
            store.delete(digest)


def _record_blobs(files: list[IncomingFile]) -> None:
    Blob.objects.bulk_create([Blob(sha256=f.sha256, size=f.size) for f in files], ignore_conflicts=True)


def _existing_or_next_number(versions, digest: str):
    """The version of `versions` with this digest, else None and the number the next one gets:
    one query for the usual case, a new version."""
    found = versions.aggregate(highest=Max("number"), same=Count("pk", filter=Q(digest=digest)))
    if found["same"]:
        return versions.get(digest=digest), None
    return None, (found["highest"] or 0) + 1


def _locked_repository(model, namespace: str, name: str, user) -> tuple:
    """The name's row, locked until the transaction ends, and whether this call created it.

    The row lock serialises version numbering (and the idempotency check) per name. A new name
    is inserted first, which locks it, in one statement (a push per customer is mostly a new name);
    ON CONFLICT DO NOTHING leaves an existing one, or one a concurrent push created first, to be
    locked with a second statement.
    """
    audit_chain_lock()  # the chain head before any row: see registry/services/transitions.py
    repository = model(namespace=namespace, name=name, created_by=user, created_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {model._meta.db_table} (namespace, name, description, created_at, created_by_id) "
            "VALUES (%s, %s, '', %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            [namespace, name, repository.created_at, user.pk if user is not None else None],
        )
        inserted = cursor.fetchone()
    if inserted is None:
        return model.objects.select_for_update().get(namespace=namespace, name=name), False
    repository.id = inserted[0]
    repository._state.adding, repository._state.db = False, connection.alias
    return repository, True


def _existing_or_next(repository, created: bool, digest: str):
    """As `_existing_or_next_number`; a name this transaction created has no versions yet."""
    return (None, 1) if created else _existing_or_next_number(repository.versions, digest)


def _record_upload(kind: str, version, files: list[IncomingFile], **lineage) -> None:
    audit_record(**upload_event(kind, version, files, **lineage))


def upload_event(kind: str, version, files: list[IncomingFile], **lineage) -> dict:
    """The `<kind>.upload` event of a new version, as audit_record's arguments."""
    return {
        "type": f"{kind}.upload",
        **audit_subject(version),
        "after": {"ref": version.ref, "digest": version.digest, "status": version.status, **lineage},
        "evidence": {"files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files]},
    }


def _with_blobs(files: list[IncomingFile], write_rows):
    """Store blobs, then write rows; undo the new blobs if the rows cannot be written."""
    new_blobs = _store_blobs(files)
    try:
        return write_rows()
    except BaseException:
        _discard_blobs(new_blobs)
        raise


def _push_allowed(user, namespace: str) -> None:
    """The pusher's role in the namespace pushed to (None: the registry itself, e.g. the demo seed)."""
    if user is not None:
        roles.require_push(user, namespace)


# --- Base models ---------------------------------------------------------------------


def _existing_base(existing: BaseModelVersion, summary, files: list[IncomingFile]) -> IngestResult:
    """The same files again. Any of them missing from the blob store is put back (the bytes are
    the ones the row names: the digests matched), and a row registered before tensor indexes gets
    its index from this upload."""
    _store_blobs(files)
    if tensors_from_index(existing.tensor_index) is None:
        existing.tensor_index = tensor_index(summary.tensors)
        BaseModelVersion.objects.filter(pk=existing.pk).update(tensor_index=existing.tensor_index)
    return IngestResult(existing, created=False)


def base_model_version_ingest(*, name: str, files: list[IncomingFile], user: AbstractBaseUser | None) -> IngestResult:
    namespace, short_name = parse_name(name)
    _push_allowed(user, namespace)
    summary = validate_base_upload(files)
    existing = BaseModelVersion.objects.filter(
        base_model__namespace=namespace, base_model__name=short_name, digest=summary.digest
    ).first()
    if existing is not None:
        return _existing_base(existing, summary, files)

    @transaction.atomic
    def write_rows() -> IngestResult:
        base_model, created = _locked_repository(BaseModel, namespace, short_name, user)
        existing, number = _existing_or_next(base_model, created, summary.digest)
        if existing is not None:
            return _existing_base(existing, summary, files)
        version = BaseModelVersion.objects.create(
            base_model=base_model,
            number=number,
            digest=summary.digest,
            status=Status.READY,  # base models are fully checked by static validation
            total_bytes=summary.total_bytes,
            parameter_count=summary.parameter_count,
            architecture=summary.architecture,
            model_type=summary.model_type,
            hidden_size=summary.hidden_size,
            num_layers=summary.num_layers,
            dtype=summary.dtype,
            config=summary.config,
            # A base's card names the model it was derived from, not a registered base: no comparison.
            card=summary.card.stored() if summary.card else None,
            # What every adapter push onto this base compares with, so no push opens its blobs.
            tensor_index=tensor_index(summary.tensors),
            created_by=user,
        )
        _record_blobs(files)
        BaseModelFile.objects.bulk_create(
            [BaseModelFile(version=version, path=f.path, blob_id=f.sha256, size=f.size) for f in files]
        )
        _record_upload("base", version, files)
        return IngestResult(version, created=True)

    return _with_blobs(files, write_rows)


# --- Adapters --------------------------------------------------------------------------


def _clean_provenance(provenance: dict | None) -> dict:
    provenance = provenance or {}
    if not isinstance(provenance, dict):
        raise InvalidArtifact("provenance_invalid", "provenance must be a JSON object")
    # The API parses provenance with the bounded loader; other callers (the seed, tests) build
    # the dict themselves. Either way NUL, lone surrogates and NaN never reach PostgreSQL.
    check_storable(provenance, "provenance")
    allowed = set(PROVENANCE_FIELDS) | {"params"}
    unknown = sorted(set(provenance) - allowed)
    if unknown:
        raise InvalidArtifact(
            "provenance_invalid", f"unknown provenance field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
    cleaned = {}
    for key, max_length in PROVENANCE_FIELDS.items():
        value = provenance.get(key, "")
        if not isinstance(value, str) or len(value) > max_length:
            raise InvalidArtifact(
                "provenance_invalid", f"provenance {key!r} must be a string of at most {max_length} characters"
            )
        cleaned[key] = value
    params = provenance.get("params", {})
    if not isinstance(params, dict):
        raise InvalidArtifact("provenance_invalid", "provenance 'params' must be a JSON object")
    cleaned["training_params"] = params
    return cleaned


def _resolve_lineage(base_ref: str, parent_ref: str | None):
    return _resolve_base(base_ref), _resolve_parent(parent_ref)


def _resolve_base(base_ref: str) -> BaseModelVersion:
    if not base_ref:
        raise InvalidArtifact(
            "base_required", "an adapter needs --base / 'base': the base model version it was trained on"
        )
    try:
        return base_version_get(base_ref)
    except RegistryError as exc:
        raise InvalidArtifact(
            "base_not_found", f"base {base_ref!r} does not resolve: {exc.message}", ref=base_ref
        ) from None


def _resolve_parent(parent_ref: str | None) -> AdapterVersion | None:
    if not parent_ref:
        return None
    try:
        return adapter_version_get(parent_ref)
    except RegistryError as exc:
        raise InvalidArtifact(
            "parent_not_found", f"parent {parent_ref!r} does not resolve: {exc.message}", ref=parent_ref
        ) from None


def _base_tensors(base_version: BaseModelVersion):
    """The base's tensors from its row; a row older than tensor indexes is read from its blobs once,
    and one whose blobs are gone is refused with a way to repair it rather than failing the push."""
    try:
        return base_tensor_index(base_version)
    except OSError as exc:
        raise InvalidArtifact(
            "base_unreadable",
            f"base {base_version.ref}'s files cannot be read from the blob store ({exc.__class__.__name__}); "
            "push the base's files again (the same files restore them), then push this adapter again",
            ref=base_version.ref,
        ) from None


def _check_existing_matches(
    existing: AdapterVersion, base_version, parent, checked: CheckedSignature | None, user
) -> IngestResult:
    if existing.base_version_id != base_version.id or (parent and existing.parent_id != parent.id):
        raise Conflict(
            "adapter_lineage_conflict",
            f"these files are already {existing.ref}, recorded on base {existing.base_version.ref}; "
            "the same content cannot be registered with a different base or parent",
            existing=existing.ref,
        )
    if checked is not None:  # a re-push that brings a signature adds it to the version
        signature_record(existing, checked, trigger="upload", user=user)
    return IngestResult(existing, created=False)


def _adapter_card(card: ModelCard | None, base_version: BaseModelVersion) -> dict | None:
    if card is None:
        return None
    base_model = base_version.base_model
    return card.stored(base_model_warnings(card.fields, namespace=base_model.namespace, name=base_model.name))


def _adapter_version_fields(summary: AdapterSummary) -> dict:
    config = summary.config
    return {
        "digest": summary.digest,
        "status": Status.RECEIVED,  # compatibility checks on workers move it on
        "total_bytes": summary.total_bytes,
        "parameter_count": summary.parameter_count,
        "peft_type": config.peft_type,
        "r": config.r,
        "lora_alpha": config.lora_alpha,
        "target_modules": config.target_modules,
        "modules_to_save": config.modules_to_save,
        "use_dora": config.use_dora,
        "use_rslora": config.use_rslora,
        "tensor_count": summary.tensor_count,
        "dtypes": summary.dtypes,
        "config": config.raw,
        "resolved_patterns": summary.resolved_patterns,
    }


def unsaved_version(summary, base_version, parent, user, provenance: dict) -> AdapterVersion:
    """A new version as its files describe it, before its name and number are known (single and
    bulk pushes: the static check reads it before the transaction)."""
    return AdapterVersion(
        base_version=base_version,
        parent=parent,
        created_by=user,
        card=_adapter_card(summary.card, base_version),
        **_adapter_version_fields(summary),
        **provenance,
    )


def adapter_version_ingest(
    *,
    name: str,
    files: list[IncomingFile],
    base_ref: str,
    parent_ref: str | None = None,
    provenance: dict | None = None,
    signature: bytes | None = None,
    user: AbstractBaseUser | None,
) -> IngestResult:
    """Register an adapter version; `signature` is a model-signing bundle over exactly `files`."""
    namespace, short_name = parse_name(name)
    _push_allowed(user, namespace)
    cleaned_provenance = _clean_provenance(provenance)
    base_version, parent = _resolve_lineage(base_ref, parent_ref)
    summary = validate_adapter_upload(files)
    # Before anything is stored: a refused signature leaves only its recorded verification.
    checked = signature_check_upload(
        name=f"{namespace}/{short_name}",
        files={f.path: f.sha256 for f in files},
        digest=summary.digest,
        raw=signature,
        user=user,
    )
    version = unsaved_version(summary, base_version, parent, user, cleaned_provenance)
    # Before the transaction: the static check reads headers only, and its verdict is the status
    # the version is inserted in (no UPDATE after the INSERT), as a bulk registration does.
    static = static_check_result(version, adapter_tensors=summary.tensors, base_tensors=_base_tensors(base_version))

    # A re-push of the same files is found under the row lock below, which a new version needs
    # anyway: one query fewer for every new version than looking before the transaction too.
    def write_rows() -> IngestResult:
        # One transaction; the chain head locked once, and the push's events written by one statement.
        with audit_chain_held(batched=True):
            return write_rows_locked()

    def write_rows_locked() -> IngestResult:
        adapter, adapter_created = _locked_repository(Adapter, namespace, short_name, user)
        existing, number = _existing_or_next(adapter, adapter_created, summary.digest)
        if existing is not None:
            return _check_existing_matches(existing, base_version, parent, checked, user)
        version.adapter, version.number = adapter, number
        upload = upload_event("adapter", version, files, base=base_version.ref, parent=parent.ref if parent else None)
        version.status, version.status_reason = static_check_status(static)
        version.save(force_insert=True)
        _record_blobs(files)
        file_rows = AdapterFile.objects.bulk_create(
            [AdapterFile(version=version, path=f.path, blob_id=f.sha256, size=f.size) for f in files]
        )
        _as_read_back(version, file_rows, signed=checked is not None)
        audit_record(**upload)
        if checked is not None:
            signature_record(version, checked, trigger="upload", user=user)
        adapter_version_checks_start(version, static, new_name=adapter_created)
        return IngestResult(version, created=True)

    try:
        return _with_blobs(files, write_rows)
    except IntegrityError as exc:  # a concurrent writer broke a constraint we could not pre-check
        raise Conflict(
            "concurrent_write", f"another upload changed {name} at the same time; retry ({exc.__class__.__name__})"
        ) from None


def _as_read_back(version: AdapterVersion, file_rows: list[AdapterFile], *, signed: bool) -> None:
    """Give a new version what the push's response reads, so that it is not read back: its file
    rows (where `prefetch_related("files")` would leave them) and whether a pusher's signature
    passed (a refused one never gets here). Its base, parent, adapter and creator are already the
    instances the push resolved."""
    files = version.files.all()  # lazy: no query; filled the way prefetch_related fills it
    files._result_cache, files._prefetch_done = file_rows, True
    version._prefetched_objects_cache = {"files": files}
    version.pusher_signature_passed = signed


def upload_refusal_record(*, kind: str, name: str, code: str, message: str, **evidence) -> None:
    """The `<kind>.upload_refused` audit event of a refused push, single or bulk, in its own
    transaction (the upload's own writes were rolled back). `name` is kept only when valid."""
    audit_record(**upload_refusal_event(kind=kind, name=name, code=code, message=message, **evidence))


def upload_refusal_event(*, kind: str, name: str, code: str, message: str, **evidence) -> dict:
    """upload_refusal_record's event as audit_record's arguments (a bulk push records many at once)."""
    name = name if NAME_PATTERN.match(name or "") else ""
    return {
        "type": f"{kind}.upload_refused",
        "outcome": "failed",
        "adapter": name if kind == "adapter" else "",
        "namespace": name.split("/", 1)[0] if name else "",
        "reason": message[:2000],
        "evidence": {"code": str(code), "name": name, **evidence},
    }
