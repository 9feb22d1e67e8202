"""Residency plans over the API: the latest plan, one worker's desired state (or the calls its engine
needs), routing hints, and an admin's manual re-plan. Plans are written only by
registry/services/residency.py; these views read them (the re-plan view calls the service).

- GET  /api/v1/residency/plan[?full=1]              the latest plan, per worker counts (full: entries)
- GET  /api/v1/residency/workers/<name>/plan?format=desired|vllm|sglang[&dir=/srv/adapters]
- GET  /api/v1/residency/routes[?adapter=REF]       per adapter the workers holding it, in order
- POST /api/v1/residency/replan                     admins: plan now
"""

import posixpath

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import APISettings
from rest_framework.views import APIView

from registry.api.permissions import IsAdminRole
from registry.api.schema import RefField, error_responses
from registry.errors import NotFound, RegistryError
from registry.models import AdapterAlias, ResidencyPlan, ServingWorker, WorkerDesiredState
from registry.refs import parse_ref
from registry.residency.actions import DesiredStateError, compile_actions, held_from_desired
from registry.selectors import adapter_version_get
from registry.services.residency import MANUAL, residency_replan

TIERS = ("gpu", "host", "disk")
FORMATS = ("desired", "vllm", "sglang")
DIR_MAX_LENGTH = 1024


class InvalidQuery(RegistryError):
    status_code = 400


# --- Reads ---------------------------------------------------------------------------------------


def latest_plan() -> ResidencyPlan:
    plan = ResidencyPlan.objects.order_by("-created_at", "-id").first()
    if plan is None:
        raise NotFound(
            "residency_plan_not_found",
            "there is no residency plan yet: the periodic re-plan makes one once serving workers are registered, "
            "or an admin can POST /api/v1/residency/replan",
        )
    return plan


def serving_worker_get(name: str) -> ServingWorker:
    worker = ServingWorker.objects.filter(name=name).first()
    if worker is None:
        raise NotFound(
            "serving_worker_not_found",
            f"no serving worker is named {name[:100]!r}; GET /api/v1/residency/workers lists them",
        )
    return worker


def worker_state(worker: ServingWorker, *, before_plan: int | None = None) -> WorkerDesiredState | None:
    """The worker's newest desired state (or its newest in a plan older than `before_plan`)."""
    states = WorkerDesiredState.objects.filter(worker=worker).select_related("plan")
    if before_plan is not None:
        states = states.filter(plan_id__lt=before_plan)
    return states.order_by("-plan_id").first()


def _plan_data(plan: ResidencyPlan) -> dict:
    return {"id": plan.id, "created_at": plan.created_at, "trigger": plan.trigger}


def _counts(desired: dict) -> dict:
    return {tier: len(desired.get(tier, [])) for tier in (*TIERS, "evict")}


def _worker_row(state: WorkerDesiredState, full: bool) -> dict:
    worker, desired = state.worker, state.desired
    row = {
        "name": worker.name,
        "engine": worker.engine,
        "endpoint": worker.endpoint,
        "expected_gpu_hit_rate": state.expected_gpu_hit_rate,
        "expected_share": desired.get("expected_share"),
        "planned_load": desired.get("planned_load"),
        "changed": state.changed,
        "digest": state.digest,
        "counts": _counts(desired),
    }
    if full:
        row.update({tier: desired.get(tier, []) for tier in (*TIERS, "evict")})
    return row


# --- Serializers (the answers' shapes, for the schema) ----------------------------------------------


class PlanRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    trigger = serializers.CharField(help_text="periodic, manual, alias.promote, alias.canary_ramp, ...")


class EntrySerializer(serializers.Serializer):
    ref = serializers.CharField(help_text="the immutable ref, namespace/name@sha256:<hex>; the engine's lora_name")
    path = serializers.CharField(help_text="where the worker keeps it, relative to its adapter directory")
    bytes = serializers.IntegerField()
    rank = serializers.IntegerField(help_text="LoRA rank (0: unknown)")
    demand = serializers.FloatField(help_text="forecast requests per second")
    pinned = serializers.BooleanField(required=False, help_text="GPU entries: keep pinned (SGLang pinned=true)")


class CountsSerializer(serializers.Serializer):
    gpu = serializers.IntegerField()
    host = serializers.IntegerField()
    disk = serializers.IntegerField()
    evict = serializers.IntegerField()


