"""Audit exports: a ZIP of a slice of the chain that anyone can verify offline (registry/audit/verify.py).

The ZIP (format "adapter-registry-audit-export", version 1):
- events.jsonl: the exported events in seq order, one a line, each the RFC 8785 canonical JSON of
  the event as the chain hashed it, with its entry_hash member added in its sorted place;
- events.csv: the same events, one a row, columns CSV_COLUMNS (documented in README.txt);
- summary.pdf: per adapter, who did what, its alias history and approvals (from the exported events),
  and its versions, checks, evaluations and signatures;
- keys/<key_id>.pem: every public key the registry has signed with (RegistryKey);
- README.txt: how to verify it by hand (openssl, sha256sum, a few lines of Python) or with
  `python -m registry.audit.verify`;
- manifest.json: format, registry, filters, the range (first and last seq, the hash before the
  first event and the entry_hash of the last), the [seq, entry_hash] of every event in the range
  the filters left out, the SHA-256 and size of every other file, the nearest signed checkpoint
  and the id of the key that signs the manifest;
- manifest.sig: the registry key's ECDSA signature (SHA-256, DER, raw bytes) of manifest.json.

The range runs from the first to the last event that the filters select, among the events
recorded before the export was requested (`up_to_seq`): a filtered export lists, in the manifest,
the hashes of the events in between that it leaves out, so the verifier can follow the chain
across them.
"""

import hashlib
import json
import logging
import os
import queue
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import FullResultSet
from django.db import connection, transaction
from django.db.models import Max, Min, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from registry.audit import pdf, selectors, verify
from registry.audit.checkpoint import ALGORITHM
from registry.audit.context import actor_for_user, actor_system, current_request
from registry.audit.services import CHECKPOINT_TYPE, audit_event_data, audit_record, rfc3339
from registry.errors import RegistryError
from registry.models import AuditEvent, AuditExport, RegistryKey
from registry.signing.keys import active_key
from registry.storage import get_blob_store

logger = logging.getLogger(__name__)
EXPORT_EVENT_TYPE = "audit.export"
EXPIRE_EVENT_TYPE = "audit.export_expired"
FILTER_NAMES = ("after", "before", "namespace", "adapter", "type", "actor", "object_id", "outcome")
# Exports of up to this many events in their range are built in the request; larger ones by a
# task on the cpu queue (settings.AUDIT_EXPORT_SYNC_MAX_EVENTS overrides it). One shape either
# way: the client polls until `state` is done.
SYNC_MAX_EVENTS = 5000
FETCH_ROWS = 10000
# Deflate's fastest level: the events are most of the bytes, and level 1 compresses them about
# five times faster than the default level 6, for a ZIP about 10% larger (8:1 instead of 9:1).
COMPRESS_LEVEL = 1
# A running export whose worker died is built again when its message is redelivered after this.
STALE_RUNNING = timedelta(hours=2)
CSV_COLUMNS = (
    ("seq", "seq", "the event's sequence number: 1, 2, 3, ... over the whole chain"),
    ("id", "id", "the event's UUID"),
    ("time", "to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", "when, UTC, as hashed"),
    ("type", "type", "dotted <object>.<action>, e.g. version.status"),
    ("outcome", "outcome", "success, denied or failed"),
    ("actor_kind", "actor_kind", "user, token, worker or system"),
    ("actor_id", "actor_id", "the user's id, the worker's hostname, ..."),
    ("actor_name", "actor_name", "the actor's name as it was at the time"),
    ("actor_role", "actor_role", "the actor's roles, comma-separated"),
    ("token_id", "token_id", "the API token's fingerprint (never its key)"),
    ("request_id", "request_id", "the HTTP request's id (X-Request-ID)"),
    ("client_address", "client_address", "the client's address"),
    ("object_type", "object_type", "what was acted on: adapter_version, job, user, ..."),
    ("object_id", "object_id", "its id"),
    ("object_digest", "object_digest", "its digest, if it has one"),
    ("namespace", "namespace", "its namespace"),
    ("adapter", "adapter", "namespace/name of the adapter concerned"),
    ("reason", "reason", "why, as given"),
    ("before", "before", "the state before, JSON (PostgreSQL's jsonb text)"),
    ("after", "after", "the state after, JSON"),
    ("evidence", "evidence", "the evidence snapshot, JSON"),
    ("prev_hash", "prev_hash", "the previous event's entry_hash"),
    ("entry_hash", "entry_hash", "SHA-256(prev_hash bytes || canonical JSON of the event without entry_hash)"),
)


