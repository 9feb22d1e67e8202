"""Bulk registration: many adapter versions from one request, each judged as if pushed alone,
written together.

Every item is validated, permission-checked in its own namespace and signature-checked exactly as
`adapterctl push` is (the single push's own functions), and gets the same result: created, existing
or refused with the code and message a single push gives. What differs is the writing. A single
push takes about 20 SQL statements (tests/registry/test_push_cost.py); a batch is written with a
fixed number of statements whatever its size (29 a request, tests/registry/test_bulk_register.py):

1. validate every item; look base references, parents and signing policies up once per distinct
   value. Refused items get their `adapter.upload_refused` events, all in one transaction.
2. move the good items' files into the blob store;
3. one transaction: lock the audit chain head (first, as every writer does), lock or create the
   adapter names, read what exists, then one INSERT each for versions, blobs, files, static checks
   and jobs, and the items' audit events in one append. Each version is inserted with the status
   its static check gives; its events record the same steps as a single push's (upload, check,
   status move), in the same transaction, so nobody ever sees the difference;
4. after the commit: the jobs are routed once, published on one broker connection, and their
   dispatch is recorded in one transaction (registry/services/jobs.py jobs_dispatch).

A refused item leaves no rows and no blobs, only its refusal event. The audit head is held for
step 3 only (BENCHMARKS.md, "Bulk registration": 0.33–0.36 s for 128 items).
"""

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q

from registry.audit.services import audit_chain_lock, audit_record_many
from registry.compat import StaticResult
from registry.errors import Conflict, RegistryError
from registry.formats.artifact import IncomingFile, validate_adapter_upload
from registry.models import Adapter, AdapterFile, AdapterVersion, Check, EvaluationSuite, Job, Status
from registry.refs import InvalidRef, parse_name, parse_ref
from registry.services.checks import static_check_event, static_check_result, static_check_row, static_check_status
from registry.services.ingest import (
    _base_tensors,
    _check_existing_matches,
    _clean_provenance,
    _discard_blobs,
    _push_allowed,
    _record_blobs,
    _resolve_base,
    _resolve_parent,
    _store_blobs,
    unsaved_version,
    upload_event,
    upload_refusal_event,
)
from registry.services.jobs import jobs_dispatch
from registry.services.signatures import (
    CheckedSignature,
    signature_check_upload,
    signature_record,
    signing_policy_current,
)
from registry.services.suites import suite_misfit
from registry.services.transitions import version_status_event
from registry.webhooks.services import webhook_version_status

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
    """Register `items` as if pushed one by one, in order; a refusal is reported, never raised."""
    results: dict[int, BulkItemResult] = {}
    for run in _runs(items):
        results.update(_run_ingest(run, user))
    return BulkReport(results=[results[item.index] for item in items])


def _runs(items: list[BulkItem]):
    """The items in runs that can be written together. A run ends before an item whose parent names
    an adapter pushed earlier in the run: that parent must be committed before it is looked up, as it
    would be if the items were pushed one by one."""
    run, names = [], set()
    for item in items:
        if run and _parent_name(item.parent) in names:
            yield run
            run, names = [], set()
        run.append(item)
        names.add(item.name.strip())
    if run:
        yield run


def _parent_name(parent_ref: str | None) -> str | None:
    try:
        ref = parse_ref(parent_ref) if parent_ref else None
    except InvalidRef:
        return None  # refused when the item is validated
    return f"{ref.namespace}/{ref.name}" if ref is not None and ref.namespace else None


# --- 1. Validation: everything a single push checks before it writes ----------------------------


@dataclass
class _Valid:
    """An item that passed validation, with everything its rows and events need."""

    item: BulkItem
    namespace: str
    name: str
    version: AdapterVersion  # not saved; its adapter and number are set under the row lock
    checked: CheckedSignature | None
    static: StaticResult  # the static check's finding: from headers only, so judged before any lock


class _Lookups:
    """What the items of one batch share, looked up once per distinct value: bases, their tensor
    indexes, parents and signing policies. A refusal is remembered and raised again."""

    def __init__(self):
        self.memo: dict = {}

    def get(self, kind: str, key, look_up):
        if (kind, key) not in self.memo:
            try:
                self.memo[kind, key] = (look_up(key), None)
            except RegistryError as exc:
                self.memo[kind, key] = (None, exc)
        found, refusal = self.memo[kind, key]
        if refusal is not None:
            raise refusal
        return found


def _validate(item: BulkItem, user, lookups: _Lookups) -> _Valid:
    """adapter_version_ingest's checks, in its order, so that an item with several faults is refused
    for the one a single push names."""
    if item.refusal is not None:
        raise item.refusal
    namespace, short_name = parse_name(item.name)
    _push_allowed(user, namespace)
    provenance = _clean_provenance(item.provenance)
    base_version = lookups.get("base", item.base, _resolve_base)
    parent = lookups.get("parent", item.parent, _resolve_parent)
    summary = validate_adapter_upload(item.files)
    checked = signature_check_upload(
        name=f"{namespace}/{short_name}",
        files={f.path: f.sha256 for f in item.files},
        digest=summary.digest,
        raw=item.signature,
        user=user,
        current=lookups.get("policy", namespace, signing_policy_current),
    )
    version = unsaved_version(summary, base_version, parent, user, provenance)
    base_tensors = lookups.get("tensors", base_version.pk, lambda _: _base_tensors(base_version))
    static = static_check_result(version, adapter_tensors=summary.tensors, base_tensors=base_tensors)
    return _Valid(item, namespace, short_name, version, checked, static)


