"""Serving telemetry: ingest batches of per-window counts, read them back, roll them up by age.

Ingest is all or nothing: every row is checked (refs resolved in one query) before anything is
written, and a refusal lists each bad row by index and code. Rows are keyed by (worker, adapter
version, window start, window end), so a re-sent window replaces its row instead of counting twice
(one INSERT ... ON CONFLICT DO UPDATE over arrays). A window must start within the raw retention:
an older one may already have been rolled up, and accepting it would count it twice.

Posting telemetry is measurement, not a change of state: it writes no audit event (a fleet posting
every few seconds would swamp the chain), only the worker's `last_seen_at`.

Roll-ups (`telemetry_rollup`, beat every TELEMETRY_ROLLUP_INTERVAL_SECONDS): raw windows whose hour
ended before now - TELEMETRY_RAW_RETENTION_HOURS become one `hour` row per worker, version and hour
(the hour the window starts in); hourly rows older than TELEMETRY_HOURLY_RETENTION_DAYS become `day`
rows; daily rows older than TELEMETRY_DAILY_RETENTION_DAYS are deleted. Requests and cold loads are
summed; the rolled-up p50 and p99 time to first token are request-weighted means of the rows'
percentiles, an approximation (percentiles do not add up), good for trends, not for SLO proofs.
"""

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Concat
from django.utils import timezone

from registry import roles
from registry.errors import NotFound, RegistryError
from registry.models import AdapterVersion, ServingWorker, TelemetryWindow
from registry.refs import REF_PATTERN
from registry.services.serving_fleet import SERVING_WORKER_NAME_PATTERN

MAX_BATCH_ROWS = 10_000
MAX_ROW_ERRORS = 1_000  # a refusal lists at most this many rows (and says how many in all)
FUTURE_SKEW = timedelta(minutes=5)  # clocks of serving hosts may run a little ahead
MAX_COUNT = 2**63 - 1
ROW_FIELDS = frozenset({"adapter", "start", "end", "requests", "cold_loads", "ttft_p50_ms", "ttft_p99_ms"})
# pg_try_advisory_xact_lock key of the roll-up: "telemetr" as a big-endian int64.
ROLLUP_LOCK_KEY = int.from_bytes(b"telemetr", "big") - 2**63

_WINDOWS = TelemetryWindow._meta.db_table
_VERSIONS = AdapterVersion._meta.db_table
_ADAPTERS = AdapterVersion._meta.get_field("adapter").related_model._meta.db_table


class TelemetryRejected(RegistryError):
    """The batch was refused as a whole; `detail.errors` names each bad row by index and code."""

    status_code = 400

    def __init__(self, errors: list[dict], rows: int):
        first = errors[0]
        super().__init__(
            "telemetry_rows_invalid",
            f"{len(errors)} of {rows} rows refused, nothing was stored; row {first['index']}: {first['message']}",
            errors=errors[:MAX_ROW_ERRORS],
            error_count=len(errors),
        )


@dataclass(frozen=True)
class IngestResult:
    worker: ServingWorker
    accepted: int
    inserted: int
    replaced: int


@dataclass
class _Row:
    index: int
    ref: str
    start: datetime
    end: datetime
    requests: int
    cold_loads: int
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None


class _RowInvalid(Exception):
    def __init__(self, code: str, message: str):
        self.code, self.message = code, message


# --- Ingest ----------------------------------------------------------------------------------


def require_telemetry_poster(user) -> None:
    """A global admin, in person or through a scoped token carrying the telemetry scope."""
    roles.token_check(user, roles.SCOPE_TELEMETRY, None, "posting telemetry")
    if not roles.can_post_telemetry(user):
        raise RegistryError(
            "permission_denied",
            "posting telemetry needs the global admin role (or a token with the telemetry scope made by an admin)",
            status_code=403,
        )


def telemetry_ingest(*, by, worker_name, windows, now: datetime | None = None) -> IngestResult:
    """Store a batch of windows for one worker: all of them, or none with every bad row named."""
    require_telemetry_poster(by)
    now = now or timezone.now()
    worker = _worker_named(worker_name)
    if not isinstance(windows, list) or not windows:
        raise RegistryError("telemetry_empty", "windows: give a list of 1 to 10,000 windows")
    if len(windows) > MAX_BATCH_ROWS:
        raise RegistryError(
            "telemetry_batch_too_large", f"windows: {len(windows)} rows; send at most {MAX_BATCH_ROWS:,} per batch"
        )
    rows, errors = _rows_checked(windows, now)
    version_ids = _versions_by_ref({row.ref for row in rows})
    errors += _rows_resolved(rows, version_ids)
    if errors:
        raise TelemetryRejected(sorted(errors, key=lambda error: error["index"]), len(windows))
    with transaction.atomic():
        # First: the row lock that orders this batch against the worker's removal (which locks it
        # too), since telemetry rows have no foreign-key constraint to do it (see the model).
        if not ServingWorker.objects.filter(pk=worker.pk).update(last_seen_at=now):
            raise NotFound("serving_worker_not_found", f"serving worker {worker.name!r} was just removed")
        inserted, written = _upsert(worker.pk, rows, version_ids, now)
    return IngestResult(worker=worker, accepted=written, inserted=inserted, replaced=written - inserted)


