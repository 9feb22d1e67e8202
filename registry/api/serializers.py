from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.api.schema import NameField, RefField, TextField
from registry.errors import InvalidArtifact, RegistryError
from registry.formats.strict_json import load_json
from registry.models import AdapterVersion, BaseModelVersion, Check, EvaluationSuite, Job, Status, Worker
from registry.selectors import ADAPTER_METADATA_FIELDS, BASE_METADATA_FIELDS

_KEPT: dict[type, serializers.BaseSerializer] = {}


def represent(serializer_class: type[serializers.BaseSerializer], instance) -> dict:
    """`serializer_class(instance).data`, rendered by one serializer per class kept for the process.

    Building a ModelSerializer's fields (a deep copy of every declared one, the model's metadata
    read for the rest) took 2 ms of a push's response, rendering the version with them 0.5 ms.
    For the version serializers, which read no context (no request): their fields keep no state
    between calls, so threads may share them."""
    serializer = _KEPT.get(serializer_class)
    if serializer is None:
        serializer = _KEPT.setdefault(serializer_class, serializer_class())
    return serializer.to_representation(instance)


class FileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


# Fields every version representation starts with, base model or adapter.
VERSION_IDENTITY_FIELDS = [
    "id",
    "ref",
    "digest_ref",
    "namespace",
    "name",
    "number",
    "digest",
    "status",
    "status_reason",
]


class BaseVersionSerializer(serializers.ModelSerializer):
    ref = serializers.CharField(read_only=True)
    digest_ref = serializers.CharField(read_only=True)
    namespace = serializers.CharField(source="base_model.namespace")
    name = serializers.CharField(source="base_model.name")
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)

    class Meta:
        model = BaseModelVersion
        fields = VERSION_IDENTITY_FIELDS + [
            *BASE_METADATA_FIELDS,
            "created_at",
            "created_by",
        ]


class ModelCardSerializer(serializers.Serializer):
    """The README.md front matter read at ingest (registry/formats/model_card.py)."""

    base_model = serializers.ListField(child=serializers.CharField())
    base_model_relation = serializers.CharField(allow_null=True)
    license = serializers.CharField(allow_null=True)
    datasets = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField())
    library_name = serializers.CharField(allow_null=True)


class ModelCardFieldsMixin(serializers.Serializer):
    card = serializers.SerializerMethodField()
    card_warnings = serializers.SerializerMethodField()

    @extend_schema_field(ModelCardSerializer(allow_null=True))
    def get_card(self, version) -> dict | None:
        if version.card is None:
            return None
        fields = version.card.get("fields", {})
        return {
            key: fields.get(key, [] if isinstance(value, serializers.ListField) else None)
            for key, value in ModelCardSerializer().fields.items()
        }

    def get_card_warnings(self, version) -> list[str]:
        return list((version.card or {}).get("warnings", []))


class BaseVersionDetailSerializer(ModelCardFieldsMixin, BaseVersionSerializer):
    files = FileSerializer(many=True)
    adapter_count = serializers.IntegerField(read_only=True)

    class Meta(BaseVersionSerializer.Meta):
        fields = BaseVersionSerializer.Meta.fields + ["config", "files", "adapter_count", "card", "card_warnings"]


class VersionLinkSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    ref = serializers.CharField()
    digest = serializers.CharField()


class ProvenanceSerializer(serializers.Serializer):
    mlflow_run_id = serializers.CharField()
    mlflow_run_uri = serializers.CharField()
    dataset_name = serializers.CharField()
    dataset_digest = serializers.CharField()
    code_commit = serializers.CharField()
    params = serializers.JSONField(source="training_params")


