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
    """A movable name (`staging`, `production`, ...) pointing at one version of an adapter, with an
    optional canary: `canary_version` takes `canary_weight` percent of the traffic, `version` the rest.

    Only registry/services/transitions.py `alias_move` changes a row, recording each move as an
    AliasMove (registry/models/promotions.py); `ns/name:production` resolves to `version`.
    """

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64)
    version = models.ForeignKey(AdapterVersion, on_delete=models.PROTECT, related_name="aliases")
    canary_version = models.ForeignKey(
        AdapterVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="canary_aliases"
    )
    canary_weight = models.PositiveSmallIntegerField(default=0, help_text="percent of traffic for canary_version")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["adapter", "name"], name="unique_adapter_alias")]
