"""/api/v1/residency/workers, /api/v1/residency/pins and /api/v1/telemetry: the serving fleet and its traffic.

- workers: anyone signed in reads; a global admin registers (POST), replaces (PUT), changes (PATCH)
  and removes (DELETE) serving workers. Bases are given as references (any form).
- pins: anyone signed in reads; a global admin pins an exact version or an alias, on one worker or
  on every worker serving its base, and removes pins.
- telemetry: a serving fleet POSTs batches of windows with a token carrying the `telemetry` scope
  (made by a global admin), or an admin in person; anyone signed in reads them in cursor pages.

Rules and refusal codes live in registry/services/serving_fleet.py and registry/services/telemetry.py.
"""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import roles
from registry.api.pagination import VersionCursorPagination
from registry.api.permissions import SignedInReadsRoleWrites
from registry.api.schema import RefField, TextField, error_responses
from registry.api.serializers import EmptyIsInvalidMixin, ListFilterSerializer, NoFilterSerializer, QueryDateTimeField
from registry.models import ResidencyPin, ServingWorker, TelemetryWindow
from registry.models.residency import SERVING_WORKER_NAME
from registry.selectors import adapter_version_get
from registry.services import serving_fleet, telemetry

WORKER_NAME_SCHEMA = {"type": "string", "pattern": f"^{SERVING_WORKER_NAME}$", "description": "a serving worker"}


class FleetAdminOrReadOnly(SignedInReadsRoleWrites):
    """Writes need the global admin role in person (never a scoped token)."""

    message = "changing the serving fleet needs the global admin role"

    def may_write(self, user) -> bool:
        return roles.is_admin(user)


class TelemetryPosterOrReadOnly(SignedInReadsRoleWrites):
    """Posting needs a global admin or a token with the telemetry scope."""

    message = "posting telemetry needs the global admin role (or a token with the telemetry scope made by an admin)"

    def may_write(self, user) -> bool:
        return roles.can_post_telemetry(user)


class LabelsField(serializers.JSONField):
    """A flat object of string labels; checked by the model (serving_worker_labels_invalid)."""


@extend_schema_field(WORKER_NAME_SCHEMA)
class WorkerNameField(serializers.CharField):
    pass


# Query filters: DRF reads `?worker=` as "not given"; the schema says a non-empty value, so an empty
# one is refused like any other invalid one (registry/api/serializers.py EmptyIsInvalidMixin).
class QueryTextField(EmptyIsInvalidMixin, TextField):
    pass


class QueryRefField(EmptyIsInvalidMixin, RefField):
    pass


class QueryChoiceField(EmptyIsInvalidMixin, serializers.ChoiceField):
    pass


# --- Serving workers -------------------------------------------------------------------------


class ServingWorkerSerializer(serializers.ModelSerializer):
    base_versions = serializers.SerializerMethodField(help_text="the bases it serves, as ns/name@sha256:<hex>")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    labels = LabelsField()

    class Meta:
        model = ServingWorker
        fields = ["name", "engine", "endpoint", "base_versions", "gpu_slots", "gpu_bytes", "max_rank", "host_slots",
                  "host_bytes", "disk_bytes", "labels", "created_by", "created_at", "updated_at", "last_seen_at"]  # fmt: skip

    def get_base_versions(self, worker) -> list[str]:
        return sorted(base.digest_ref for base in worker.base_versions.all())


class ServingWorkerWriteSerializer(serializers.Serializer):
    """Types only: values are checked by the service, so each refusal has its own code."""

    name = WorkerNameField(max_length=200, help_text="1-63 lowercase letters, digits or . _ -; the worker's identity")
    engine = serializers.CharField(max_length=200, help_text="vllm, sglang or other")
    endpoint = serializers.CharField(max_length=512, help_text="the engine's base URL, http:// or https://")
    base_versions = serializers.ListField(
        child=RefField(max_length=300), max_length=100, help_text="references to the base model versions it serves"
    )
    gpu_slots = serializers.IntegerField(required=False, allow_null=True, help_text="adapters on the GPU (max_loras)")
    gpu_bytes = serializers.IntegerField(required=False, allow_null=True, help_text="GPU bytes for adapters")
    max_rank = serializers.IntegerField(required=False, allow_null=True, help_text="the largest LoRA rank it loads")
    host_slots = serializers.IntegerField(required=False, allow_null=True, help_text="adapters in host memory")
    host_bytes = serializers.IntegerField(required=False, allow_null=True, help_text="host memory for adapters")
    disk_bytes = serializers.IntegerField(required=False, allow_null=True, help_text="local disk for prefetched files")
    labels = LabelsField(required=False, help_text="string labels, e.g. zone or GPU type")