def _worker_named(name) -> ServingWorker:
    if not isinstance(name, str) or not name:
        raise RegistryError("telemetry_worker_required", "worker: give the serving worker's registered name")
    valid = SERVING_WORKER_NAME_PATTERN.fullmatch(name)  # a NUL or a 10 kB name never reaches PostgreSQL
    worker = valid and ServingWorker.objects.filter(name=name).only("id", "name").first()
    if not worker:
        raise NotFound(
            "serving_worker_not_found",
            f"no serving worker is named {name[:63]!r}; an admin registers it at /api/v1/residency/workers",
            name=name[:63],
        )
    return worker


def _rows_checked(windows: list, now: datetime) -> tuple[list[_Row], list[dict]]:
    """Each row's shape and values (no database): the rows that pass, and an error per row that fails."""
    checker = _RowChecker(now)
    rows, errors = [], []
    for index, window in enumerate(windows):
        try:
            rows.append(checker.row(index, window))
        except _RowInvalid as invalid:
            errors.append({"index": index, "code": invalid.code, "message": invalid.message})
    return rows, errors


class _RowChecker:
    """Checks one batch's rows. A batch repeats itself (a worker reports every adapter for the same
    window), so each distinct time and reference is parsed once."""

    def __init__(self, now: datetime):
        self.now = now
        self.oldest = now - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_HOURS)
        self.longest = timedelta(seconds=settings.TELEMETRY_MAX_WINDOW_SECONDS)
        self.times: dict[str, datetime] = {}
        self.refs: dict[str, str] = {}

    def row(self, index: int, window) -> _Row:
        if not isinstance(window, dict):
            raise _RowInvalid("row_invalid", "a window is an object with adapter, start, end, requests, ...")
        if not window.keys() <= ROW_FIELDS:
            unknown = sorted(map(str, set(window) - ROW_FIELDS))[0]
            raise _RowInvalid("row_invalid", f"unknown field {unknown[:40]!r}")
        start, end = self.time(window, "start"), self.time(window, "end")
        self.window_checked(start, end)
        p50, p99 = _latency(window, "ttft_p50_ms"), _latency(window, "ttft_p99_ms")
        if p50 is not None and p99 is not None and p99 < p50:
            raise _RowInvalid("ttft_order", "ttft_p99_ms must not be below ttft_p50_ms")
        requests, cold_loads = _count(window, "requests"), _count(window, "cold_loads", 0)
        return _Row(index, self.ref(window.get("adapter")), start, end, requests, cold_loads, p50, p99)

    def window_checked(self, start: datetime, end: datetime) -> None:
        if end <= start:
            raise _RowInvalid("window_order", "end must be after start")
        if end - start > self.longest:
            raise _RowInvalid("window_too_long", f"a window lasts at most {settings.TELEMETRY_MAX_WINDOW_SECONDS} s")
        if start < self.oldest:
            raise _RowInvalid(
                "window_too_old",
                f"the window starts more than {settings.TELEMETRY_RAW_RETENTION_HOURS} h ago (raw retention); "
                "older windows may already be rolled up",
            )
        if end > self.now + FUTURE_SKEW:
            raise _RowInvalid("window_in_future", "the window ends in the future (more than 5 minutes ahead)")

    def time(self, window: dict, field: str) -> datetime:
        value = window.get(field)
        parsed = self.times.get(value) if isinstance(value, str) else None
        if parsed is None:
            parsed = self.times[value] = _time(value, field)
        return parsed

    def ref(self, value) -> str:
        ref = self.refs.get(value) if isinstance(value, str) else None
        if ref is None:
            ref = self.refs[value] = _ref(value)
        return ref


