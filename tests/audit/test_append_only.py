"""The database itself refuses to edit or remove audit events, whoever asks."""

import pytest
from django.db import DatabaseError, connection, transaction

from registry.models import AuditChainHead, AuditEvent
from tests.audit.helpers import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    record()
    return record(reason="the second")


def _refused(sql: str, params=()) -> str:
    with pytest.raises(DatabaseError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(refused.value)


def test_it_refuses_update(event):
    message = _refused("UPDATE registry_auditevent SET reason = 'edited' WHERE seq = %s", [event.seq])
    assert "audit events are append-only (UPDATE refused" in message
    assert AuditEvent.objects.get(seq=event.seq).reason == "the second"


def test_it_refuses_update_through_the_orm(event):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=event.seq).update(outcome="denied")


def test_it_refuses_delete(event):
    assert "DELETE refused" in _refused("DELETE FROM registry_auditevent WHERE seq = %s", [event.seq])
    assert AuditEvent.objects.count() == 2


def test_it_refuses_truncate(event):
    with connection.cursor() as cursor:
        # The test suite's sessions allow TRUNCATE for the flush between live-server tests; this
        # one behaves like the application's. SET LOCAL ends with the test's transaction.
        cursor.execute("SET LOCAL registry.audit_truncate = ''")
    assert "TRUNCATE refused" in _refused("TRUNCATE registry_auditevent")
    assert AuditEvent.objects.count() == 2


def test_the_chain_head_still_moves(event):
    head = AuditChainHead.objects.get(pk=1)
    assert (head.seq, head.head_hash) == (event.seq, event.entry_hash)