class ServingWorkerUpdateSerializer(ServingWorkerWriteSerializer):
    name = None  # the worker's name is in the path and never changes


def _worker_fields(data: dict) -> tuple[list[str], dict]:
    fields = dict(data)
    fields.pop("name", None)
    return fields.pop("base_versions", None), fields


def _valid(serializer_class, data, **options) -> dict:
    form = serializer_class(data=data, **options)
    form.is_valid(raise_exception=True)
    return form.validated_data


WORKER_ERRORS = (
    "Errors: serving_worker_name_invalid, serving_worker_engine_invalid, serving_worker_endpoint_invalid, "
    "serving_worker_capacity_invalid (no GPU slots or bytes, or a value out of range), "
    "serving_worker_labels_invalid, serving_worker_bases_required, base_not_found, serving_worker_exists (409)."
)


class ServingWorkerListView(APIView):
    """Serving workers by name; POST registers one (global admin)."""

    permission_classes = [FleetAdminOrReadOnly]
    parser_classes = [JSONParser]

    @extend_schema(responses={200: ServingWorkerSerializer(many=True), **error_responses(400)})
    def get(self, request):
        NoFilterSerializer(data=request.query_params).is_valid(raise_exception=True)
        workers = ServingWorker.objects.select_related("created_by").prefetch_related("base_versions__base_model")
        return Response(ServingWorkerSerializer(workers, many=True).data)

    @extend_schema(
        request=ServingWorkerWriteSerializer,
        responses={201: ServingWorkerSerializer, **error_responses(400, 403, 404, 409)},
        description=WORKER_ERRORS,
    )
    def post(self, request):
        data = _valid(ServingWorkerWriteSerializer, request.data)
        base_refs, fields = _worker_fields(data)
        worker = serving_fleet.serving_worker_register(by=request.user, name=data["name"], base_refs=base_refs,
                                                       **fields)  # fmt: skip
        return Response(ServingWorkerSerializer(worker).data, status=status.HTTP_201_CREATED)


class ServingWorkerDetailView(APIView):
    """One serving worker: read it; PUT replaces its description, PATCH changes some fields; DELETE removes it
    with its telemetry, pins and planned states (global admin)."""

    permission_classes = [FleetAdminOrReadOnly]
    parser_classes = [JSONParser]

    @extend_schema(responses={200: ServingWorkerSerializer, **error_responses(404)})
    def get(self, request, name):
        return Response(ServingWorkerSerializer(serving_fleet.serving_worker_get(name)).data)

    @extend_schema(
        request=ServingWorkerUpdateSerializer,
        responses={200: ServingWorkerSerializer, **error_responses(400, 403, 404)},
        description="Replaces every field: one left out is cleared (labels: emptied). " + WORKER_ERRORS,
    )
    def put(self, request, name):
        worker = serving_fleet.serving_worker_get(name)
        base_refs, fields = _worker_fields(_valid(ServingWorkerUpdateSerializer, request.data))
        cleared = {field: None for field in serving_fleet.WORKER_FIELDS} | {"labels": {}}
        return self._update(request, worker, {**cleared, **fields, "base_refs": base_refs})

    @extend_schema(
        request=ServingWorkerUpdateSerializer(partial=True),
        responses={200: ServingWorkerSerializer, **error_responses(400, 403, 404)},
        description="Changes the fields given. " + WORKER_ERRORS,
    )
    def patch(self, request, name):
        worker = serving_fleet.serving_worker_get(name)
        base_refs, fields = _worker_fields(_valid(ServingWorkerUpdateSerializer, request.data, partial=True))
        if base_refs is not None:
            fields["base_refs"] = base_refs
        return self._update(request, worker, fields)

    def _update(self, request, worker, changes) -> Response:
        worker = serving_fleet.serving_worker_update(by=request.user, worker=worker, changes=changes)
        return Response(ServingWorkerSerializer(worker).data)

    @extend_schema(responses={204: None, **error_responses(403, 404)})
    def delete(self, request, name):
        serving_fleet.serving_worker_remove(by=request.user, worker=serving_fleet.serving_worker_get(name))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Pins --------------------------------------------------------------------------------------