class WorkerRowSerializer(serializers.Serializer):
    name = serializers.CharField()
    engine = serializers.CharField()
    endpoint = serializers.CharField()
    expected_gpu_hit_rate = serializers.FloatField(allow_null=True)
    expected_share = serializers.FloatField(allow_null=True, help_text="its share of the fleet's forecast requests")
    planned_load = serializers.FloatField(allow_null=True, help_text="forecast requests per second it serves from GPU")
    changed = serializers.BooleanField(help_text="its desired state differs from its previous plan's")
    digest = serializers.CharField(help_text="sha256 of what it must hold (tier, ref, pinning)")
    counts = CountsSerializer()
    gpu = EntrySerializer(many=True, required=False, help_text="with ?full=1")
    host = EntrySerializer(many=True, required=False)
    disk = EntrySerializer(many=True, required=False)
    evict = serializers.ListField(child=serializers.CharField(), required=False)


class PlanSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    trigger = serializers.CharField()
    candidates = serializers.IntegerField(help_text="adapter versions some alias serves on a served base")
    expected_gpu_hit_rate = serializers.FloatField(allow_null=True, help_text="demand-weighted, fleet-wide")
    plan_seconds = serializers.FloatField(allow_null=True)
    summary = serializers.DictField()
    workers = WorkerRowSerializer(many=True)


class DesiredStateSerializer(serializers.Serializer):
    worker = serializers.CharField()
    engine = serializers.CharField()
    format = serializers.CharField()
    plan = PlanRefSerializer()
    digest = serializers.CharField()
    changed = serializers.BooleanField()
    expected_gpu_hit_rate = serializers.FloatField(allow_null=True)
    expected_share = serializers.FloatField(allow_null=True)
    gpu = EntrySerializer(many=True, help_text="load and keep on the GPU, hottest first")
    host = EntrySerializer(many=True, help_text="keep warm in host memory (vLLM: loaded; SGLang: loaded unpinned)")
    disk = EntrySerializer(many=True, help_text="prefetch to local disk only")
    evict = serializers.ListField(child=serializers.CharField(), help_text="refs the previous plan held, now dropped")


class ActionSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=["load", "unload"])
    ref = serializers.CharField()
    method = serializers.CharField()
    path = serializers.CharField(help_text="the engine's endpoint, e.g. /v1/load_lora_adapter")
    body = serializers.DictField(help_text="the JSON body to POST")
    why = serializers.CharField(help_text="gpu, host, evict, pin or unpin")


class ActionsSerializer(serializers.Serializer):
    worker = serializers.CharField()
    engine = serializers.CharField()
    format = serializers.CharField()
    plan = PlanRefSerializer()
    previous_plan = serializers.IntegerField(allow_null=True, help_text="the plan compiled against; null: none")
    directory = serializers.CharField(help_text="prefix of each lora_path (?dir=); empty: paths stay relative")
    actions = ActionSerializer(many=True)


class HolderSerializer(serializers.Serializer):
    name = serializers.CharField()
    tier = serializers.CharField()
    endpoint = serializers.CharField()


class RouteSerializer(serializers.Serializer):
    adapter = serializers.CharField(help_text="the immutable ref")
    workers = HolderSerializer(many=True, help_text="GPU holders by planned load (least first), then host, then disk")


class RoutesSerializer(serializers.Serializer):
    plan = PlanRefSerializer()
    routes = RouteSerializer(many=True)


class PlanQuerySerializer(serializers.Serializer):
    full = serializers.BooleanField(required=False, default=False, help_text="include every worker's entries")


class WorkerPlanQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, required=False, default="desired")
    dir = serializers.CharField(
        required=False, max_length=DIR_MAX_LENGTH, help_text="vllm/sglang: an absolute directory to prefix lora_path"
    )


class RoutesQuerySerializer(serializers.Serializer):
    adapter = RefField(required=False, help_text="only this adapter (an alias ref: its primary and its canary)")


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _directory(value: str | None) -> str:
    """?dir=: an absolute POSIX directory without `..`, control characters or a trailing slash."""
    if not value:
        return ""
    parts = value.split("/")
    if not value.startswith("/") or ".." in parts or any(ord(c) < 32 for c in value) or "\\" in value:
        raise InvalidQuery(
            "invalid_dir", f"dir {value[:100]!r} must be an absolute directory without '..', e.g. /srv/adapters"
        )
    return posixpath.normpath(value)


# --- Views -----------------------------------------------------------------------------------------


class ResidencyPlanView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[PlanQuerySerializer], responses={200: PlanSerializer, **error_responses(400, 404)})
    def get(self, request):
        full = _valid(PlanQuerySerializer, request.query_params)["full"]
        return Response(PlanSerializer(_plan_summary(latest_plan(), full)).data)


def _plan_summary(plan: ResidencyPlan, full: bool) -> dict:
    states = plan.worker_states.select_related("worker").order_by("worker__name")
    return {
        **_plan_data(plan),
        "candidates": plan.candidates,
        "expected_gpu_hit_rate": plan.expected_gpu_hit_rate,
        "plan_seconds": plan.plan_seconds,
        "summary": plan.summary,
        "workers": [_worker_row(state, full) for state in states],
    }