def _refused(item: BulkItem, exc: RegistryError) -> BulkItemResult:
    return BulkItemResult(index=item.index, name=item.name, status=REFUSED, code=exc.code, message=exc.message)


def _refusal_event(item: BulkItem, exc: RegistryError) -> dict:
    """The event a refused single push records, with the item's place in the batch."""
    return upload_refusal_event(
        kind="adapter", name=item.name, code=exc.code, message=exc.message, bulk_index=item.index
    )


def _run_ingest(items: list[BulkItem], user) -> dict[int, BulkItemResult]:
    lookups, valid, refusals = _Lookups(), [], []
    for item in items:
        try:
            valid.append(_validate(item, user, lookups))
        except RegistryError as exc:
            refusals.append((item, exc))
    audit_record_many([_refusal_event(item, exc) for item, exc in refusals])  # in a transaction of their own
    results = {item.index: _refused(item, exc) for item, exc in refusals}
    if valid:
        results.update(_write_with_blobs(valid, user))
    return results


# --- 2 and 3. Blobs, then rows and events in one transaction ----------------------------------


def _write_with_blobs(valid: list[_Valid], user) -> dict[int, BulkItemResult]:
    """Store the items' blobs, then write the rows; undo the new blobs if the rows cannot be written."""
    new_blobs = _store_blobs([f for v in valid for f in v.item.files])
    try:
        return _write(valid, user)
    except IntegrityError as exc:  # a concurrent writer broke a constraint the locks did not cover
        _discard_blobs(new_blobs)
        return _refuse_all(valid, exc)
    except BaseException:
        _discard_blobs(new_blobs)
        raise


def _refuse_all(valid: list[_Valid], exc: IntegrityError) -> dict[int, BulkItemResult]:
    """What a single push answers when its transaction hits a constraint: retry."""
    refusals = []
    for item in (v.item for v in valid):
        message = f"another upload changed {item.name} at the same time; retry ({exc.__class__.__name__})"
        refusals.append((item, Conflict("concurrent_write", message)))
    audit_record_many([_refusal_event(item, refusal) for item, refusal in refusals])
    return {item.index: _refused(item, refusal) for item, refusal in refusals}


@dataclass
class _Outcome:
    """What the write decided for one valid item: a new version, an existing one, or a refusal."""

    valid: _Valid
    version: AdapterVersion | None = None
    created: bool = False
    refusal: RegistryError | None = None
    upload: dict | None = None  # a new version's upload event, taken while its status is `received`


@transaction.atomic
def _write(valid: list[_Valid], user) -> dict[int, BulkItemResult]:
    audit_chain_lock()  # the chain head before any row: see registry/services/transitions.py
    adapters = _locked_adapters({(v.namespace, v.name) for v in valid}, user)
    outcomes = _decide(valid, adapters)
    new = [outcome for outcome in outcomes if outcome.created]
    _insert_rows(new)
    jobs = _insert_jobs(new)
    _record_events(outcomes, user)
    for outcome in new:
        if outcome.version.status == Status.REJECTED:  # version.rejected, as version_status_move sends it
            version = outcome.version
            webhook_version_status(version, before=Status.RECEIVED, after=version.status, reason=version.status_reason)
    if jobs:
        job_ids = [job.id for job in jobs]
        transaction.on_commit(lambda: jobs_dispatch(job_ids), robust=True)
    return {outcome.valid.item.index: _result(outcome) for outcome in outcomes}


def _locked_adapters(names: set[tuple[str, str]], user) -> dict[tuple[str, str], Adapter]:
    """The adapter rows of these names, created where missing, locked until the transaction ends:
    the row lock serialises version numbering per name, as a single push's does."""

    def locked(wanted) -> dict:
        rows = Adapter.objects.select_for_update().filter(_names_filter(wanted)).order_by("id")
        return {(adapter.namespace, adapter.name): adapter for adapter in rows}

    adapters = locked(names)
    missing = names - set(adapters)
    if missing:
        # ON CONFLICT DO NOTHING: a concurrent push may create a name first; then we lock theirs.
        Adapter.objects.bulk_create(
            [Adapter(namespace=ns, name=name, created_by=user) for ns, name in sorted(missing)], ignore_conflicts=True
        )
        adapters.update(locked(missing))
    return adapters


def _names_filter(names) -> Q:
    """namespace/name pairs as one condition per namespace (a batch is mostly one namespace)."""
    by_namespace: dict[str, list[str]] = {}
    for namespace, name in sorted(names):
        by_namespace.setdefault(namespace, []).append(name)
    condition = Q(pk__in=[])
    for namespace, short_names in by_namespace.items():
        condition |= Q(namespace=namespace, name__in=short_names)
    return condition