def _ref(ref) -> str:
    """An immutable reference: ns/name@sha256:<hex> (or the version's UUID); an alias moves, a digest does not."""
    if not isinstance(ref, str):
        raise _RowInvalid("adapter_ref_invalid", "adapter: give the version as ns/name@sha256:<hex>")
    match = REF_PATTERN.match(ref)
    if match is not None and match["digest"]:
        return ref
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        pass
    if match is not None:
        raise _RowInvalid("adapter_ref_mutable", f"adapter: {ref[:100]!r} can move; give ns/name@sha256:<hex>")
    raise _RowInvalid("adapter_ref_invalid", f"adapter: {ref[:100]!r} is not ns/name@sha256:<hex>")


def _time(value, field: str) -> datetime:
    if not isinstance(value, str):
        raise _RowInvalid(f"{field}_invalid", f"{field}: give an RFC 3339 time, e.g. 2026-11-26T14:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _RowInvalid(f"{field}_invalid", f"{field}: {value[:40]!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise _RowInvalid(f"{field}_invalid", f"{field}: {value[:40]!r} has no time zone (add Z or +00:00)")
    return parsed


def _count(window: dict, field: str, default: int | None = None) -> int:
    value = window.get(field, default)
    if type(value) is not int or not 0 <= value <= MAX_COUNT:  # bool is not a count
        raise _RowInvalid(f"{field}_invalid", f"{field}: give a whole number of at least 0")
    return value


def _latency(window: dict, field: str) -> float | None:
    value = window.get(field)
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise _RowInvalid(f"{field}_invalid", f"{field}: give milliseconds (a number of at least 0) or null")
    return float(value)


def _versions_by_ref(refs: set[str]) -> dict[str, uuid.UUID]:
    """Ref text -> version id for every ref that names an existing version: one query for the batch."""
    digests, ids = [], []
    for ref in refs:
        match = REF_PATTERN.match(ref)
        if match is not None:
            digests.append(match["digest"])
        else:
            ids.append(uuid.UUID(ref))
    with _server_bound_cursor() as cursor:
        cursor.execute(
            f"SELECT v.id, a.namespace, a.name, v.digest FROM {_VERSIONS} v JOIN {_ADAPTERS} a ON a.id = v.adapter_id "
            "WHERE v.digest = ANY(%b::text[]) OR v.id = ANY(%b::uuid[])",
            [digests, ids],
        )
        found = cursor.fetchall()
    by_ref = {}
    for version_id, namespace, name, digest in found:
        by_ref[f"{namespace}/{name}@sha256:{digest}"] = version_id
        by_ref[str(version_id)] = version_id
    return by_ref


def _rows_resolved(rows: list[_Row], version_ids: dict[str, uuid.UUID]) -> list[dict]:
    """Errors for refs that name no version and for a window given twice (which value would count?)."""
    errors, seen = [], {}
    for row in rows:
        version_id = version_ids.get(row.ref)
        if version_id is None:
            errors.append({"index": row.index, "code": "adapter_not_found", "message": f"no adapter version {row.ref}"})
            continue
        key = (version_id, row.start, row.end)
        if key in seen:
            message = f"the same adapter and window as row {seen[key]}; send each window once"
            errors.append({"index": row.index, "code": "window_duplicate", "message": message})
        seen.setdefault(key, row.index)
    return errors


# The batch arrives by COPY into a temporary table (psycopg writes the rows in C, binary), then
# lands in one statement. ON COMMIT DROP: a failed batch leaves nothing on a pooled connection.
_INCOMING = "telemetry_incoming"
_INCOMING_COLUMNS = (
    ("adapter_version_id", "uuid"),
    ("window_start", "timestamptz"),
    ("window_end", "timestamptz"),
    ("requests", "int8"),
    ("cold_loads", "int8"),
    ("ttft_p50_ms", "float8"),
    ("ttft_p99_ms", "float8"),
)
_COLUMN_LIST = ", ".join(name for name, _ in _INCOMING_COLUMNS)
_CREATE_INCOMING = (
    f"CREATE TEMPORARY TABLE {_INCOMING} ({', '.join(f'{n} {t}' for n, t in _INCOMING_COLUMNS)}) ON COMMIT DROP"
)
_UPSERT = f"""
WITH written AS (
    INSERT INTO {_WINDOWS} AS w (worker_id, {_COLUMN_LIST}, resolution, received_at)
    SELECT %s, {_COLUMN_LIST}, 'raw', %s FROM {_INCOMING}
    ON CONFLICT (worker_id, adapter_version_id, window_start, window_end) DO UPDATE
        SET requests = EXCLUDED.requests, cold_loads = EXCLUDED.cold_loads, ttft_p50_ms = EXCLUDED.ttft_p50_ms,
            ttft_p99_ms = EXCLUDED.ttft_p99_ms, received_at = EXCLUDED.received_at
        WHERE w.resolution = 'raw'
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FROM written
"""


def _server_bound_cursor():
    """A plain psycopg cursor on Django's connection (same transaction), wrapped as Django wraps its own.

    Django's psycopg cursors bind on the client: they quote every value into the SQL text, in Python,
    which for the 70,000 values of a full batch cost more than the insert itself.
    """
    connection.ensure_connection()
    return connection._prepare_cursor(psycopg.Cursor(connection.connection))


def _upsert(worker_id: int, rows: list[_Row], version_ids: dict, now: datetime) -> tuple[int, int]:
    """Four statements for the whole batch, whatever its size: never a query per row."""
    with _server_bound_cursor() as cursor:
        cursor.execute(_CREATE_INCOMING)
        raw = cursor.cursor  # Django's wrapper has no copy(); the COPY is the batch's second statement
        with raw.copy(f"COPY {_INCOMING} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in _INCOMING_COLUMNS])
            for row in rows:
                copy.write_row((version_ids[row.ref], row.start, row.end, row.requests, row.cold_loads,
                                row.ttft_p50_ms, row.ttft_p99_ms))  # fmt: skip
        cursor.execute(_UPSERT, [worker_id, now])
        inserted, written = cursor.fetchone()
        # Dropped now, not only at commit: a caller's outer transaction may ingest another batch.
        cursor.execute(f"DROP TABLE {_INCOMING}")
    return inserted, written


# --- Reads -----------------------------------------------------------------------------------


def telemetry_windows(
    *, worker: ServingWorker | None = None, version: AdapterVersion | None = None, since=None, resolution: str = ""
) -> QuerySet:
    """Windows as plain rows (oldest end first, for keyset pages), filtered by what was given."""
    windows = TelemetryWindow.objects.all()
    if worker is not None:
        windows = windows.filter(worker=worker)
    if version is not None:
        windows = windows.filter(adapter_version=version)
    if since is not None:
        windows = windows.filter(window_end__gt=since)
    if resolution:
        windows = windows.filter(resolution=resolution)
    adapter = "adapter_version__adapter__"
    return windows.values(
        "id",
        "window_start",
        "window_end",
        "requests",
        "cold_loads",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "resolution",
        worker_name=F("worker__name"),
        adapter_ref=Concat(
            f"{adapter}namespace", Value("/"), f"{adapter}name", Value("@sha256:"), "adapter_version__digest"
        ),
    )


@dataclass(frozen=True)
class DemandRows:
    """Demand since a time, summed over workers per (adapter version, window end), as arrays.

    `codes[i]` indexes `versions` (the distinct version ids, sorted), so the planner's forecast can
    np.bincount over them; `adapter_version_ids[i]` is the id itself.
    """

    versions: list[str]
    codes: np.ndarray  # int64
    window_end: np.ndarray  # float64, epoch seconds
    requests: np.ndarray  # int64

    @property
    def adapter_version_ids(self) -> np.ndarray:
        return np.asarray(self.versions, dtype=object)[self.codes] if self.versions else np.empty(0, dtype=object)


_DEMAND = f"""
SELECT dense_rank() OVER (ORDER BY adapter_version_id) - 1, adapter_version_id::text,
       extract(epoch FROM window_end)::float8, sum(requests)::bigint
FROM {_WINDOWS}
WHERE window_end > %s
GROUP BY adapter_version_id, window_end
ORDER BY adapter_version_id, window_end
"""


def telemetry_demand_rows(since: datetime) -> DemandRows:
    """Every window ending after `since`, as arrays for registry/residency/forecast.py (one SQL statement)."""
    with connection.cursor() as cursor:
        cursor.execute(_DEMAND, [since])
        rows = cursor.fetchall()
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return DemandRows([], empty, np.empty(0, dtype=np.float64), empty.copy())
    codes, ids, ends, requests = zip(*rows, strict=True)
    versions = list(dict.fromkeys(ids))  # ordered as the codes (rows are sorted by id)
    return DemandRows(
        versions=versions,
        codes=np.fromiter(codes, dtype=np.int64, count=len(rows)),
        window_end=np.fromiter(ends, dtype=np.float64, count=len(rows)),
        requests=np.fromiter(requests, dtype=np.int64, count=len(rows)),
    )


# --- Roll-ups --------------------------------------------------------------------------------


def _weighted(column: str) -> str:
    """Request-weighted mean of a percentile column over a group (a plain mean when no requests)."""
    has = f"FILTER (WHERE {column} IS NOT NULL)"
    return (
        f"CASE WHEN sum(requests) {has} > 0 THEN sum({column} * requests) {has} / sum(requests) {has} "
        f"ELSE avg({column}) END"
    )


def _merged(column: str) -> str:
    """The same mean when a rolled-up group meets a row already in its bucket."""
    old, new = f"w.{column}", f"EXCLUDED.{column}"
    return (
        f"CASE WHEN {old} IS NULL THEN {new} WHEN {new} IS NULL THEN {old} "
        f"WHEN w.requests + EXCLUDED.requests > 0 "
        f"THEN ({old} * w.requests + {new} * EXCLUDED.requests) / (w.requests + EXCLUDED.requests) "
        f"ELSE ({old} + {new}) / 2 END"
    )


# Rows of one resolution starting before a cutoff move into buckets of the next (`unit` long):
# deleted and re-inserted as sums in one statement, so a crash or a second run never counts twice.
_ROLL = f"""
WITH moved AS (
    DELETE FROM {_WINDOWS}
    WHERE resolution = %(source)s AND window_start < %(cutoff)s AND window_end <= %(cutoff)s + %(longest)s
    RETURNING worker_id, adapter_version_id, window_start, requests, cold_loads, ttft_p50_ms, ttft_p99_ms
), buckets AS (
    SELECT worker_id, adapter_version_id, date_trunc(%(unit)s, window_start, 'UTC') AS bucket,
           sum(requests) AS requests, sum(cold_loads) AS cold_loads,
           {_weighted("ttft_p50_ms")} AS ttft_p50_ms, {_weighted("ttft_p99_ms")} AS ttft_p99_ms
    FROM moved GROUP BY 1, 2, 3
), written AS (
    INSERT INTO {_WINDOWS} AS w (worker_id, adapter_version_id, window_start, window_end, requests, cold_loads,
                                 ttft_p50_ms, ttft_p99_ms, resolution, received_at)
    SELECT worker_id, adapter_version_id, bucket, bucket + %(length)s, requests, cold_loads, ttft_p50_ms,
           ttft_p99_ms, %(target)s, %(now)s
    FROM buckets
    ON CONFLICT (worker_id, adapter_version_id, window_start, window_end) DO UPDATE
        SET requests = w.requests + EXCLUDED.requests, cold_loads = w.cold_loads + EXCLUDED.cold_loads,
            ttft_p50_ms = {_merged("ttft_p50_ms")}, ttft_p99_ms = {_merged("ttft_p99_ms")},
            resolution = EXCLUDED.resolution, received_at = EXCLUDED.received_at
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM written)
"""


def _floor(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC)
    if unit == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _roll(cursor, source: str, target: str, unit: str, older_than: datetime, now: datetime) -> tuple[int, int]:
    length = timedelta(days=1) if unit == "day" else timedelta(hours=1)
    # Raw and hourly rows last at most an hour (TELEMETRY_MAX_WINDOW_SECONDS <= 3600): bounding
    # window_end too lets the scan use the (window_end, id) index instead of reading the table.
    longest = timedelta(hours=1)
    params = {"source": source, "target": target, "unit": unit, "length": length, "longest": longest, "now": now}
    cursor.execute(_ROLL, {**params, "cutoff": _floor(older_than, unit)})
    return cursor.fetchone()


def telemetry_rollup(now: datetime | None = None) -> dict:
    """Raw -> hourly -> daily -> deleted, by age, in one transaction; a concurrent run skips (advisory lock)."""
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ROLLUP_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return {"skipped": "another roll-up is running"}
        raw_hours = settings.TELEMETRY_RAW_RETENTION_HOURS
        raw_moved, hours_written = _roll(cursor, "raw", "hour", "hour", now - timedelta(hours=raw_hours), now)
        hourly_days = settings.TELEMETRY_HOURLY_RETENTION_DAYS
        hours_moved, days_written = _roll(cursor, "hour", "day", "day", now - timedelta(days=hourly_days), now)
        cursor.execute(
            f"DELETE FROM {_WINDOWS} WHERE resolution = 'day' AND window_end < %s",
            [now - timedelta(days=settings.TELEMETRY_DAILY_RETENTION_DAYS)],
        )
        days_deleted = cursor.rowcount
    return {
        "raw_rolled": raw_moved,
        "hourly_written": hours_written,
        "hourly_rolled": hours_moved,
        "daily_written": days_written,
        "daily_deleted": days_deleted,
    }
