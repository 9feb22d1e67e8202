"""Serving residency: the serving fleet, its telemetry, policy pins and the planner's output.

- ServingWorker: one serving engine process (vLLM, SGLang, ...) registered by an admin, with the
  bases it serves and its capacity per tier (GPU slots and/or bytes, host, disk).
- TelemetryWindow: requests, cold loads and time to first token of one adapter version on one
  worker over one window; raw windows are rolled into hourly, then daily rows by age
  (registry/telemetry_tasks.py), so storage stays bounded.
- ResidencyPin: "keep this warm" by policy, whatever demand says.
- ResidencyPlan / WorkerDesiredState: one planner run and, per worker, the state it wants.

Only these models are written here; the planner itself (registry/residency/) never imports Django.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry.models.catalog import Adapter, AdapterVersion, BaseModelVersion

# A worker's name appears in URLs (/api/v1/residency/workers/<name>) and in routing hints.
SERVING_WORKER_NAME = r"[a-z0-9][a-z0-9._-]{0,62}"
LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}")
LABEL_VALUE_MAX = 256
LABELS_MAX = 64


def validate_labels(value) -> None:
    """Labels are a flat dict of short string keys to string values (routers match on them)."""
    if not isinstance(value, dict):
        raise ValidationError("labels must be an object of string keys to string values", code="invalid_labels")
    if len(value) > LABELS_MAX:
        raise ValidationError(f"at most {LABELS_MAX} labels", code="invalid_labels")
    for key, label in value.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise ValidationError(
                f"label key {key!r} must be 1-63 letters, digits or . _ / - (starting with a letter or digit)",
                code="invalid_labels",
            )
        if not isinstance(label, str) or len(label) > LABEL_VALUE_MAX:
            raise ValidationError(
                f"label {key!r} must have a string value of at most {LABEL_VALUE_MAX} characters",
                code="invalid_labels",
            )


class ServingWorker(models.Model):
    """A serving engine process the planner places adapters on (not a Celery worker: see work.Worker).

    Capacity on the GPU is given in adapter slots (vLLM's max_loras), in bytes, or both; the other
    tiers are optional (null: the tier is not planned for this worker).
    """

    class Engine(models.TextChoices):
        VLLM = "vllm"
        SGLANG = "sglang"
        OTHER = "other"

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[
            RegexValidator(
                rf"^{SERVING_WORKER_NAME}\Z",
                "a worker name is 1-63 lowercase letters, digits or . _ - (starting with a letter or digit)",
            )
        ],
    )
    engine = models.CharField(max_length=16, choices=Engine.choices)
    endpoint = models.CharField(max_length=512, validators=[URLValidator(schemes=["http", "https"])])
    base_versions = models.ManyToManyField(BaseModelVersion, related_name="serving_workers", blank=True)
    gpu_slots = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    gpu_bytes = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    max_rank = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="largest LoRA rank it loads (max_lora_rank)"
    )
    host_slots = models.PositiveIntegerField(null=True, blank=True, help_text="host-memory adapters (max_cpu_loras)")
    host_bytes = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(0)])
    disk_bytes = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(0)])
    labels = models.JSONField(default=dict, blank=True, validators=[validate_labels])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="when it last posted telemetry")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(gpu_slots__isnull=False) | Q(gpu_bytes__isnull=False), name="serving_worker_gpu_capacity"
            ),
            models.CheckConstraint(
                condition=Q(gpu_slots__isnull=True) | Q(gpu_slots__gt=0), name="serving_worker_gpu_slots_positive"
            ),
            models.CheckConstraint(
                condition=Q(gpu_bytes__isnull=True) | Q(gpu_bytes__gt=0), name="serving_worker_gpu_bytes_positive"
            ),
            models.CheckConstraint(
                condition=Q(host_bytes__isnull=True) | Q(host_bytes__gte=0), name="serving_worker_host_bytes_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(disk_bytes__isnull=True) | Q(disk_bytes__gte=0), name="serving_worker_disk_bytes_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.gpu_slots is None and self.gpu_bytes is None:
            raise ValidationError(
                {"gpu_slots": "give the GPU capacity: gpu_slots, gpu_bytes or both"}, code="invalid_capacity"
            )


class TelemetryWindow(models.Model):
    """What one worker saw of one adapter version over [window_start, window_end).

    Posted as `raw` windows (idempotent per worker, version and window: a re-sent window replaces
    the row); `hour` and `day` rows are roll-ups of older ones, their time to first token a
    request-weighted mean of the rolled rows' percentiles (an approximation, not a true percentile).
    """

    class Resolution(models.TextChoices):
        RAW = "raw"
        HOUR = "hour"
        DAY = "day"

    # 10,000 rows per batch must land in under 1 s, and every index and constraint costs each row:
    # - the foreign keys get no index of their own (the composite indexes below lead with them);
    # - nor a database constraint: checking one locked each referenced version row (FOR KEY SHARE),
    #   10,000 row locks per batch, about 40% of the insert. The ingest service checks every
    #   reference in the same transaction instead; versions are never deleted (PROTECT elsewhere),
    #   and a worker's removal and an ingest lock the worker's row first, so neither leaves
    #   orphans. on_delete=CASCADE still holds: Django's collector deletes the rows.
    id = models.BigAutoField(primary_key=True)
    worker = models.ForeignKey(
        ServingWorker, on_delete=models.CASCADE, related_name="telemetry", db_index=False, db_constraint=False
    )
    adapter_version = models.ForeignKey(
        AdapterVersion, on_delete=models.CASCADE, related_name="telemetry", db_index=False, db_constraint=False
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    requests = models.BigIntegerField()
    cold_loads = models.BigIntegerField(default=0)
    ttft_p50_ms = models.FloatField(null=True, blank=True)
    ttft_p99_ms = models.FloatField(null=True, blank=True)
    resolution = models.CharField(max_length=8, choices=Resolution.choices, default=Resolution.RAW)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["window_end", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["worker", "adapter_version", "window_start", "window_end"], name="telemetry_window_once"
            ),
            models.CheckConstraint(condition=Q(window_end__gt=models.F("window_start")), name="telemetry_window_order"),
            models.CheckConstraint(condition=Q(requests__gte=0, cold_loads__gte=0), name="telemetry_counts_nonneg"),
        ]
        indexes = [
            models.Index(fields=["adapter_version", "window_end"], name="telemetry_version_end_idx"),
            models.Index(fields=["worker", "window_end"], name="telemetry_worker_end_idx"),
            # Readers page by (window_end, id) from `since`; the roll-up scans the oldest rows with it.
            models.Index(fields=["window_end", "id"], name="telemetry_end_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.worker_id}/{self.adapter_version_id} [{self.window_start}, {self.window_end})"


class ResidencyPin(models.Model):
    """Keep an adapter warm whatever its demand: one exact version, or whatever an alias serves.

    Exactly one target: `adapter_version`, or `adapter` + `alias` (the pin follows the alias as it
    moves, its canary included). `worker` null: every worker that serves the version's base.
    """

    adapter_version = models.ForeignKey(
        AdapterVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="residency_pins"
    )
    adapter = models.ForeignKey(Adapter, null=True, blank=True, on_delete=models.CASCADE, related_name="residency_pins")
    alias = models.CharField(max_length=64, blank=True)
    worker = models.ForeignKey(
        ServingWorker, null=True, blank=True, on_delete=models.CASCADE, related_name="residency_pins"
    )
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(adapter_version__isnull=False, adapter__isnull=True, alias="")
                | (Q(adapter_version__isnull=True, adapter__isnull=False) & ~Q(alias="")),
                name="residency_pin_one_target",
            ),
            # One pin per target and worker; "every worker" (null) counts as one worker here.
            models.UniqueConstraint(
                fields=["adapter_version", "worker"],
                condition=Q(adapter_version__isnull=False),
                nulls_distinct=False,
                name="residency_pin_version_once",
            ),
            models.UniqueConstraint(
                fields=["adapter", "alias", "worker"],
                condition=Q(adapter__isnull=False),
                nulls_distinct=False,
                name="residency_pin_alias_once",
            ),
        ]

    def __str__(self) -> str:
        where = self.worker.name if self.worker_id else "every worker"
        return f"pin {self.target} on {where}"

    @property
    def target(self) -> str:
        """The pinned reference as the API shows it: `ns/name@sha256:…` or `ns/name:alias`."""
        if self.adapter_version_id:
            return self.adapter_version.digest_ref
        return f"{self.adapter.full_name}:{self.alias}"


class ResidencyPlan(models.Model):
    """One planner run over the whole fleet: why it ran, with what configuration, how good it is.

    Written by registry/residency plan storage; `config` holds the planner's parameters (half-life,
    hysteresis, ...), `summary` what the run wants to report (per-tier counts, churn, ...).
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    trigger = models.CharField(max_length=64, help_text="periodic, alias.move, manual, ...")
    config = models.JSONField(default=dict, blank=True)
    candidates = models.PositiveIntegerField(default=0, help_text="adapter versions some alias serves")
    expected_gpu_hit_rate = models.FloatField(null=True, blank=True)
    plan_seconds = models.FloatField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"residency plan {self.pk} ({self.trigger})"