def _decide(valid: list[_Valid], adapters: dict) -> list[_Outcome]:
    """For each item in order: an existing version with its content (in the database or earlier in the
    batch), a lineage conflict with it, or a new version with the name's next number."""
    adapter_ids = {adapter.id for adapter in adapters.values()}
    stored = (
        AdapterVersion.objects.select_related("base_version__base_model")
        .defer("base_version__tensor_index")
        .filter(adapter_id__in=adapter_ids, digest__in={v.version.digest for v in valid})
    )
    known = {(version.adapter_id, version.digest): version for version in stored}
    highest = dict(
        AdapterVersion.objects.filter(adapter_id__in=adapter_ids)
        .values("adapter_id")
        .annotate(highest=Max("number"))
        .values_list("adapter_id", "highest")
    )
    outcomes = []
    for item in valid:
        adapter = adapters[item.namespace, item.name]
        existing = known.get((adapter.id, item.version.digest))
        if existing is not None:
            existing.adapter = adapter
            outcomes.append(_existing(item, existing))
            continue
        version = item.version
        version.adapter, version.number = adapter, highest.get(adapter.id, 0) + 1
        highest[adapter.id] = version.number
        known[adapter.id, version.digest] = version
        outcomes.append(_new(item, version))
    return outcomes


def _existing(item: _Valid, existing: AdapterVersion) -> _Outcome:
    """The same content again: that version, unless the base or parent differ (refused, as a single push)."""
    try:
        # No signature here: a signed re-push's signature is recorded with the events (_record_events).
        _check_existing_matches(existing, item.version.base_version, item.version.parent, None, None)
    except RegistryError as exc:
        return _Outcome(item, refusal=exc)
    return _Outcome(item, version=existing)


def _new(item: _Valid, version: AdapterVersion) -> _Outcome:
    base, parent = version.base_version, version.parent
    upload = upload_event("adapter", version, item.item.files, base=base.ref, parent=parent.ref if parent else None)
    version.status, version.status_reason = static_check_status(item.static)
    return _Outcome(item, version=version, created=True, upload=upload)


def _insert_rows(new: list[_Outcome]) -> None:
    """Versions, blobs, files and static checks: one INSERT each for the whole batch."""
    if not new:
        return
    AdapterVersion.objects.bulk_create([outcome.version for outcome in new])
    files = [(outcome.version, f) for outcome in new for f in outcome.valid.item.files]
    _record_blobs(list({f.sha256: f for _, f in files}.values()))
    AdapterFile.objects.bulk_create(
        [AdapterFile(version=version, path=f.path, blob_id=f.sha256, size=f.size) for version, f in files]
    )
    Check.objects.bulk_create([static_check_row(outcome.version, outcome.valid.static) for outcome in new])


def _insert_jobs(new: list[_Outcome]) -> list[Job]:
    """A compatibility job for every version that passed its static check, and an evaluation on
    every suite attached to its name that fits it: adapter_version_checks_start's jobs."""
    passed = [outcome.version for outcome in new if outcome.version.status != Status.REJECTED]
    if not passed:
        return []
    suites: dict = {}
    attached = EvaluationSuite.objects.filter(attachments__adapter__in={v.adapter_id for v in passed})
    for suite in attached.annotate(attached_to=F("attachments__adapter")):
        suites.setdefault(suite.attached_to, []).append(suite)
    jobs = []
    for version in passed:
        jobs.append(Job(kind=Job.Kind.COMPATIBILITY, adapter_version=version))
        for suite in suites.get(version.adapter_id, []):
            if not suite_misfit(suite, version):  # e.g. a version on another base: nothing a worker could run
                jobs.append(Job(kind=Job.Kind.EVALUATION, adapter_version=version, suite=suite))
    return Job.objects.bulk_create(jobs)


def _record_events(outcomes: list[_Outcome], user) -> None:
    """Each item's events in item order, as a single push records them: upload, signature, static
    check, status move; a refusal's `adapter.upload_refused`. They are appended together, except
    that signature_record appends a signed item's own event, so the events before it go first."""
    pending = []
    for outcome in outcomes:
        item, version = outcome.valid, outcome.version
        if outcome.refusal is not None:
            pending.append(_refusal_event(item.item, outcome.refusal))
            continue
        if outcome.created:
            pending.append(outcome.upload)
        if item.checked is not None:
            audit_record_many(pending)
            pending = []
            signature_record(version, item.checked, trigger="upload", user=user)
        if outcome.created:
            pending.append(static_check_event(version, item.static))
            pending.append(version_status_event(version, Status.RECEIVED, "", version.status, version.status_reason))
    audit_record_many(pending)


def _result(outcome: _Outcome) -> BulkItemResult:
    item = outcome.valid.item
    if outcome.refusal is not None:
        return _refused(item, outcome.refusal)
    version = outcome.version
    return BulkItemResult(
        index=item.index,
        name=item.name,
        status=CREATED if outcome.created else EXISTING,
        ref=version.ref,
        digest=version.digest,
        id=str(version.id),
        version_status=version.status,
    )
