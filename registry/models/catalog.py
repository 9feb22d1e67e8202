"""The registry's data: base models, adapters, their versions, files and blobs.

A version's identity is its UUID and its digest (the model-signing manifest root
over its files). Versions are immutable once created; status moves along
received -> checking -> ready | rejected.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F, Func, Q


def name_grams(column: str) -> Func:
    """The indexed expression behind the live name search: the lower-cased 2- and 3-letter
    substrings of a name (SQL function `registry_name_grams`, migration 0015). A substring search
    for q is `grams(name) @> grams(q) AND name ILIKE '%q%'`, answered from a GIN index on it; see
    registry/search.py for why this and not pg_trgm or full-text search."""
    return Func(F(column), function="registry_name_grams")


def keyset_index(*leading: str, name: str) -> models.Index:
    """An index serving `[leading =] ... ORDER BY created_at DESC, id DESC` with a keyset cursor
    `ROW(created_at, id) < ROW(...)` (registry/keyset.py): one range scan per page, ties included."""
    return models.Index(fields=[*leading, "created_at", "id"], name=name)


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
    created_at = models.DateTimeField(auto_now_add=True)  # indexed with id: keyset_index()
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
        indexes = [GinIndex(name_grams("name"), name="base_model_name_grams", fastupdate=False)]


class BaseModelVersion(Version):
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="versions")
    architecture = models.CharField(max_length=128, blank=True)
    model_type = models.CharField(max_length=64, blank=True)
    hidden_size = models.PositiveIntegerField(null=True)
    num_layers = models.PositiveIntegerField(null=True)
    dtype = models.CharField(max_length=16, blank=True)
    config = models.JSONField(default=dict)
    # Every tensor's name, dtype and shape, read from the safetensors headers once at registration,
    # so an adapter push checks compatibility without reading the base's blobs. Null: older rows.
    tensor_index = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["base_model", "number"], name="unique_base_version_number"),
            models.UniqueConstraint(fields=["base_model", "digest"], name="unique_base_version_digest"),
        ]
        indexes = [
            models.Index(fields=["digest"]),
            keyset_index(name="base_version_keyset"),
            keyset_index("status", name="base_version_status_keyset"),
        ]

    @property
    def repository(self) -> BaseModel:
        return self.base_model


class BaseAdapterCount(models.Model):
    """How many adapter versions are built on a base version, without counting them on each read.

    A statement-level trigger on registry_adapterversion (migration 0016) adds each statement's
    inserts (and takes away deletes) into one of COUNT_SLOTS rows per base picked at random, so
    concurrent pushes onto one base do not queue on a single counter row; the count is the sum of
    the slots (selectors.base_adapter_counts). Never written from Python."""

    COUNT_SLOTS = 16

    base_version = models.ForeignKey(BaseModelVersion, on_delete=models.CASCADE, related_name="+", db_index=False)
    slot = models.PositiveSmallIntegerField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["base_version", "slot"], name="unique_base_adapter_count_slot")]


class Adapter(Repository):
    class Meta:
        # (namespace, name) is unique, so its index also serves `namespace=` and the namespace
        # type-ahead (registry/namespaces.py); `name=` across namespaces and the search get their own.
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="unique_adapter_name")]
        indexes = [
            models.Index(fields=["name"], name="adapter_name"),
            GinIndex(name_grams("name"), name="adapter_name_grams", fastupdate=False),
        ]


class AdapterVersion(Version):
    # No single-column indexes on these keys: the keyset indexes below lead with them (and the
    # unique (adapter, number) constraint with the adapter), which is one index less to write per push.
    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, related_name="versions", db_index=False)
    base_version = models.ForeignKey(
        BaseModelVersion, on_delete=models.PROTECT, related_name="adapter_versions", db_index=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", db_index=False
    )
    # The adapter's namespace, copied onto the version by a BEFORE INSERT trigger (migration 0017;
    # since 0019 also when an adapter moves, which the registry never does) so that `namespace=` is
    # one range scan of the (namespace, created_at, id) index: through the join, the planner either
    # walked the whole list order or probed every adapter of the namespace (BENCHMARKS.md, scale).
    # Never set from Python.
    namespace = models.CharField(max_length=64, editable=False, db_default="")
    # The adapter's name, copied by the same trigger (migration 0019), so that a common name search
    # filters the rows it walks in list order without looking up each one's adapter: 10,511 lookups
    # for a page of `support` at 10^6 names (BENCHMARKS.md, scale). Kept right by the database if an
    # adapter is ever renamed. Never set from Python; what the API shows is still `adapter.name`.
    name = models.CharField(max_length=128, editable=False, db_default="")

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
        # Every filter of the version list, each followed by the keyset order (BENCHMARKS.md, scale).
        indexes = [
            models.Index(fields=["digest"]),
            keyset_index(name="adapter_version_keyset"),
            keyset_index("adapter", name="adapter_version_adapter_keyset"),
            keyset_index("namespace", name="adapter_version_ns_keyset"),
            keyset_index("parent", name="adapter_version_parent_keyset"),  # children, oldest first
            keyset_index("base_version", name="adapter_version_base_keyset"),
            keyset_index("status", name="adapter_version_status_keyset"),
            keyset_index("peft_type", name="adapter_version_peft_keyset"),
            keyset_index("r", name="adapter_version_r_keyset"),
            keyset_index("created_by", name="adapter_version_creator_keyset"),
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