# --- Services ----------------------------------------------------------------------------------


def audit_export_request(*, user, filters: dict, registry_url: str = "") -> AuditExport:
    """Record an export request and its `audit.export` event in one transaction.

    The slice is pinned to the events recorded before this one, so whoever builds it, whenever,
    writes the same events. Build it with audit_export_start once this has committed.
    """
    stored = {name: _json_filter(filters[name]) for name in FILTER_NAMES if filters.get(name) not in (None, "")}
    with transaction.atomic():
        export = AuditExport.objects.create(
            requested_by=user,
            requested_by_name=user.get_username(),
            filters=stored,
            registry_url=registry_url,
            up_to_seq=0,
        )
        event = audit_record(
            type=EXPORT_EVENT_TYPE,
            object_type="audit_export",
            object_id=str(export.id),
            namespace=stored.get("namespace", ""),
            adapter=stored.get("adapter", ""),
            after={"filters": stored},
            # In a request the actor is its user or token; a caller outside one names the user.
            actor=None if current_request() is not None else actor_for_user(user),
        )
        export.up_to_seq = event.seq - 1
        export.save(update_fields=["up_to_seq"])
    return export


def audit_export_start(export: AuditExport) -> AuditExport:
    """Build a small export now; queue a large one on the cpu queue. Returns the export as it stands."""
    from registry.audit.export_tasks import build_audit_export

    first, last = export_range(export_filters(export), up_to_seq=export.up_to_seq)
    total = 0 if first is None else last - first + 1
    AuditExport.objects.filter(pk=export.pk).update(events_total=total)
    if total <= getattr(settings, "AUDIT_EXPORT_SYNC_MAX_EVENTS", SYNC_MAX_EVENTS):
        return audit_export_build(export_id=export.pk)
    try:
        build_audit_export.delay_on_commit(str(export.pk))
    except (KombuOperationalError, OSError) as exc:
        AuditExport.objects.filter(pk=export.pk).update(
            state=AuditExport.State.FAILED, error=f"the broker did not take the task: {exc}"[:2000]
        )
        raise RegistryError(
            "broker_unavailable",
            "the broker did not take the export task; request the export again later",
            status_code=503,
        ) from None
    export.refresh_from_db()
    return export


def audit_export_build(*, export_id) -> AuditExport:
    """Build the export's ZIP into the blob store; idempotent: an export that is done, failed or being
    built (by a live worker) is returned as it is."""
    now = timezone.now()
    claimable = Q(state=AuditExport.State.QUEUED) | Q(
        state=AuditExport.State.RUNNING, started_at__lt=now - STALE_RUNNING
    )
    if not AuditExport.objects.filter(claimable, pk=export_id).update(
        state=AuditExport.State.RUNNING, started_at=now, events_done=0, error=""
    ):
        return AuditExport.objects.get(pk=export_id)
    export = AuditExport.objects.get(pk=export_id)
    try:
        _build_into_store(export)
    except Exception as exc:  # recorded on the export, which is what its requester polls
        logger.exception("audit export %s failed", export.pk)
        AuditExport.objects.filter(pk=export.pk).update(
            state=AuditExport.State.FAILED, error=f"{exc.__class__.__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
    return AuditExport.objects.get(pk=export.pk)


def _build_into_store(export: AuditExport) -> None:
    temp_dir = Path(settings.UPLOAD_TEMP_DIR)
    temp_dir.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=temp_dir, prefix="audit-export-", suffix=".zip")
    os.close(fd)
    path = Path(temporary)
    try:

        def progress(done: int) -> None:
            AuditExport.objects.filter(pk=export.pk).update(events_done=done)

        result = export_write(
            path,
            filters=export_filters(export),
            up_to_seq=export.up_to_seq,
            export_id=str(export.pk),
            requested_by=export.requested_by_name,
            registry_url=export.registry_url,
            created_at=export.created_at,
            progress=progress,
        )
        with path.open("rb") as handle:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        size = path.stat().st_size
        get_blob_store().put_file(sha256, path)
    finally:
        path.unlink(missing_ok=True)
    AuditExport.objects.filter(pk=export.pk).update(
        state=AuditExport.State.DONE,
        sha256=sha256,
        size=size,
        first_seq=result.first_seq,
        last_seq=result.last_seq,
        events_total=result.total,
        events_done=result.total,
        events_exported=result.exported,
        events_omitted=result.omitted,
        finished_at=timezone.now(),
    )


