"""The registry's data: base models, adapters, their versions, files and blobs.

A version's identity is its UUID and its digest (the model-signing manifest root
over its files). Versions are immutable once created; status moves along
received -> checking -> ready | rejected.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Status(models.TextChoices):
    RECEIVED = "received"
    CHECKING = "checking"
    READY = "ready"
    REJECTED = "rejected"


class Blob(models.Model):
    """A file's bytes, stored once under its SHA-256 whatever name it is uploaded as."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"sha256:{self.sha256}"


class Repository(models.Model):
    """What a base model and an adapter name have in common: `namespace/name`."""

    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        abstract = True

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.full_name


class Version(models.Model):
    """Fields every version has, base model or adapter."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.PositiveIntegerField()
    digest = models.CharField(max_length=64, help_text="model-signing v1.0 manifest root (sha256 hex)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    status_reason = models.TextField(blank=True)
    total_bytes = models.BigIntegerField()
    parameter_count = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # The README.md model card read at ingest (registry/formats/model_card.py): front-matter
    # fields, warnings and sanitised HTML, so a page view reads no blob. Null: no card.
    card = models.JSONField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def repository(self) -> Repository:
        raise NotImplementedError

    @property
    def ref(self) -> str:
        return f"{self.repository.full_name}:v{self.number}"

    @property
    def digest_ref(self) -> str:
        return f"{self.repository.full_name}@sha256:{self.digest}"

    def __str__(self) -> str:
        return self.ref


class BaseModel(Repository):
    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="unique_base_model_name")]


class BaseModelVersion(Version):
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="versions")
    architecture = models.CharField(max_length=128, blank=True)
    model_type = models.CharField(max_length=64, blank=True)
    hidden_size = models.PositiveIntegerField(null=True)
    num_layers = models.PositiveIntegerField(null=True)
    dtype = models.CharField(max_length=16, blank=True)
    config = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["base_model", "number"], name="unique_base_version_number"),
            models.UniqueConstraint(fields=["base_model", "digest"], name="unique_base_version_digest"),
        ]
        indexes = [models.Index(fields=["digest"])]

    @property
    def repository(self) -> BaseModel:
        return self.base_model


class Adapter(Repository):
    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="unique_adapter_name")]


class AdapterVersion(Version):
    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, related_name="versions")
    base_version = models.ForeignKey(BaseModelVersion, on_delete=models.PROTECT, related_name="adapter_versions")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")

    peft_type = models.CharField(max_length=32)
    r = models.PositiveIntegerField(null=True)
    lora_alpha = models.FloatField(null=True)
    target_modules = models.JSONField(default=list)
    modules_to_save = models.JSONField(default=list)
    use_dora = models.BooleanField(default=False)
    use_rslora = models.BooleanField(default=False)
    tensor_count = models.PositiveIntegerField()
    dtypes = models.JSONField(default=list)
    config = models.JSONField(default=dict)
    # The config's regexes (a string target_modules, rank_pattern/alpha_pattern keys, ...) resolved
    # to explicit module names at ingest; workers hand these to peft. Null: not resolved (older rows).
    resolved_patterns = models.JSONField(null=True, blank=True)

    # Training provenance, all optional.
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    mlflow_run_uri = models.CharField(max_length=512, blank=True)
    dataset_name = models.CharField(max_length=256, blank=True)
    dataset_digest = models.CharField(max_length=128, blank=True)
    code_commit = models.CharField(max_length=64, blank=True)
    training_params = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["adapter", "number"], name="unique_adapter_version_number"),
            models.UniqueConstraint(fields=["adapter", "digest"], name="unique_adapter_version_digest"),
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="adapter_version_not_own_parent"),
        ]
        indexes = [
            models.Index(fields=["digest"]),
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["peft_type", "-created_at"]),
            models.Index(fields=["base_version", "-created_at"]),
        ]

    @property
    def repository(self) -> Adapter:
        return self.adapter

    @property
    def has_provenance(self) -> bool:
        return any([self.mlflow_run_id, self.mlflow_run_uri, self.dataset_name, self.code_commit, self.training_params])


class VersionFile(models.Model):
    path = models.CharField(max_length=255)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    size = models.BigIntegerField()

    class Meta:
        abstract = True

    @property
    def sha256(self) -> str:
        return self.blob_id


class BaseModelFile(VersionFile):
    version = models.ForeignKey(BaseModelVersion, on_delete=models.CASCADE, related_name="files")

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="unique_base_file_path")]


class AdapterFile(VersionFile):
    version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, related_name="files")

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="unique_adapter_file_path")]


class AdapterAlias(models.Model):
    """A movable name (`staging`, `production`, ...) pointing at one version of an adapter.

    Promotions (a later issue) move aliases and record every move; here they are
    only resolved, so `ns/name:production` works wherever a reference is taken.
    """

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64)
    version = models.ForeignKey(AdapterVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["adapter", "name"], name="unique_adapter_alias")]


# --- Workers, jobs, checks, evaluations ------------------------------------------------


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

    def holds_base(self, base_version_id) -> bool:
        return str(base_version_id) in {b["id"] for b in self.resident.get("bases", [])}


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
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "claimed_by"]),
            models.Index(fields=["state", "dispatched_at"], name="job_state_dispatched_idx"),
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


# --- Signatures (registry/models/signing.py) ---------------------------------------------

from registry.models.signing import (  # noqa: E402, F401  (a domain module beside the core ones)
    RegistryKey,
    Signature,
    SignatureVerification,
    SigningMethod,
    SigningPolicy,
)