class ResidencyPinSerializer(serializers.ModelSerializer):
    target = serializers.CharField(help_text="ns/name@sha256:<hex> (one version) or ns/name:<alias> (follows it)")
    adapter_version = serializers.UUIDField(source="adapter_version_id", allow_null=True, read_only=True)
    worker = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True, help_text="null: every worker serving its base"
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ResidencyPin
        fields = ["id", "target", "adapter_version", "alias", "worker", "reason", "created_by", "created_at"]


class ResidencyPinCreateSerializer(serializers.Serializer):
    target = RefField(max_length=300, help_text="an exact version (…@sha256:<hex>, :vN, UUID) or ns/name:<alias>")
    worker = WorkerNameField(required=False, allow_null=True, max_length=200, help_text="leave out: every worker")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class PinFilterSerializer(ListFilterSerializer):
    paginated = False
    worker = QueryTextField(required=False, help_text="pins on this worker (pins for every worker included)")


def _pins():
    return ResidencyPin.objects.select_related("adapter", "adapter_version__adapter", "worker", "created_by")


class ResidencyPinListView(APIView):
    """Residency pins, oldest first; POST adds one (global admin)."""

    permission_classes = [FleetAdminOrReadOnly]
    parser_classes = [JSONParser]

    @extend_schema(parameters=[PinFilterSerializer], responses={200: ResidencyPinSerializer(many=True),
                                                                **error_responses(400, 404)})  # fmt: skip
    def get(self, request):
        filters = _valid(PinFilterSerializer, request.query_params)
        pins = _pins()
        if filters.get("worker"):
            worker = serving_fleet.serving_worker_get(filters["worker"])
            pins = pins.filter(worker__isnull=True) | pins.filter(worker=worker)
        return Response(ResidencyPinSerializer(pins, many=True).data)

    @extend_schema(
        request=ResidencyPinCreateSerializer,
        responses={201: ResidencyPinSerializer, **error_responses(400, 403, 404, 409)},
        description="Errors: invalid_ref, pin_target_invalid (not one version nor an alias), adapter_not_found, "
        "alias_not_found, serving_worker_not_found, pin_base_not_served, pin_exists (409).",
    )
    def post(self, request):
        data = _valid(ResidencyPinCreateSerializer, request.data)
        pin = serving_fleet.residency_pin_add(
            by=request.user, target=data["target"], worker_name=data.get("worker"), reason=data["reason"]
        )
        return Response(ResidencyPinSerializer(_pins().get(pk=pin.pk)).data, status=status.HTTP_201_CREATED)


class ResidencyPinDetailView(APIView):
    permission_classes = [FleetAdminOrReadOnly]

    @extend_schema(responses={200: ResidencyPinSerializer, **error_responses(404)})
    def get(self, request, pin_id):
        return Response(ResidencyPinSerializer(serving_fleet.residency_pin_get(pin_id)).data)

    @extend_schema(responses={204: None, **error_responses(403, 404)})
    def delete(self, request, pin_id):
        serving_fleet.residency_pin_remove(by=request.user, pin=serving_fleet.residency_pin_get(pin_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Telemetry ---------------------------------------------------------------------------------


class TelemetryWindowInSerializer(serializers.Serializer):
    """One window as posted (documentation: rows are checked by registry/services/telemetry.py, fast)."""

    adapter = serializers.CharField(help_text="the adapter version, ns/name@sha256:<hex> (or its UUID)")
    start = serializers.DateTimeField(help_text="RFC 3339, with a time zone")
    end = serializers.DateTimeField(help_text="after start, at most TELEMETRY_MAX_WINDOW_SECONDS later")
    requests = serializers.IntegerField(min_value=0)
    cold_loads = serializers.IntegerField(min_value=0, required=False, default=0)
    ttft_p50_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)
    ttft_p99_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)


