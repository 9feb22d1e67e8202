"""Signed checkpoints: the registry's key vouches for the chain head; nothing new, no checkpoint."""

import pytest

from registry.audit.chain import verify_chain
from registry.audit.checkpoint import checkpoint_signature_valid
from registry.audit.services import audit_chain_verify, audit_checkpoint, audit_event_data
from registry.audit.tasks import checkpoint as checkpoint_task
from registry.models import AuditEvent, RegistryKey
from tests.audit.helpers import record

pytestmark = pytest.mark.django_db


def test_it_signs_the_head_with_the_registry_key():
    record()
    last = record()
    event = audit_checkpoint()
    assert (event.type, event.seq, event.actor_kind) == ("audit.checkpoint", last.seq + 1, "system")
    evidence = audit_event_data(event)["evidence"]
    assert evidence["payload"]["seq"] == last.seq
    assert evidence["payload"]["head_hash"] == last.entry_hash == event.prev_hash
    assert evidence["payload"]["time"].endswith("Z")
    public_key_pem = RegistryKey.objects.get(key_id=evidence["key_id"]).public_key_pem
    assert checkpoint_signature_valid(public_key_pem, evidence["payload"], evidence["signature"])
    assert audit_chain_verify() == event.seq


def test_a_changed_payload_or_another_key_does_not_verify(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    record()
    evidence = audit_event_data(audit_checkpoint())["evidence"]
    public_key_pem = RegistryKey.objects.get(key_id=evidence["key_id"]).public_key_pem
    moved = {**evidence["payload"], "seq": evidence["payload"]["seq"] + 1}
    assert not checkpoint_signature_valid(public_key_pem, moved, evidence["signature"])
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert not checkpoint_signature_valid(other_pem, evidence["payload"], evidence["signature"])
    assert not checkpoint_signature_valid(public_key_pem, evidence["payload"], "not base64!")


def test_it_is_skipped_when_nothing_changed_since_the_last_one():
    assert audit_checkpoint() is None  # an empty chain: nothing to vouch for
    record()
    first = audit_checkpoint()
    assert audit_checkpoint() is None
    assert checkpoint_task() is None  # the beat task calls the same service
    record()
    assert checkpoint_task() == first.seq + 2
    assert AuditEvent.objects.filter(type="audit.checkpoint").count() == 2
    verify_chain(audit_event_data(e) for e in AuditEvent.objects.order_by("seq"))
