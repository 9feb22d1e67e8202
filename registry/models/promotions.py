"""Promotions: every alias move, per-namespace promotion policies, promotion requests and their approvals.

An alias (catalog.AdapterAlias) is where serving looks now; AliasMove is its history, one row per
move, so "what did production point to at time T" is one indexed lookup and a rollback knows where
to go back to. Requests carry their gate results frozen at decision time and the steps of their
execution, so the page, the API and `adapterctl wait` all read the same record.
"""

import uuid

from django.conf import settings
from django.db import models

from registry.models.catalog import Adapter, AdapterVersion


class AliasMove(models.Model):
    """One move of an alias: from what to what (primary and canary), who, when, why, with which evidence."""

    class Kind(models.TextChoices):
        PROMOTE = "promote"
        ROLLBACK = "rollback"
        CANARY_START = "canary_start"
        CANARY_RAMP = "canary_ramp"
        CANARY_PROMOTE = "canary_promote"
        CANARY_ABORT = "canary_abort"

    id = models.BigAutoField(primary_key=True)
    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="alias_moves")
    alias = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_version = models.ForeignKey(AdapterVersion, null=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(AdapterVersion, on_delete=models.PROTECT, related_name="+")
    from_canary_version = models.ForeignKey(AdapterVersion, null=True, on_delete=models.PROTECT, related_name="+")
    from_canary_weight = models.PositiveSmallIntegerField(default=0)
    canary_version = models.ForeignKey(AdapterVersion, null=True, on_delete=models.PROTECT, related_name="+")
    canary_weight = models.PositiveSmallIntegerField(default=0)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True, help_text="as it was at the time")
    reason = models.TextField(blank=True)
    request = models.ForeignKey(
        "PromotionRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="moves"
    )
    evidence = models.JSONField(default=dict, blank=True)
    moved_at = models.DateTimeField()

    class Meta:
        ordering = ["-moved_at", "-id"]
        indexes = [models.Index(fields=["adapter", "alias", "-moved_at", "-id"], name="alias_move_at_idx")]

    def __str__(self) -> str:
        return f"{self.adapter.full_name}:{self.alias} {self.kind} -> {self.to_version_id}"


class PromotionPolicy(models.Model):
    """A namespace's rules for moving one alias (`alias` "*" for every alias without its own row).

    Without a row the defaults apply (registry/services/promotions.py DEFAULT_POLICIES): `production`
    needs one approval by someone other than the requester, every other alias none.
    """

    namespace = models.CharField(max_length=64)
    alias = models.CharField(max_length=64, help_text='the alias, or "*" for the namespace\'s default')
    document = models.JSONField(help_text="approvals, suites, metric thresholds, base change, rollback approval")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "alias"], name="unique_promotion_policy")]

    def __str__(self) -> str:
        return f"promotion policy {self.namespace}:{self.alias}"


class PromotionRequest(models.Model):
    """A request to point an alias at a version (or to start a canary of it, or to roll back)."""

    class Kind(models.TextChoices):
        PROMOTE = "promote"
        CANARY = "canary"
        ROLLBACK = "rollback"

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for approvals
        APPROVED = "approved"  # queued for execution
        EXECUTING = "executing"
        EXECUTED = "executed"
        FAILED = "failed"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    OPEN_STATES = (State.PENDING, State.APPROVED, State.EXECUTING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="promotion_requests")
    alias = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROMOTE)
    version = models.ForeignKey(AdapterVersion, on_delete=models.PROTECT, related_name="promotion_requests")
    canary_weight = models.PositiveSmallIntegerField(default=0, help_text="canary requests: percent of traffic")
    expected_version = models.ForeignKey(
        AdapterVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="what the alias served when the request was made; the move happens only from there",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField()
    policy = models.JSONField(default=dict, help_text="the policy that applied, as it was")
    approvals_required = models.PositiveSmallIntegerField(default=0)
    gates = models.JSONField(default=list, help_text="gate results frozen at the last decision")
    gates_passed = models.BooleanField(default=False)
    gates_evaluated_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.TextField(blank=True, help_text="an admin's written reason to move despite failing gates")
    override_by_name = models.CharField(max_length=150, blank=True)
    steps = models.JSONField(default=list, help_text="execution progress: name, state, time, detail")
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "-created_at"], name="promotion_state_idx")]

    def __str__(self) -> str:
        return f"promotion {self.id} ({self.state})"


class PromotionApproval(models.Model):
    """One approver's decision on a request: approve or reject, with a comment."""

    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    user_name = models.CharField(max_length=150)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="one_decision_per_approver")]