class TelemetryBatchSerializer(serializers.Serializer):
    worker = WorkerNameField(max_length=200)
    windows = TelemetryWindowInSerializer(many=True, min_length=1, max_length=telemetry.MAX_BATCH_ROWS)


class TelemetryIngestedSerializer(serializers.Serializer):
    worker = serializers.CharField()
    accepted = serializers.IntegerField(help_text="windows stored (inserted + replaced)")
    inserted = serializers.IntegerField(help_text="windows new to the registry")
    replaced = serializers.IntegerField(help_text="windows sent before: their values replaced, never added")


class TelemetryWindowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    worker = serializers.CharField(source="worker_name")
    adapter = serializers.CharField(source="adapter_ref", help_text="ns/name@sha256:<hex>")
    start = serializers.DateTimeField(source="window_start")
    end = serializers.DateTimeField(source="window_end")
    requests = serializers.IntegerField()
    cold_loads = serializers.IntegerField()
    ttft_p50_ms = serializers.FloatField(allow_null=True)
    ttft_p99_ms = serializers.FloatField(allow_null=True)
    resolution = serializers.ChoiceField(choices=TelemetryWindow.Resolution.choices)


class TelemetryFilterSerializer(ListFilterSerializer):
    worker = QueryTextField(required=False, help_text="one serving worker's windows")
    adapter = QueryRefField(required=False, help_text="one adapter version's windows (any reference form)")
    since = QueryDateTimeField(required=False, help_text="windows ending after this time (RFC 3339)")
    resolution = QueryChoiceField(choices=TelemetryWindow.Resolution.choices, required=False)


class TelemetryCursorPagination(VersionCursorPagination):
    """Oldest window end first, so a reader polling with the last cursor sees each new window once."""

    ordering = ("window_end", "id")
    page_size = 200
    max_page_size = 1000


TELEMETRY_ERRORS = (
    "All or nothing. 400 telemetry_rows_invalid lists each bad row in detail.errors as {index, code, message} "
    "(codes: row_invalid, adapter_ref_invalid, adapter_ref_mutable, adapter_not_found, start_invalid, end_invalid, "
    "window_order, window_too_long, window_too_old, window_in_future, requests_invalid, cold_loads_invalid, "
    "ttft_p50_ms_invalid, ttft_p99_ms_invalid, ttft_order, window_duplicate); also telemetry_empty, "
    "telemetry_batch_too_large, telemetry_worker_required, and 404 serving_worker_not_found. Re-sending a "
    "window replaces it. No audit event: telemetry is measurement, not a change of state."
)


class TelemetryView(APIView):
    """POST a batch of per-window counts for one serving worker; GET them back in cursor pages."""

    permission_classes = [TelemetryPosterOrReadOnly]
    parser_classes = [JSONParser]
    pagination_class = TelemetryCursorPagination
    required_scope = roles.SCOPE_TELEMETRY  # what a scoped token needs to POST (registry/api/permissions.py)

    @extend_schema(
        parameters=[TelemetryFilterSerializer],
        responses={200: TelemetryWindowSerializer(many=True), **error_responses(400, 404)},
    )
    def get(self, request):
        filters = _valid(TelemetryFilterSerializer, request.query_params)
        worker = serving_fleet.serving_worker_get(filters["worker"]) if filters.get("worker") else None
        version = adapter_version_get(filters["adapter"]) if filters.get("adapter") else None
        rows = telemetry.telemetry_windows(
            worker=worker, version=version, since=filters.get("since"), resolution=filters.get("resolution", "")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(TelemetryWindowSerializer(page, many=True).data)

    @extend_schema(
        request=TelemetryBatchSerializer,
        responses={200: TelemetryIngestedSerializer, **error_responses(400, 403, 404)},
        description=TELEMETRY_ERRORS,
    )
    def post(self, request):
        # Rows are checked by the service in one pass (a DRF serializer per row would cost more than
        # the insert at 10,000 rows); the body must at least be an object.
        body = request.data if isinstance(request.data, dict) else {}
        result = telemetry.telemetry_ingest(
            by=request.user, worker_name=body.get("worker"), windows=body.get("windows")
        )
        data = {"worker": result.worker.name, "accepted": result.accepted, "inserted": result.inserted,
                "replaced": result.replaced}  # fmt: skip
        return Response(data)
