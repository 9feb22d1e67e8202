"""The worker pool's records: workers, jobs, checks, evaluation suites and their attachments."""

import uuid

from django.conf import settings
from django.db import models

from registry.models.catalog import Adapter, AdapterVersion, Blob
from registry.residency.snapshot import ResidentSnapshot


class Worker(models.Model):
    """A Celery worker process that runs checks and evaluations, as it last reported itself."""

    class State(models.TextChoices):
        ONLINE = "online"
        LOST = "lost"
        STOPPED = "stopped"

    hostname = models.CharField(max_length=255, unique=True, help_text="Celery node name")
    queues = models.JSONField(default=list)
    direct_queue = models.CharField(max_length=255)
    device_type = models.CharField(max_length=16)
    device_name = models.CharField(max_length=255, blank=True)
    device_memory_total = models.BigIntegerField(null=True)
    device_memory_free = models.BigIntegerField(null=True)
    host_memory_total = models.BigIntegerField(null=True)
    host_memory_available = models.BigIntegerField(null=True)
    library_versions = models.JSONField(default=dict)
    resident = models.JSONField(default=dict, help_text="bases and adapters held in memory")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ONLINE)
    started_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat_at = models.DateTimeField()

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    @property
    def resident_snapshot(self) -> ResidentSnapshot:
        """The last heartbeat's snapshot; entries that do not validate are left out (see its `problems`)."""
        return ResidentSnapshot.from_dict(self.resident, strict=False)

    def holds_base(self, base_version_id) -> bool:
        return self.resident_snapshot.holds_base(base_version_id)


class Job(models.Model):
    """One unit of work for the worker pool: a compatibility check or an evaluation."""

    class Kind(models.TextChoices):
        COMPATIBILITY = "compatibility"
        EVALUATION = "evaluation"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    adapter_version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, related_name="jobs")
    suite = models.ForeignKey("EvaluationSuite", null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    queue = models.CharField(max_length=255, blank=True, help_text="where it was routed")
    attempts = models.PositiveIntegerField(default=0, help_text="claims by a worker")
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="last time its message was sent")
    dispatch_attempts = models.PositiveIntegerField(default=0, help_text="messages sent for it, re-dispatches included")
    claimed_by = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="claimed_jobs"
    )
    ran_on = models.CharField(max_length=255, blank=True)
    base_was_resident = models.BooleanField(null=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)  # indexed with id below
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "claimed_by"]),
            models.Index(fields=["state", "dispatched_at"], name="job_state_dispatched_idx"),
            # The job list's keyset order, alone and after its selective filters.
            models.Index(fields=["created_at", "id"], name="job_keyset"),
            models.Index(fields=["state", "created_at", "id"], name="job_state_keyset"),
            models.Index(fields=["ran_on", "created_at", "id"], name="job_worker_keyset"),
        ]

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Check(models.Model):
    """A compatibility finding for an adapter version: static (headers) or dynamic (forward pass)."""

    class Kind(models.TextChoices):
        STATIC = "static"
        DYNAMIC = "dynamic"

    class Verdict(models.TextChoices):
        PASS = "pass"
        FAIL = "fail"

    adapter_version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, related_name="checks")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="checks")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    reasons = models.JSONField(default=list)
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["adapter_version", "kind"], name="one_check_per_kind")]


class EvaluationSuite(models.Model):
    """A registered, versioned, content-hashed JSONL dataset with a task type."""

    class TaskType(models.TextChoices):
        CAUSAL_LM = "causal_lm"
        CLASSIFICATION = "classification"
        EXACT_MATCH = "exact_match"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=128)
    number = models.PositiveIntegerField()
    digest = models.CharField(max_length=64)
    task_type = models.CharField(max_length=16, choices=TaskType.choices)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    example_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["namespace", "name", "-number"]
        indexes = [models.Index(fields=["created_at", "id"], name="suite_keyset")]  # the API's list order
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name", "number"], name="unique_suite_number"),
            models.UniqueConstraint(fields=["namespace", "name", "digest"], name="unique_suite_digest"),
        ]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}:v{self.number}"

    def __str__(self) -> str:
        return self.ref


class SuiteAttachment(models.Model):
    """Suites attached to an adapter name run automatically for each of its new versions."""

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="suite_attachments")
    suite = models.ForeignKey(EvaluationSuite, on_delete=models.CASCADE, related_name="attachments")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["adapter", "suite"], name="unique_suite_attachment")]
