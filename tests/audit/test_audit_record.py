"""audit_record: one event per call, chained, gapless under concurrency, in the caller's transaction."""

import threading

import pytest
from django.db import connection, connections, transaction

from registry.audit.chain import GENESIS_HASH, ChainBroken, verify_chain
from registry.audit.context import Actor, acting_as, actor_worker
from registry.audit.services import audit_chain_verify, audit_event_data, audit_record
from registry.models import AuditEvent
from tests.audit.helpers import record


def stored_chain() -> list[dict]:
    return [audit_event_data(event) for event in AuditEvent.objects.order_by("seq")]


@pytest.mark.django_db
def test_it_chains_events_from_the_genesis():
    first = record(type="adapter.upload", object_id="v1", before=None, after={"status": "received"})
    second = record(type="version.status", object_id="v1", before={"status": "received"}, after={"status": "ready"})
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.entry_hash)
    assert verify_chain(stored_chain()) == second.entry_hash
    assert audit_chain_verify() == audit_chain_verify(batch_size=1) == 2


@pytest.mark.django_db
def test_the_stored_body_is_what_was_hashed_and_matches_the_columns():
    event = record(type="adapter.upload", object_type="adapter_version", adapter="demo/bot", reason="r\x00")
    data = audit_event_data(event)
    assert data["time"].endswith("Z") and len(data["time"]) == len("2026-01-01T00:00:00.000000Z")
    assert data["namespace"] == "demo" == event.namespace  # taken from the adapter
    assert data["reason"] == "r\ufffd" == event.reason  # PostgreSQL cannot hold NUL: replaced in both
    assert data["actor_kind"] == "system" and data["actor_name"] == "tests"


@pytest.mark.django_db
def test_it_writes_values_as_json_data_without_floats():
    import datetime
    import decimal
    import uuid

    identifier = uuid.UUID(int=7)
    event = record(
        evidence={
            "accuracy": 0.5,
            "loss": decimal.Decimal("1.25"),
            "id": identifier,
            "at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
            "big": 2**60,
            "tags": ("a", "b"),
        }
    )
    assert audit_event_data(event)["evidence"] == {
        "accuracy": "0.5",
        "loss": "1.25",
        "id": str(identifier),
        "at": "2026-01-01T00:00:00.000000Z",
        "big": str(2**60),
        "tags": ["a", "b"],
    }
    with pytest.raises(TypeError, match="JSON data"):
        record(evidence={"what": object()})


@pytest.mark.django_db
@pytest.mark.parametrize("kwargs", [{"type": "Upload"}, {"type": "upload"}, {"outcome": "maybe"}])
def test_it_refuses_a_malformed_event(kwargs):
    with pytest.raises(ValueError):
        record(**{"type": "adapter.upload", **kwargs})
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_rolled_back_transaction_leaves_no_gap():
    record()
    with pytest.raises(RuntimeError), transaction.atomic():
        record(reason="rolled back with the change it recorded")
        raise RuntimeError("the change failed")
    third = record()
    assert third.seq == 2
    assert [e["seq"] for e in stored_chain()] == [1, 2]
    assert audit_chain_verify() == 2


@pytest.mark.django_db
def test_the_actor_can_be_named_for_a_block():
    with acting_as(actor_worker("gpu-1@host")):
        event = audit_record(type="job.claim")
    assert (event.actor_kind, event.actor_name) == ("worker", "gpu-1@host")
    assert audit_record(type="job.claim").actor_kind == "system"


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_gapless_chain():
    writers, per_writer = 8, 15
    errors, start = [], threading.Barrier(writers)

    def write(index: int) -> None:
        try:
            start.wait()
            for number in range(per_writer):
                with transaction.atomic():
                    audit_record(type="test.concurrent", reason=f"{index}-{number}", actor=Actor(kind="system"))
        except Exception as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connections.close_all()  # each thread had its own connection

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = stored_chain()
    assert [e["seq"] for e in events] == list(range(1, writers * per_writer + 1))
    assert len({e["reason"] for e in events}) == writers * per_writer
    verify_chain(events)
    assert audit_chain_verify() == writers * per_writer


@pytest.mark.django_db
def test_a_tampered_body_is_named_by_its_seq():
    for number in range(5):
        record(reason=f"event {number}")
    with connection.cursor() as cursor:
        # What an attacker with rights on the database can do; the chain is what shows it.
        cursor.execute("ALTER TABLE registry_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE registry_auditevent SET body = replace(body, 'event 2', 'event X'), reason = 'event X' "
            "WHERE seq = 3"
        )
        cursor.execute("ALTER TABLE registry_auditevent ENABLE TRIGGER USER")
    with pytest.raises(ChainBroken) as broken:
        audit_chain_verify()
    assert broken.value.seq == 3