class AdapterVersionSerializer(serializers.ModelSerializer):
    ref = serializers.CharField(read_only=True)
    digest_ref = serializers.CharField(read_only=True)
    namespace = serializers.CharField(source="adapter.namespace")
    name = serializers.CharField(source="adapter.name")
    base = VersionLinkSerializer(source="base_version")
    parent = VersionLinkSerializer(allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    signed = serializers.SerializerMethodField(
        help_text="a signature other than the registry's counter-signature verified when last checked"
    )

    class Meta:
        model = AdapterVersion
        fields = VERSION_IDENTITY_FIELDS + [
            "base",
            "parent",
            *ADAPTER_METADATA_FIELDS,
            "signed",
            "created_at",
            "created_by",
        ]

    def get_signed(self, version) -> bool:
        known = getattr(version, "pusher_signature_passed", None)  # a version its push just made
        if known is not None:
            return known
        return version.signatures.filter(is_registry=False, result="passed").exists()


class AdapterVersionDetailSerializer(ModelCardFieldsMixin, AdapterVersionSerializer):
    files = FileSerializer(many=True)
    provenance = ProvenanceSerializer(source="*")

    class Meta(AdapterVersionSerializer.Meta):
        fields = AdapterVersionSerializer.Meta.fields + ["provenance", "config", "files", "card", "card_warnings"]


class LineageNodeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    ref = serializers.CharField()
    digest = serializers.CharField()
    status = serializers.CharField()


class LineageEdgeSerializer(serializers.Serializer):
    source = serializers.CharField(source="from")
    target = serializers.CharField(source="to")
    kind = serializers.CharField()


class LineageSerializer(serializers.Serializer):
    root = serializers.UUIDField()
    nodes = LineageNodeSerializer(many=True)
    edges = LineageEdgeSerializer(many=True)


@extend_schema_field(OpenApiTypes.STR)
class _JSONObjectField(serializers.Field):
    """A JSON object sent as a multipart text field."""

    default_error_messages = {"invalid": "must be a JSON object"}

    def to_internal_value(self, data):
        if isinstance(data, dict):
            return data
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            # The shared bounded loader: too deep, 1e999, \u0000 keep their own codes (json_too_deep, ...).
            value = load_json(data, "provenance", storable=True, prefix="provenance")
        except InvalidArtifact as exc:
            if exc.code != "json_invalid":
                raise
            self.fail("invalid")
        if not isinstance(value, dict):
            self.fail("invalid")
        return value

    def to_representation(self, value):
        return value


class BaseUploadSerializer(serializers.Serializer):
    name = NameField(max_length=300, help_text="namespace/name")
    file = serializers.ListField(
        child=serializers.FileField(), required=False, help_text="The files, each as a 'file' part"
    )


class AdapterUploadSerializer(BaseUploadSerializer):
    base = RefField(max_length=300, help_text="Reference to the base model version it was trained on")
    parent = RefField(max_length=300, required=False, allow_blank=True)
    provenance = _JSONObjectField(
        required=False,
        help_text="JSON: mlflow_run_id, mlflow_run_uri, dataset_name, dataset_digest, code_commit, params",
    )
    signature = serializers.FileField(
        required=False,
        help_text="An OpenSSF model-signing v1.0 bundle (model.sig) over exactly these files; "
        "verified against the namespace's signing policy before anything is stored",
    )


class EmptyIsInvalidMixin:
    """A typed query filter. DRF reads `?r=` as "not given"; the schema says an integer (or a time),
    so an empty value is refused like any other invalid one."""

    def get_value(self, dictionary):
        if dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


class QueryIntegerField(EmptyIsInvalidMixin, serializers.IntegerField):
    pass


class QueryDateTimeField(EmptyIsInvalidMixin, serializers.DateTimeField):
    pass


PAGINATION_PARAMETERS = ("cursor", "page_size")


class ListFilterSerializer(serializers.Serializer):
    """Query filters of a list. A parameter the list does not know is refused, never ignored:
    `?created_by=nobody` silently returning everything would mislead an auditor."""

    paginated = True

    def is_valid(self, *, raise_exception=False):
        allowed = sorted({*self.fields, *(PAGINATION_PARAMETERS if self.paginated else ())})
        unknown = sorted(set(self.initial_data) - set(allowed))
        if unknown:
            takes = f"this list takes {', '.join(allowed)}" if allowed else "this list takes no parameters"
            raise RegistryError(
                "unknown_filter",
                f"unknown query parameter {', '.join(unknown)}; {takes}",
                unknown=unknown,
                allowed=allowed,
            )
        return super().is_valid(raise_exception=raise_exception)


class NoFilterSerializer(ListFilterSerializer):
    paginated = False


class SuiteListFilterSerializer(ListFilterSerializer):
    namespace = TextField(required=False, allow_blank=True)
    name = TextField(required=False, allow_blank=True)


class CreatedFilterMixin(serializers.Serializer):
    created_by = TextField(required=False, allow_blank=True, help_text="username of who pushed it")
    created_after = QueryDateTimeField(required=False, help_text="pushed at or after (RFC 3339)")
    created_before = QueryDateTimeField(required=False, help_text="pushed before (RFC 3339)")


class AdapterListFilterSerializer(CreatedFilterMixin, ListFilterSerializer):
    namespace = TextField(required=False, allow_blank=True)
    name = TextField(required=False, allow_blank=True)
    base = RefField(required=False, allow_blank=True, help_text="Reference to a base model version")
    status = serializers.ChoiceField(choices=Status.choices, required=False, allow_blank=True)
    peft_type = TextField(required=False, allow_blank=True)
    r = QueryIntegerField(required=False, min_value=1)
    search = TextField(required=False, allow_blank=True)


class BaseAdaptersFilterSerializer(AdapterListFilterSerializer):
    """The adapter list's filters less `base`: the path names the base."""

    base = None


class BaseListFilterSerializer(CreatedFilterMixin, ListFilterSerializer):
    namespace = TextField(required=False, allow_blank=True)
    name = TextField(required=False, allow_blank=True)
    architecture = TextField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Status.choices, required=False, allow_blank=True)
    search = TextField(required=False, allow_blank=True)