class WorkerDesiredState(models.Model):
    """One worker's part of a plan: its desired state (GPU-pinned, host-warm, disk prefetch, evict).

    `digest` is the SHA-256 hex of the desired state's canonical JSON (RFC 8785), so "did this
    worker's state change" is a string comparison; `changed` records that against the worker's
    previous plan (the `residency.plan_changed` webhook fires on it).
    """

    id = models.BigAutoField(primary_key=True)
    plan = models.ForeignKey(ResidencyPlan, on_delete=models.CASCADE, related_name="worker_states")
    worker = models.ForeignKey(ServingWorker, on_delete=models.CASCADE, related_name="desired_states")
    desired = models.JSONField(default=dict)
    digest = models.CharField(max_length=64, help_text="sha256 hex of the canonical JSON of `desired`")
    expected_gpu_hit_rate = models.FloatField(null=True, blank=True)
    changed = models.BooleanField(default=False, help_text="differs from this worker's previous plan")

    class Meta:
        ordering = ["plan", "worker"]
        constraints = [models.UniqueConstraint(fields=["plan", "worker"], name="one_desired_state_per_worker")]
        indexes = [models.Index(fields=["worker", "-plan"], name="desired_state_latest_idx")]

    def __str__(self) -> str:
        return f"plan {self.plan_id} for {self.worker_id}"