class EngineFormatNegotiation(DefaultContentNegotiation):
    """Here ?format= names the engine whose calls to answer (the issue's API), not one of DRF's
    renderers, so DRF's URL format override is off for this view: the answer is always JSON."""

    settings = APISettings(user_settings={"URL_FORMAT_OVERRIDE": None})


class WorkerPlanView(APIView):
    permission_classes = [IsAuthenticated]
    content_negotiation_class = EngineFormatNegotiation

    @extend_schema(
        parameters=[WorkerPlanQuerySerializer],
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 404)},
        description="format=desired answers a DesiredState; vllm and sglang answer the Actions that take the "
        "worker's engine from its previous plan to this one (unloads first, then loads, hottest first).",
    )
    def get(self, request, name):
        query = _valid(WorkerPlanQuerySerializer, request.query_params)
        directory = _directory(query.get("dir"))
        worker = serving_worker_get(name)
        state = worker_state(worker)
        if state is None:
            raise NotFound(
                "residency_plan_not_found",
                f"no residency plan includes worker {worker.name} yet; it is planned at the next re-plan",
            )
        if query["format"] == "desired":
            return Response(DesiredStateSerializer(_desired_data(worker, state)).data)
        return Response(ActionsSerializer(_actions_data(worker, state, query["format"], directory)).data)


def _desired_data(worker: ServingWorker, state: WorkerDesiredState) -> dict:
    desired = state.desired
    return {
        "worker": worker.name,
        "engine": worker.engine,
        "format": "desired",
        "plan": _plan_data(state.plan),
        "digest": state.digest,
        "changed": state.changed,
        "expected_gpu_hit_rate": state.expected_gpu_hit_rate,
        "expected_share": desired.get("expected_share"),
        **{tier: desired.get(tier, []) for tier in (*TIERS, "evict")},
    }


def _actions_data(worker: ServingWorker, state: WorkerDesiredState, engine: str, directory: str) -> dict:
    previous = worker_state(worker, before_plan=state.plan_id)
    held = held_from_desired(previous.desired if previous is not None else None, directory)
    try:
        actions = compile_actions(engine, state.desired, held, directory=directory)
    except DesiredStateError as exc:  # a stored plan is ours; this would be a bug, said plainly
        raise RegistryError("invalid_desired_state", str(exc), status_code=409) from None
    return {
        "worker": worker.name,
        "engine": worker.engine,
        "format": engine,
        "plan": _plan_data(state.plan),
        "previous_plan": previous.plan_id if previous is not None else None,
        "directory": directory,
        "actions": [action.as_dict() for action in actions],
    }


class ResidencyRoutesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[RoutesQuerySerializer], responses={200: RoutesSerializer, **error_responses(400, 404)})
    def get(self, request):
        wanted = _route_refs(_valid(RoutesQuerySerializer, request.query_params).get("adapter"))
        plan = latest_plan()
        holders = _holders(plan.worker_states.select_related("worker"))
        refs = sorted(holders) if wanted is None else wanted
        routes = [{"adapter": ref, "workers": holders.get(ref, [])} for ref in refs]
        return Response(RoutesSerializer({"plan": _plan_data(plan), "routes": routes}).data)


def _route_refs(adapter: str | None) -> list[str] | None:
    """The immutable refs ?adapter= names: the version; for an alias, its primary and its canary."""
    if not adapter:
        return None
    version = adapter_version_get(adapter)
    refs = [version.digest_ref]
    alias_name = parse_ref(adapter).alias
    if alias_name:
        row = AdapterAlias.objects.filter(adapter=version.adapter, name=alias_name).select_related(
            "canary_version__adapter"
        )
        canary = row[0].canary_version if row else None
        if canary is not None:
            refs.append(canary.digest_ref)
    return refs


def _holders(states) -> dict:
    """ref -> workers holding it: GPU holders by planned load (least first), then host, then disk holders."""
    states = sorted(states, key=lambda s: s.worker.name)
    by_load = sorted(states, key=lambda s: (s.desired.get("planned_load") or 0.0, s.worker.name))
    holders: dict = {}
    for tier in TIERS:
        for state in by_load if tier == "gpu" else states:
            for entry in state.desired.get(tier, []):
                names = holders.setdefault(entry["ref"], [])
                if all(held["name"] != state.worker.name for held in names):
                    names.append({"name": state.worker.name, "tier": tier, "endpoint": state.worker.endpoint})
    return holders


class ResidencyReplanView(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(request=None, responses={201: PlanSerializer, **error_responses(403)})
    def post(self, request):
        plan = residency_replan(trigger=MANUAL)  # always stored, even for an empty fleet
        return Response(PlanSerializer(_plan_summary(plan, False)).data, status=status.HTTP_201_CREATED)