# --- List rows: the same shapes as the serializers above, built from values() rows ---


def _link(row: dict, prefix: str, repository: str) -> dict | None:
    if row[f"{prefix}_id"] is None:
        return None
    full_name = f"{row[f'{prefix}__{repository}__namespace']}/{row[f'{prefix}__{repository}__name']}"
    return {
        "id": str(row[f"{prefix}_id"]),
        "ref": f"{full_name}:v{row[f'{prefix}__number']}",
        "digest": row[f"{prefix}__digest"],
    }


def _common_row(row: dict, repository: str) -> dict:
    full_name = f"{row[f'{repository}__namespace']}/{row[f'{repository}__name']}"
    return {
        "id": str(row["id"]),
        "ref": f"{full_name}:v{row['number']}",
        "digest_ref": f"{full_name}@sha256:{row['digest']}",
        "namespace": row[f"{repository}__namespace"],
        "name": row[f"{repository}__name"],
        "number": row["number"],
        "digest": row["digest"],
        "status": row["status"],
        "status_reason": row["status_reason"],
    }


def adapter_row_data(row: dict) -> dict:
    """AdapterVersionSerializer's output for a row of selectors.adapter_version_rows()."""
    data = _common_row(row, "adapter")
    data["base"] = _link(row, "base_version", "base_model")
    data["parent"] = _link(row, "parent", "adapter")
    for field in ADAPTER_METADATA_FIELDS:
        data[field] = row[field]
    data["signed"] = row["signed"]
    data["created_at"] = serializers.DateTimeField().to_representation(row["created_at"])
    data["created_by"] = row["created_by__username"]
    return data


def base_row_data(row: dict) -> dict:
    """BaseVersionSerializer's output for a row of selectors.base_version_rows()."""
    data = _common_row(row, "base_model")
    for field in BASE_METADATA_FIELDS:
        data[field] = row[field]
    data["created_at"] = serializers.DateTimeField().to_representation(row["created_at"])
    data["created_by"] = row["created_by__username"]
    return data


# --- Worker pool --------------------------------------------------------------------------


class WorkerSerializer(serializers.ModelSerializer):
    current_job = serializers.SerializerMethodField()

    class Meta:
        model = Worker
        fields = [
            "hostname",
            "state",
            "queues",
            "direct_queue",
            "device_type",
            "device_name",
            "device_memory_total",
            "device_memory_free",
            "host_memory_total",
            "host_memory_available",
            "library_versions",
            "resident",
            "started_at",
            "last_heartbeat_at",
            "current_job",
        ]

    def get_current_job(self, worker) -> str | None:
        running = getattr(worker, "running_jobs", None)
        return str(running[0].id) if running else None


class JobSerializer(serializers.ModelSerializer):
    adapter = serializers.CharField(source="adapter_version.ref")
    suite = serializers.CharField(source="suite.ref", default=None, allow_null=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True, help_text="null until it finishes")

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "state",
            "adapter",
            "suite",
            "queue",
            "attempts",
            "dispatched_at",
            "dispatch_attempts",
            "ran_on",
            "base_was_resident",
            "result",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]


class JobListFilterSerializer(ListFilterSerializer):
    state = serializers.ChoiceField(choices=Job.State.choices, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Job.Kind.choices, required=False, allow_blank=True)
    adapter = RefField(required=False, allow_blank=True, help_text="Reference to an adapter version")
    worker = TextField(required=False, allow_blank=True, help_text="hostname of the worker that ran it")
    older_than = QueryIntegerField(
        required=False, min_value=0, max_value=10**9, help_text="only jobs created more than this many seconds ago"
    )


class JobCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, max_length=2000, default="cancelled by an operator", help_text="recorded on the job"
    )


class CheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = Check
        fields = ["kind", "verdict", "reasons", "details", "job", "created_at"]


class AdapterChecksSerializer(serializers.Serializer):
    ref = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField()
    checks = CheckSerializer(many=True)
    jobs = JobSerializer(many=True)
    pending = serializers.IntegerField(help_text="jobs queued or running")


class SuiteSerializer(serializers.ModelSerializer):
    ref = serializers.CharField(read_only=True)

    class Meta:
        model = EvaluationSuite
        fields = ["id", "ref", "namespace", "name", "number", "digest", "task_type", "example_count", "created_at"]


class SuiteUploadSerializer(serializers.Serializer):
    name = NameField(max_length=300, help_text="namespace/name")
    task_type = serializers.ChoiceField(choices=["causal_lm", "classification", "exact_match"])
    file = serializers.FileField(required=False, help_text="the JSONL file, as the 'file' part")


class SuiteAttachSerializer(serializers.Serializer):
    adapter = NameField(help_text="adapter name (namespace/name) whose new versions run this suite")


class EvaluateSerializer(serializers.Serializer):
    suite = RefField(help_text="suite reference (namespace/name[:vN])")