def audit_exports_expire(*, now: datetime | None = None) -> int:
    """Delete the ZIPs of exports finished more than AUDIT_EXPORT_RETENTION_DAYS ago (0 keeps them
    forever) and mark them expired, each with an `audit.export_expired` event. The export row and its
    events stay: what was handed out, when and to whom is never forgotten, only the file. Returns how
    many expired."""
    days = settings.AUDIT_EXPORT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired = 0
    due = AuditExport.objects.filter(state=AuditExport.State.DONE, finished_at__lt=cutoff).values_list("pk", flat=True)
    for export_id in list(due):
        if _export_expire(export_id, cutoff):
            expired += 1
    return expired


def _export_expire(export_id, cutoff: datetime) -> bool:
    with transaction.atomic():
        export = (
            AuditExport.objects.select_for_update()
            .filter(pk=export_id, state=AuditExport.State.DONE, finished_at__lt=cutoff)
            .first()
        )
        if export is None:  # another beat run took it
            return False
        export.state = AuditExport.State.EXPIRED
        export.save(update_fields=["state"])
        audit_record(
            type=EXPIRE_EVENT_TYPE,
            object_type="audit_export",
            object_id=str(export.id),
            before={"state": AuditExport.State.DONE},
            after={"state": AuditExport.State.EXPIRED},
            reason=f"older than AUDIT_EXPORT_RETENTION_DAYS={settings.AUDIT_EXPORT_RETENTION_DAYS}",
            evidence={"sha256": export.sha256, "size": export.size, "finished_at": export.finished_at},
            actor=actor_system(),
        )
        sha256 = export.sha256
        transaction.on_commit(lambda: _export_blob_delete(sha256))
    return True


def _export_blob_delete(sha256: str) -> None:
    from registry.models import Blob

    # Blobs are content-addressed: never delete bytes that a registered blob (a file of a version or
    # a suite) or another export still names.
    if Blob.objects.filter(sha256=sha256).exists():
        return
    if AuditExport.objects.filter(sha256=sha256, state=AuditExport.State.DONE).exists():
        return
    get_blob_store().delete(sha256)


def audit_export_open(export: AuditExport):
    """The finished ZIP, as a binary file object from the blob store."""
    return get_blob_store().open(export.sha256)


# --- Filters and range -------------------------------------------------------------------------


def _json_filter(value):
    return rfc3339(value) if isinstance(value, datetime) else str(value)


def export_filters(export: AuditExport) -> dict:
    """The stored filters as selectors.audit_event_list takes them."""
    filters = dict(export.filters)
    for name in ("after", "before"):
        if name in filters:
            filters[name] = datetime.fromisoformat(filters[name])
    return filters


def export_range(filters: dict, *, up_to_seq: int) -> tuple[int | None, int | None]:
    """The first and last seq the filters select among events up to `up_to_seq`; (None, None) if none."""
    bounds = selectors.audit_event_list(**filters).filter(seq__lte=up_to_seq).aggregate(Min("seq"), Max("seq"))
    return bounds["seq__min"], bounds["seq__max"]


def _where(filters: dict) -> tuple[str, list]:
    """The filters as an SQL condition on registry_auditevent, from the selector the events list uses."""
    query = selectors.audit_event_list(**filters).query
    try:
        sql, params = query.get_compiler(connection=connection).compile(query.where)
    except FullResultSet:
        return "TRUE", []
    return sql or "TRUE", list(params)


# --- Writing the ZIP ---------------------------------------------------------------------------