@pytest.mark.django_db
def test_a_deleted_event_is_named_as_a_gap():
    for _ in range(4):
        record()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE registry_auditevent DISABLE TRIGGER USER")
        cursor.execute("DELETE FROM registry_auditevent WHERE seq = 2")
        cursor.execute("ALTER TABLE registry_auditevent ENABLE TRIGGER USER")
    with pytest.raises(ChainBroken, match="gap") as broken:
        audit_chain_verify()
    assert broken.value.seq == 3


# --- One head lock for a transaction's events (audit_chain_held) ----------------------------


def head_locks(queries) -> int:
    return sum("registry_auditchainhead WHERE id = 1 FOR UPDATE" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_events_in_one_held_transaction_lock_the_head_once_and_chain():
    from django.test.utils import CaptureQueriesContext

    from registry.audit.services import audit_chain_held, audit_chain_lock

    record(type="adapter.upload", object_id="before")
    with CaptureQueriesContext(connection) as queries, audit_chain_held():
        audit_chain_lock()  # what every service does first: no statement once held
        events = [record(type="version.status", object_id=f"v{i}") for i in range(3)]
    assert head_locks(queries) == 1
    assert [e.seq for e in events] == [2, 3, 4]
    assert audit_chain_verify() == 4
    # Outside the block every event locks the head again: the held head ended with its transaction.
    with CaptureQueriesContext(connection) as queries:
        record(type="version.status", object_id="after")
    assert head_locks(queries) == 1
    assert audit_chain_verify() == 5


@pytest.mark.django_db
def test_an_event_rolled_back_with_its_savepoint_leaves_no_gap_in_a_held_transaction():
    from registry.audit.services import audit_chain_held

    with audit_chain_held():
        first = record(type="version.status", object_id="kept-1")
        with pytest.raises(RuntimeError):
            with transaction.atomic():  # a savepoint
                record(type="version.status", object_id="rolled-back")
                raise RuntimeError("undo this part")
        second = record(type="version.status", object_id="kept-2")
        with transaction.atomic():  # a released savepoint: the head is read again, never stale
            third = record(type="version.status", object_id="kept-3")
        fourth = record(type="version.status", object_id="kept-4")
    assert [e.object_id for e in AuditEvent.objects.order_by("seq")] == ["kept-1", "kept-2", "kept-3", "kept-4"]
    assert (second.seq, second.prev_hash) == (first.seq + 1, first.entry_hash)
    assert (fourth.seq, fourth.prev_hash) == (third.seq + 1, third.entry_hash)
    assert audit_chain_verify() == fourth.seq


@pytest.mark.django_db
def test_a_nested_held_block_moves_the_outer_ones_head():
    from registry.audit.services import audit_chain_held

    with audit_chain_held():
        record(type="version.status", object_id="outer-1")
        with audit_chain_held():
            record(type="version.status", object_id="inner")
        last = record(type="version.status", object_id="outer-2")
    assert last.seq == 3
    assert audit_chain_verify() == 3


# --- A batched held block: the events written by one statement as it ends --------------------


def event_inserts(queries) -> int:
    return sum("INSERT INTO registry_auditevent" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_a_batched_block_chains_its_events_and_writes_them_with_one_statement():
    from django.test.utils import CaptureQueriesContext

    from registry.audit.services import audit_chain_held, audit_record_many

    record(type="adapter.upload", object_id="before")
    with CaptureQueriesContext(connection) as queries, audit_chain_held(batched=True):
        single = record(type="version.status", object_id="v1")
        several = audit_record_many([{"type": "job.dispatch", "object_id": f"j{i}"} for i in range(2)])
        last = record(type="version.status", object_id="v2")
        assert not AuditEvent.objects.filter(seq__gt=1).exists()  # nothing written yet
    assert event_inserts(queries) == 1 and head_locks(queries) == 1
    assert [e.seq for e in (single, *several, last)] == [2, 3, 4, 5]
    assert [e.object_id for e in AuditEvent.objects.order_by("seq")] == ["before", "v1", "j0", "j1", "v2"]
    assert audit_chain_verify() == 5
    assert record(type="version.status", object_id="after").seq == 6  # the head moved with the batch


@pytest.mark.django_db
def test_an_error_leaving_a_batched_block_takes_its_unwritten_events_with_it():
    from registry.audit.services import audit_chain_held

    first = record(type="adapter.upload", object_id="kept")
    with pytest.raises(ValueError), transaction.atomic():
        with audit_chain_held(batched=True):
            record(type="version.status", object_id="lost")
            raise ValueError("the change fails")
    assert list(AuditEvent.objects.values_list("object_id", flat=True)) == ["kept"]
    assert record(type="version.status", object_id="next").prev_hash == first.entry_hash
    assert audit_chain_verify() == 2


@pytest.mark.django_db
def test_a_batched_block_refuses_an_event_inside_a_savepoint_of_its_own():
    from registry.audit.services import audit_chain_held

    with pytest.raises(RuntimeError, match="savepoint"), audit_chain_held(batched=True):
        record(type="version.status", object_id="outside-the-savepoint")
        with transaction.atomic():
            record(type="version.status", object_id="inside-it")
    assert not AuditEvent.objects.exists()
