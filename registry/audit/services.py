"""Writing the audit chain: `audit_record` appends one event in the caller's transaction.

Event types are dotted, `<object>.<action>` in lowercase: `adapter.upload`, `adapter.upload_refused`,
`version.status`, `job.claim`, `audit.checkpoint`, ... (README, "Audit trail", lists them).

Sequence numbers are taken under a row lock on the one AuditChainHead row, held until the
caller's transaction ends: writers of events are serialised, and a transaction that rolls back
takes its event and its head move with it, so seq never has a gap and prev_hash always links.
"""

import contextvars
import json
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath

from django.db import connection, transaction
from django.utils import timezone

from registry.audit import chain
from registry.audit.context import Actor, current_actor, current_request
from registry.models import AuditChainHead, AuditEvent

EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 (I-JSON): larger integers are written as strings


def rfc3339(moment: datetime) -> str:
    """UTC with microseconds and "Z": one spelling, so the hashed text never depends on a time zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clean_text(text: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL, and UTF-8 cannot hold a lone surrogate: both are
    # replaced, in the hashed body and the columns alike, so the two never disagree.
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def json_safe(value):
    """`value` as JSON the chain can hash: strings, integers, booleans, null, lists and objects.

    UUIDs, times, Decimals and floats become strings (no float is ever hashed: two serialisers
    may spell one differently). An unknown type is an error, never a silent str().
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and not isinstance(value, Enum):
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, str):
        return _clean_text(str(value))
    if isinstance(value, (float, Decimal, uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, datetime):
        return rfc3339(value if timezone.is_aware(value) else timezone.make_aware(value, UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {_clean_text(str(key)): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(item) for item in value), key=repr)
    raise TypeError(f"audit values must be JSON data; got {type(value).__name__}")


def _text(value, field: str) -> str:
    limit = AuditEvent._meta.get_field(field).max_length
    text = _clean_text(str(value or ""))
    return text[:limit] if limit else text


_LOCK_HEAD = "SELECT seq, head_hash FROM registry_auditchainhead WHERE id = 1 FOR UPDATE"
_MAKE_HEAD = (
    "INSERT INTO registry_auditchainhead (id, seq, head_hash) "
    "SELECT 1, COALESCE(MAX(seq), 0), COALESCE((SELECT entry_hash FROM registry_auditevent "
    "ORDER BY seq DESC LIMIT 1), %s) FROM registry_auditevent ON CONFLICT (id) DO NOTHING"
)


@dataclass
class _HeldHead:
    """The chain head a transaction has locked, as its own appends left it, and the savepoints open
    when it was read or last moved (see `audit_chain_held`)."""

    head: AuditChainHead
    savepoints: tuple
    pending: list | None = None  # a batched block's events, chained but not yet written

    def still_current(self) -> bool:
        # Savepoint ids are never reused within a transaction, so the head is still the row's
        # exactly while every savepoint open at its last move is still open (in the same order).
        # After a released savepoint this says no too: one statement more, never a stale head.
        if not connection.in_atomic_block or connection.needs_rollback:
            return False
        now = _open_savepoints()
        return now[: len(self.savepoints)] == self.savepoints


def _open_savepoints() -> tuple:
    # Django lists an atomic block without a savepoint as None: nothing to roll back to there
    # (an error in it dooms the whole transaction, which `needs_rollback` says).
    return tuple(sid for sid in connection.savepoint_ids if sid is not None)


_held_head: contextvars.ContextVar[_HeldHead | None] = contextvars.ContextVar("audit_held_head", default=None)


@contextmanager
def audit_chain_held(*, batched: bool = False):
    """A transaction that records several events and locks the head once.

    Every audited service takes the head first (`audit_chain_lock`) and every event reads it before
    appending: in a push that is seven `SELECT ... FOR UPDATE` of the same row in one transaction.
    Inside this block the first one locks it and the rest, and every append, use the head as this
    transaction's own appends left it. A savepoint rolled back after an append makes the next
    reader query the row again (`_HeldHead.still_current`). Nested in another such block it is a
    plain atomic block: the outer one's head stays the one every append moves.

    `batched`: the block's events are chained as they are recorded and written together, with
    the head's move, by one statement as the block ends (a push records four: three round trips
    fewer while the head is locked). An event recorded inside a savepoint opened in such a block
    is refused (RuntimeError): were that savepoint rolled back, the batch could not tell which of
    its events went with it. An error leaving the block takes the unwritten events with it."""
    if _held_head.get() is not None:
        with transaction.atomic():
            yield
        return
    with transaction.atomic():
        held = _HeldHead(head=_query_locked_head(), savepoints=_open_savepoints(), pending=[] if batched else None)
        token = _held_head.set(held)
        try:
            yield
            if held.pending:
                events, held.pending = held.pending, None
                _insert_many_and_move_head(events)
        finally:
            _held_head.reset(token)


def _batch_of_this_block() -> "_HeldHead | None":
    """The batched held block an event recorded now joins, None when it is written at once."""
    held = _held_head.get()
    if held is None or held.pending is None:
        return None
    if connection.needs_rollback or _open_savepoints() != held.savepoints:
        raise RuntimeError("an audit event was recorded inside a savepoint of a batched audit_chain_held block")
    return held


def _deferred(held: _HeldHead, fields_list: list[dict], now) -> list[AuditEvent]:
    """Chain events after the batch's head in memory; the block writes them as it ends."""
    events = []
    for fields in fields_list:
        event = _chained_event(fields, seq=held.head.seq + 1, prev_hash=held.head.head_hash, now=now)
        held.head = AuditChainHead(id=1, seq=event.seq, head_hash=event.entry_hash)
        events.append(event)
    held.pending.extend(events)
    return events


def _locked_head() -> AuditChainHead:
    """The head row, locked until the transaction ends (read once inside `audit_chain_held`)."""
    held = _held_head.get()
    if held is not None and held.still_current():
        return held.head
    head = _query_locked_head()
    if held is not None:
        held.head, held.savepoints = head, _open_savepoints()
    return head


def _remember_head(seq: int, head_hash: str) -> None:
    held = _held_head.get()
    if held is not None:
        held.head = AuditChainHead(id=1, seq=seq, head_hash=head_hash)
        held.savepoints = _open_savepoints()


def _query_locked_head() -> AuditChainHead:
    """The head row, locked until the transaction ends. A flushed database (tests) has none:
    it is made again from the last event, so the chain continues where it stands."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_HEAD)
        row = cursor.fetchone()
        if row is None:
            cursor.execute(_MAKE_HEAD, [chain.GENESIS_HASH])
            cursor.execute(_LOCK_HEAD)
            row = cursor.fetchone()
    return AuditChainHead(id=1, seq=row[0], head_hash=row[1])


def audit_record(
    *,
    type: str,
    object_type: str = "",
    object_id: str = "",
    object_digest: str = "",
    namespace: str = "",
    adapter: str = "",
    before=None,
    after=None,
    reason: str = "",
    evidence=None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    actor: Actor | None = None,
) -> AuditEvent:
    """Append one event to the chain and return it.

    Call it inside the transaction of the change it records, so the change and its event commit
    or roll back together; without one it opens its own (a standalone event, e.g. a denied
    attempt, which must not sit in a transaction that is about to roll back). The chain head
    stays locked until that transaction ends: keep it short after this call.

    `adapter` ("namespace/name") ties the event to an adapter for the audit filters and exports;
    `actor` defaults to the current request's user or token (registry/audit/context.py).
    """
    fields = _event_fields(
        type=type,
        object_type=object_type,
        object_id=object_id,
        object_digest=object_digest,
        namespace=namespace,
        adapter=adapter,
        before=before,
        after=after,
        reason=reason,
        evidence=evidence,
        outcome=outcome,
        actor=actor,
    )
    with transaction.atomic(savepoint=False):
        return _append(fields)


def _event_fields(
    *,
    type: str,
    object_type: str = "",
    object_id: str = "",
    object_digest: str = "",
    namespace: str = "",
    adapter: str = "",
    before=None,
    after=None,
    reason: str = "",
    evidence=None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    actor: Actor | None = None,
) -> dict:
    """An event's hashed fields but for its place in the chain (id, seq, time, prev_hash), checked."""
    if not EVENT_TYPE.fullmatch(type):
        raise ValueError(f"audit event type {type!r} is not dotted lowercase, e.g. 'version.status'")
    if outcome not in AuditEvent.Outcome.values:
        raise ValueError(f"audit outcome must be one of {AuditEvent.Outcome.values}, got {outcome!r}")
    actor = actor or current_actor()
    if actor.kind not in AuditEvent.ActorKind.values:
        raise ValueError(f"actor kind must be one of {AuditEvent.ActorKind.values}, got {actor.kind!r}")
    request = current_request()
    if adapter and not namespace:
        namespace = adapter.split("/", 1)[0]
    return {
        "type": type,
        "actor_kind": actor.kind,
        "actor_id": _text(actor.id, "actor_id"),
        "actor_name": _text(actor.name, "actor_name"),
        "actor_role": _text(actor.role, "actor_role"),
        "token_id": _text(actor.token_id, "token_id"),
        "request_id": request.request_id if request else "",
        "client_address": _text(request.client_address, "client_address") if request else "",
        "object_type": _text(object_type, "object_type"),
        "object_id": _text(object_id, "object_id"),
        "object_digest": _text(object_digest, "object_digest"),
        "namespace": _text(namespace, "namespace"),
        "adapter": _text(adapter, "adapter"),
        "before": json_safe(before),
        "after": json_safe(after),
        "reason": _clean_text(str(reason or "")),
        "evidence": json_safe(evidence),
        "outcome": str(outcome),
    }


def _append(fields: dict) -> AuditEvent:
    batch = _batch_of_this_block()
    if batch is not None:
        return _deferred(batch, [fields], timezone.now())[0]
    head = _locked_head()
    # The time is read under the lock, so times never go backwards along the chain.
    event = _chained_event(fields, seq=head.seq + 1, prev_hash=head.head_hash, now=timezone.now())
    _insert_and_move_head(event)
    return event


def _chained_event(fields: dict, *, seq: int, prev_hash: str, now) -> AuditEvent:
    """The event at `seq` after `prev_hash`: its canonical body and entry hash."""
    event_id = uuid.uuid4()
    body = {"id": str(event_id), "seq": seq, "time": rfc3339(now), **fields, "prev_hash": prev_hash}
    canonical = _canonical(body)
    return AuditEvent(
        id=event_id,
        seq=seq,
        time=now,
        prev_hash=prev_hash,
        entry_hash=chain.body_hash(prev_hash, canonical),
        body=canonical.decode("utf-8"),
        **fields,
    )


_json_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _canonical(body: dict) -> bytes:
    """chain.canonical of a body made of json_safe values, seven times faster where it can be.

    json_safe leaves no floats and no integer beyond 2**53; for such values json's C encoder
    writes exactly the RFC 8785 bytes whenever its output is ASCII: the same escapes (\\b \\t \\n
    \\f \\r, \\u00xx for the other control characters, \\" and \\\\), the same integers, and keys
    sorted the same (code points and UTF-16 units agree on ASCII). Anything else goes to rfc8785
    (tests/audit/test_canonical.py holds the two together)."""
    text = _json_encoder.encode(body)
    return text.encode() if text.isascii() else chain.canonical(body)


def _insert_and_move_head(event: AuditEvent) -> None:
    """INSERT the event and move the head in one statement: one round trip fewer while the head is
    locked, which is what every other writer waits for (BENCHMARKS.md)."""
    columns = AuditEvent._meta.concrete_fields
    values = [field.get_db_prep_save(getattr(event, field.attname), connection) for field in columns]
    sql = (
        f"WITH inserted AS (INSERT INTO registry_auditevent ({', '.join(f.column for f in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})) "
        "UPDATE registry_auditchainhead SET seq = %s, head_hash = %s WHERE id = 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, event.seq, event.entry_hash])
    event._state.adding, event._state.db = False, connection.alias
    _remember_head(event.seq, event.entry_hash)


def audit_record_many(events: list[dict]) -> list[AuditEvent]:
    """Append several events, each given as audit_record's keyword arguments, in their order.

    For a batch of changes in one transaction (a bulk registration): the head is locked once,
    the events are chained one after the other and written, and the head moved, by one statement.
    They share one time, read under the lock, so times still never go backwards along the chain.
    """
    if not events:
        return []
    fields = [_event_fields(**event) for event in events]
    batch = _batch_of_this_block()
    if batch is not None:
        return _deferred(batch, fields, timezone.now())
    with transaction.atomic(savepoint=False):
        head = _locked_head()
        now = timezone.now()
        chained, prev_hash = [], head.head_hash
        for offset, event_fields in enumerate(fields, start=1):
            chained.append(_chained_event(event_fields, seq=head.seq + offset, prev_hash=prev_hash, now=now))
            prev_hash = chained[-1].entry_hash
        _insert_many_and_move_head(chained)
    return chained


def _insert_many_and_move_head(events: list[AuditEvent]) -> None:
    """INSERT the events and move the head in one statement whose one parameter is the rows as JSON:
    a VALUES list would carry a placeholder per value, which the driver parses on every call (and
    PostgreSQL takes at most 65,535), and arrays per column are quoted value by value in Python."""
    columns = [field.column for field in AuditEvent._meta.concrete_fields]
    rows = [
        {field.column: _json_column(getattr(event, field.attname)) for field in AuditEvent._meta.concrete_fields}
        for event in events
    ]
    sql = (
        f"WITH inserted AS (INSERT INTO registry_auditevent ({', '.join(columns)}) "
        f"SELECT {', '.join(columns)} FROM json_populate_recordset(NULL::registry_auditevent, %s)) "
        "UPDATE registry_auditchainhead SET seq = %s, head_hash = %s WHERE id = 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(rows, ensure_ascii=False), events[-1].seq, events[-1].entry_hash])
    for event in events:
        event._state.adding, event._state.db = False, connection.alias
    _remember_head(events[-1].seq, events[-1].entry_hash)


def _json_column(value):
    """A column's value as json_populate_recordset reads it back: JSON columns as they are (JSON data
    already, see json_safe), UUIDs and times as text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def audit_subject(obj) -> dict:
    """object_type, object_id, object_digest, namespace and adapter for a model instance, to pass
    to audit_record as `**audit_subject(version)`. Versions, adapters, bases, jobs, suites and
    signing policies are named by their domain; any other model by its name and primary key."""
    from registry.models import Adapter, AdapterVersion, BaseModel, BaseModelVersion, EvaluationSuite, Job

    subject = {"object_type": obj._meta.model_name, "object_id": str(obj.pk)}
    if isinstance(obj, AdapterVersion):
        name = obj.adapter.full_name
        return {
            **subject,
            "object_type": "adapter_version",
            "object_digest": obj.digest,
            "namespace": obj.adapter.namespace,
            "adapter": name,
        }
    if isinstance(obj, BaseModelVersion):
        return {
            **subject,
            "object_type": "base_version",
            "object_digest": obj.digest,
            "namespace": obj.base_model.namespace,
        }
    if isinstance(obj, Adapter):
        return {**subject, "object_type": "adapter", "namespace": obj.namespace, "adapter": obj.full_name}
    if isinstance(obj, BaseModel):
        return {**subject, "object_type": "base", "namespace": obj.namespace}
    if isinstance(obj, Job):
        adapter = obj.adapter_version.adapter
        return {**subject, "object_type": "job", "namespace": adapter.namespace, "adapter": adapter.full_name}
    if isinstance(obj, EvaluationSuite):
        return {**subject, "object_type": "suite", "object_digest": obj.digest, "namespace": obj.namespace}
    if hasattr(obj, "namespace") and isinstance(obj.namespace, str):
        subject["namespace"] = obj.namespace
    return subject


def audit_event_data(event: AuditEvent) -> dict:
    """The event as the chain hashed it, plus its entry_hash: what exports write and verifiers read.
    Read from the stored body, never rebuilt from the columns."""
    import json

    return {**json.loads(event.body), chain.ENTRY_HASH: event.entry_hash}


def audit_events_in_order(*, after_seq: int = 0, batch_size: int = 5000):
    """Every stored event after `after_seq`, in seq order, as audit_event_data, read in keyset batches
    (no server-side cursor to leak if the reader stops early)."""
    while True:
        batch = list(
            AuditEvent.objects.filter(seq__gt=after_seq).order_by("seq").only("seq", "body", "entry_hash")[:batch_size]
        )
        yield from (audit_event_data(event) for event in batch)
        if len(batch) < batch_size:
            return
        after_seq = batch[-1].seq


def audit_chain_verify(*, batch_size: int = 5000) -> int:
    """Verify the whole stored chain from its genesis and against the head row; return the last seq.
    Raises chain.ChainBroken naming the first event that does not verify."""
    head_hash = chain.verify_chain(audit_events_in_order(batch_size=batch_size))
    head = AuditChainHead.objects.filter(pk=1).first()
    last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    if head is not None and (head.seq, head.head_hash) != (last, head_hash):
        raise chain.ChainBroken(
            head.seq, f"the chain head row says #{head.seq} {head.head_hash}, the events end at #{last} {head_hash}"
        )
    return last


CHECKPOINT_TYPE = "audit.checkpoint"


def audit_checkpoint() -> AuditEvent | None:
    """Sign the chain's current head with the registry's key and record it as an `audit.checkpoint`
    event; None when there is nothing new to vouch for (an empty chain, or the head is a checkpoint).

    The checkpoint's payload names the event before it: the checkpoint event itself is then
    chained like any other, so a later checkpoint covers this one too.
    """
    from cryptography.hazmat.primitives import serialization

    from registry.audit.checkpoint import ALGORITHM, checkpoint_payload, sign_checkpoint
    from registry.audit.context import actor_system
    from registry.signing.keys import active_key

    key = active_key()  # before the head lock: it may write the key's row on first use
    with transaction.atomic():
        head = _locked_head()
        if head.seq == 0 or AuditEvent.objects.filter(seq=head.seq, type=CHECKPOINT_TYPE).exists():
            return None
        payload = checkpoint_payload(seq=head.seq, head_hash=head.head_hash, time=rfc3339(timezone.now()))
        private_key = serialization.load_pem_private_key(key.path.read_bytes(), password=None)
        return audit_record(
            type=CHECKPOINT_TYPE,
            object_type="audit_chain",
            object_id=str(head.seq),
            object_digest=head.head_hash,
            evidence={
                "payload": payload,
                "signature": sign_checkpoint(private_key, payload),
                "key_id": key.key_id,
                "algorithm": ALGORITHM,
            },
            actor=actor_system(),
        )


def audit_chain_lock() -> None:
    """Take the chain head's lock now, inside the caller's transaction, before any row it will move.

    A transaction that records events must take the head before other row locks: one that held a
    row while waiting for the head, against one that held the head while waiting for that row,
    would deadlock (the reaper releasing a job a worker is finishing). registry/services/transitions.py
    calls this first in every transition.
    """
    _locked_head()