@dataclass
class ExportResult:
    first_seq: int | None
    last_seq: int | None
    exported: int = 0
    omitted: int = 0
    prev_hash: str | None = None
    last_entry_hash: str | None = None
    files: dict = field(default_factory=dict)
    omitted_lines: list = field(default_factory=list)  # '    [seq, "entry_hash"]', for the manifest
    activity: dict = field(default_factory=dict)  # see pdf.add_activity
    promotions: dict = field(default_factory=dict)  # see pdf.add_promotions

    @property
    def total(self) -> int:
        return self.exported + self.omitted


class _HashingWriter:
    """A ZIP member written in chunks, with its SHA-256 and size kept for the manifest."""

    def __init__(self, archive: zipfile.ZipFile, name: str, moment: datetime, files: dict):
        info = zipfile.ZipInfo(name, date_time=moment.astimezone(UTC).timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        # A ZipInfo passed to open() does not take the archive's level; this (private, and a
        # compatibility alias of compress_level from Python 3.13 on) is how zipfile sets it.
        info._compresslevel = COMPRESS_LEVEL
        info.external_attr = 0o644 << 16  # -rw-r--r-- when unzipped
        self.handle = archive.open(info, "w", force_zip64=True)
        self.name, self.files = name, files
        self.sha256, self.size = hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self.handle.write(data)

    def close(self) -> None:
        self.handle.close()
        self.files[self.name] = {"sha256": self.sha256.hexdigest(), "size": self.size}


def export_write(
    destination: Path,
    *,
    filters: dict,
    up_to_seq: int,
    export_id: str | None = None,
    requested_by: str = "",
    registry_url: str = "",
    created_at: datetime | None = None,
    progress=None,
) -> ExportResult:
    """Write the export ZIP of the events `filters` select up to `up_to_seq` to `destination`."""
    created_at = created_at or timezone.now()
    first, last = export_range(filters, up_to_seq=up_to_seq)
    result = ExportResult(first, last)
    where_sql, params = _where(filters)
    key = active_key()
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        _write_events(archive, result, where_sql, params, created_at, progress)
        _write_csv(archive, result, where_sql, params, created_at, progress)
        activities = pdf.activities(result.activity)
        meta = _meta(export_id, requested_by, registry_url, created_at, filters)
        _write_small(
            archive,
            "summary.pdf",
            pdf.summary_pdf(
                title_lines=_title_lines(meta, result), activities=activities, promotions=result.promotions
            ),
            created_at,
            result.files,
        )
        for row in RegistryKey.objects.order_by("created_at"):
            _write_small(archive, f"keys/{row.key_id}.pem", row.public_key_pem.encode(), created_at, result.files)
        checkpoint = _checkpoint(first, last)
        _write_small(
            archive, "README.txt", _readme(meta, result, key.key_id, checkpoint).encode(), created_at, result.files
        )
        manifest = _manifest_bytes(meta, result, checkpoint, key.key_id)
        _write_small(archive, verify.MANIFEST, manifest, created_at, {})
        _write_small(archive, verify.SIGNATURE, _sign(key, manifest), created_at, {})
    return result


def _write_small(archive: zipfile.ZipFile, name: str, data: bytes, moment: datetime, files: dict) -> None:
    writer = _HashingWriter(archive, name, moment, files)
    writer.write(data)
    writer.close()


def _batches(first: int | None, last: int | None):
    """The range in seq intervals of FETCH_ROWS: each is one index range scan."""
    start = first
    while start is not None and start <= last:
        end = min(start + FETCH_ROWS - 1, last)
        yield start, end
        start = end + 1


_EVENTS_ROWS = (
    "SELECT seq, entry_hash, CASE WHEN ({where}) THEN body END FROM registry_auditevent "
    "WHERE seq BETWEEN %s AND %s ORDER BY seq"
)


def _prefetched(read_batch, batches):
    """`read_batch(cursor, start, end)` for each interval, run one interval ahead in a thread, so that
    PostgreSQL prepares the next rows while this thread compresses and hashes the last.

    The thread uses this connection's psycopg connection (its lock serialises the two threads'
    queries) and holds it only while it reads a batch, never while it waits to hand one over."""
    connection.ensure_connection()
    raw = connection.connection
    handoff: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce():
        try:
            with psycopg.ClientCursor(raw) as cursor:  # client-side binding, as Django's own cursors
                for start, end in batches:
                    if stop.is_set():
                        return
                    handoff.put((start, end, read_batch(cursor, start, end)))
            handoff.put(None)
        except BaseException as exc:  # handed over and raised in the caller's thread
            handoff.put(exc)

    thread = threading.Thread(target=produce, name="audit-export-reader", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting to hand over
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


# Who did what, per interval: summary.pdf's tables, gathered while the lines are written.
_ACTIVITY = (
    "SELECT adapter, actor_kind, actor_name, type, outcome, count(*), min(time), max(time) "
    "FROM registry_auditevent WHERE seq BETWEEN %s AND %s AND ({where}) GROUP BY 1, 2, 3, 4, 5"
)
# Alias moves, requests and decisions, per interval: summary.pdf's alias history and approvals.
_PROMOTIONS = (
    "SELECT adapter, time, type, actor_kind, actor_name, object_id, before::text, after::text, reason "
    "FROM registry_auditevent WHERE seq BETWEEN %s AND %s AND " + pdf.PROMOTION_EVENTS_SQL + " AND ({where}) "
    "ORDER BY seq"
)


def _read_event_rows(where_sql: str, params: list):
    def read(cursor, start: int, end: int) -> tuple[list, list, list]:
        cursor.execute(_EVENTS_ROWS.format(where=where_sql), [*params, start, end])
        rows = cursor.fetchall()
        cursor.execute(_ACTIVITY.format(where=where_sql), [start, end, *params])
        activity = cursor.fetchall()
        cursor.execute(_PROMOTIONS.format(where=where_sql), [start, end, *params])
        return rows, activity, cursor.fetchall()

    return read


def _write_events(archive, result: ExportResult, where_sql: str, params: list, moment, progress) -> None:
    """events.jsonl, the [seq, entry_hash] of each event in the range the filters leave out, who did
    what (result.activity) and the alias moves and promotion decisions (result.promotions).

    Read in seq intervals, not through one server-side cursor: that would need a transaction open
    for the whole export, which would hide its progress from whoever polls it."""
    writer = _HashingWriter(archive, verify.EVENTS, moment, result.files)
    if result.first_seq is not None:
        result.prev_hash = AuditEvent.objects.values_list("prev_hash", flat=True).get(seq=result.first_seq)
    batches = _batches(result.first_seq, result.last_seq)
    for _start, _end, (rows, activity, promotions) in _prefetched(_read_event_rows(where_sql, params), batches):
        lines = []
        for seq, entry_hash, body in rows:
            if body is None:
                result.omitted_lines.append(f'    [{seq}, "{entry_hash}"]')
            else:
                lines.append(event_line(body, entry_hash))
        writer.write("".join(lines).encode())
        result.exported += len(lines)
        result.omitted = len(result.omitted_lines)
        result.last_entry_hash = rows[-1][1]
        pdf.add_activity(result.activity, activity)
        pdf.add_promotions(result.promotions, promotions)
        if progress is not None:
            progress(result.total // 2)  # the JSON lines are the first half of the work
    writer.close()


_EVIDENCE = ',"evidence":'


def event_line(body: str, entry_hash: str) -> str:
    """The event's line in events.jsonl: its canonical JSON with entry_hash, and a newline.

    `body` is the stored canonical JSON the chain hashed; "entry_hash" sorts right before the
    top-level "evidence" member that every event has. `,"evidence":` cannot occur inside a JSON
    string (a quote there is escaped), so when it occurs once it is that member and the new member
    goes in front of it; otherwise (a nested "evidence" key) the event is re-encoded exactly.
    _EVENTS_BATCH does the same in SQL.
    """
    if body.count(_EVIDENCE) == 1:
        at = body.index(_EVIDENCE)
        return f'{body[:at]},"entry_hash":"{entry_hash}"{body[at:]}\n'
    import rfc8785

    return rfc8785.dumps({**json.loads(body), "entry_hash": entry_hash}).decode() + "\n"


def _write_csv(archive, result: ExportResult, where_sql: str, params: list, moment, progress) -> None:
    """events.csv, written by PostgreSQL's COPY (CSV format) from the columns stored with each event."""
    writer = _HashingWriter(archive, "events.csv", moment, result.files)
    writer.write((",".join(name for name, _, _ in CSV_COLUMNS) + "\n").encode())
    columns = ", ".join(f"{expression} AS {name}" for name, expression, _ in CSV_COLUMNS)
    sql = (
        f"COPY (SELECT {columns} FROM registry_auditevent WHERE seq BETWEEN %s AND %s AND ({where_sql}) "
        "ORDER BY seq) TO STDOUT WITH (FORMAT csv)"
    )

    def read(cursor, start: int, end: int) -> bytes:
        with cursor.copy(sql, [start, end, *params]) as copy:
            return b"".join(copy)  # one row a chunk

    for _start, end, rows in _prefetched(read, _batches(result.first_seq, result.last_seq)):
        writer.write(rows)
        if progress is not None:
            progress((result.total + end - result.first_seq + 1) // 2)
    writer.close()


def _checkpoint(first: int | None, last: int | None) -> dict | None:
    """The checkpoint that vouches for the most of the range: the latest whose signed head is inside
    it (or just before it), else the first after it (which does not cover the export)."""
    if first is None:
        return None
    checkpoints = AuditEvent.objects.filter(type=CHECKPOINT_TYPE).annotate(
        signed_seq=RawSQL("(evidence->'payload'->>'seq')::bigint", [])
    )
    event = checkpoints.filter(signed_seq__range=(first - 1, last)).order_by("-seq").first()
    if event is None:
        event = checkpoints.filter(signed_seq__gt=last).order_by("seq").first()
    return audit_event_data(event) if event else None


def _meta(export_id, requested_by, registry_url, created_at, filters) -> dict:
    return {
        "export_id": export_id,
        "created_at": rfc3339(created_at),
        "requested_by": requested_by,
        "registry": {"name": _registry_name(registry_url), "url": registry_url},
        "filters": {name: _json_filter(value) for name, value in filters.items() if value not in (None, "")},
    }


def _registry_name(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "" if url else ""


def _manifest_bytes(meta: dict, result: ExportResult, checkpoint: dict | None, key_id: str) -> bytes:
    manifest = {
        "format": verify.FORMAT,
        "format_version": verify.FORMAT_VERSION,
        **meta,
        "range": None
        if result.first_seq is None
        else {
            "first_seq": result.first_seq,
            "last_seq": result.last_seq,
            "prev_hash": result.prev_hash,
            "last_entry_hash": result.last_entry_hash,
        },
        "events": {"exported": result.exported, "omitted": result.omitted},
        "omitted": "@OMITTED@",
        "files": dict(sorted(result.files.items())),
        "csv_columns": [name for name, _, _ in CSV_COLUMNS],
        "checkpoint": checkpoint,
        "key_id": key_id,
        "signature": {"file": verify.SIGNATURE, "algorithm": ALGORITHM, "encoding": "DER"},
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False)
    # One omitted event a line: readable, and a million of them stay a few tens of MB.
    pairs = ",\n".join(result.omitted_lines)
    return text.replace('"@OMITTED@"', f"[\n{pairs}\n  ]" if pairs else "[]", 1).encode() + b"\n"


def _sign(key, manifest: bytes) -> bytes:
    private_key = serialization.load_pem_private_key(key.path.read_bytes(), password=None)
    return private_key.sign(manifest, ec.ECDSA(hashes.SHA256()))


def _title_lines(meta: dict, result: ExportResult) -> list[str]:
    filters = ", ".join(f"{k}={v}" for k, v in meta["filters"].items()) or "none (every event)"
    span = "no events" if result.first_seq is None else f"events {result.first_seq} to {result.last_seq}"
    return [
        f"Registry: {meta['registry']['url'] or 'unknown'}   Export: {meta['export_id'] or '-'}",
        f"Made {meta['created_at']} for {meta['requested_by'] or 'unknown'}",
        f"Filters: {filters}",
        f"Range: {span}; {result.exported} exported, {result.omitted} left out by the filters",
        "This summary is a reading aid; the evidence is events.jsonl, verified as README.txt explains.",
    ]


def _readme(meta: dict, result: ExportResult, key_id: str, checkpoint: dict | None) -> str:
    from registry.audit.export_readme import readme_text

    return readme_text(meta=meta, result=result, key_id=key_id, checkpoint=checkpoint, csv_columns=CSV_COLUMNS)
