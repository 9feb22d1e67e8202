"""The audit trail: an append-only, hash-chained log of every state change (registry/audit/)."""

import uuid

from django.contrib.postgres.indexes import BrinIndex
from django.db import models

from registry.audit.chain import GENESIS_HASH


class AuditEvent(models.Model):
    """One recorded action. Never updated or deleted: a PostgreSQL trigger refuses it (migration 0007).

    `body` holds the exact canonical JSON that `entry_hash` covers (registry/audit/chain.py); the
    other columns repeat its fields for filtering, and verification reads only `body`.
    """

    class ActorKind(models.TextChoices):
        USER = "user"
        TOKEN = "token"
        WORKER = "worker"
        SYSTEM = "system"

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        DENIED = "denied"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    seq = models.BigIntegerField(unique=True, help_text="1, 2, 3, ... without gaps")
    time = models.DateTimeField()
    type = models.CharField(max_length=64, help_text="dotted: <object>.<action>")
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=255, blank=True)
    actor_name = models.CharField(max_length=255, blank=True, help_text="as it was at the time")
    actor_role = models.CharField(max_length=64, blank=True)
    token_id = models.CharField(max_length=64, blank=True, help_text="the token's id, never its key")
    request_id = models.CharField(max_length=64, blank=True)
    client_address = models.CharField(max_length=64, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=255, blank=True)
    object_digest = models.CharField(max_length=255, blank=True)
    namespace = models.CharField(max_length=64, blank=True)
    adapter = models.CharField(max_length=300, blank=True, help_text="namespace/name, if any")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    evidence = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)
    body = models.TextField(help_text="the canonical JSON that entry_hash covers")

    class Meta:
        ordering = ["seq"]
        # Each list filter with the seq order the list pages by: one index range scan per page.
        # Plain (not db_index) so no second varchar_pattern_ops index slows every append.
        indexes = [
            # Times grow with seq: a BRIN index answers time ranges and costs an append almost nothing.
            BrinIndex(fields=["time"], name="audit_time_brin"),
            models.Index(fields=["type", "seq"], name="audit_type_seq"),
            models.Index(fields=["namespace", "seq"], name="audit_namespace_seq"),
            models.Index(fields=["adapter", "seq"], name="audit_adapter_seq"),
            models.Index(fields=["actor_name", "seq"], name="audit_actor_seq"),
            models.Index(fields=["object_id", "seq"], name="audit_object_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"


class AuditChainHead(models.Model):
    """The chain's one head row. Writers lock it (SELECT ... FOR UPDATE) to take the next seq,
    so sequence numbers have no gaps: a rolled-back writer rolls back its event and the head together."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_single_row")]

    def __str__(self) -> str:
        return f"audit head #{self.seq}"
