"""Aliases and promotions over the API: what an alias serves (now or at a time), its history, promotion
requests and their approvals, rollback, canary steps, the "what was live when" inventory, and the
namespace promotion policies. Role checks live in registry/services/promotions.py."""

import csv
import io
from datetime import datetime
from types import SimpleNamespace

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api.pagination import VersionCursorPagination
from registry.api.schema import ALIAS_REGEX, REF_REGEX, NameField, RefField, error_responses
from registry.api.serializers import EmptyIsInvalidMixin, ListFilterSerializer, QueryDateTimeField
from registry.errors import NotFound, RegistryError
from registry.models import Adapter, AdapterAlias, AliasMove, PromotionRequest
from registry.refs import NAMESPACE_PATTERN, parse_name
from registry.selectors import alias_state_at
from registry.services import promotions

# --- Serializers -------------------------------------------------------------------------------


def _ref(version) -> str | None:
    return version.ref if version is not None else None


def alias_split(version, canary_version, canary_weight: int) -> list[dict]:
    """What serving reads: each version with its share of traffic, in percent."""
    if version is None:
        return []
    if canary_version is None:
        return [{"ref": version.ref, "digest_ref": version.digest_ref, "weight": 100}]
    return [
        {"ref": version.ref, "digest_ref": version.digest_ref, "weight": 100 - canary_weight},
        {"ref": canary_version.ref, "digest_ref": canary_version.digest_ref, "weight": canary_weight},
    ]


class AliasSerializer(serializers.Serializer):
    adapter = serializers.CharField()
    alias = serializers.CharField()
    version = serializers.CharField(allow_null=True, help_text="the primary version's ref; null: not set at `at`")
    canary = serializers.CharField(allow_null=True)
    canary_weight = serializers.IntegerField(help_text="percent of traffic for the canary")
    split = serializers.ListField(child=serializers.DictField(), help_text="ref, digest_ref and weight of each")
    at = serializers.DateTimeField(allow_null=True, help_text="the time asked about; null: now")
    moved_at = serializers.DateTimeField(allow_null=True, help_text="when the alias last moved before `at`")
    move = serializers.IntegerField(allow_null=True, help_text="the id of that move in the alias's history")


def alias_data(adapter: Adapter, alias: str, *, version, canary, weight, at, move) -> dict:
    return {
        "adapter": adapter.full_name,
        "alias": alias,
        "version": _ref(version),
        "canary": _ref(canary),
        "canary_weight": weight if canary is not None else 0,
        "split": alias_split(version, canary, weight),
        "at": at,
        "moved_at": move.moved_at if move is not None else None,
        "move": move.id if move is not None else None,
    }


class AliasMoveSerializer(serializers.ModelSerializer):
    adapter = serializers.CharField(source="adapter.full_name")
    from_version = serializers.SerializerMethodField()
    to_version = serializers.SerializerMethodField()
    from_canary = serializers.SerializerMethodField()
    canary = serializers.SerializerMethodField()
    moved_by = serializers.CharField(source="actor_name")
    request = serializers.UUIDField(source="request_id", allow_null=True)

    class Meta:
        model = AliasMove
        fields = [
            "id", "adapter", "alias", "kind", "from_version", "to_version", "from_canary", "from_canary_weight",
            "canary", "canary_weight", "moved_by", "moved_at", "reason", "request", "evidence",
        ]  # fmt: skip

    def get_from_version(self, move) -> str | None:
        return _ref(move.from_version)

    def get_to_version(self, move) -> str:
        return move.to_version.ref

    def get_from_canary(self, move) -> str | None:
        return _ref(move.from_canary_version)

    def get_canary(self, move) -> str | None:
        return _ref(move.canary_version)


class PromotionRequestSerializer(serializers.ModelSerializer):
    adapter = serializers.CharField(source="adapter.full_name")
    version = serializers.CharField(source="version.ref")
    digest_ref = serializers.CharField(source="version.digest_ref")
    expected_version = serializers.SerializerMethodField(help_text="what the alias served when requested")
    requested_by = serializers.CharField(source="requested_by_name")
    approvals = serializers.SerializerMethodField()
    override = serializers.SerializerMethodField()

    class Meta:
        model = PromotionRequest
        fields = [
            "id", "adapter", "alias", "kind", "version", "digest_ref", "canary_weight", "expected_version", "state",
            "requested_by", "reason", "approvals_required", "approvals", "gates", "gates_passed",
            "gates_evaluated_at", "override", "policy", "steps", "error_code", "error", "created_at", "decided_at",
            "started_at", "finished_at",
        ]  # fmt: skip

    def get_expected_version(self, request) -> str | None:
        return _ref(request.expected_version)

    def get_approvals(self, request) -> list[dict]:
        return [
            {"by": a.user_name, "decision": a.decision, "comment": a.comment, "at": a.created_at.isoformat()}
            for a in request.approvals.all()
        ]

    def get_override(self, request) -> dict | None:
        if not request.override_reason:
            return None
        return {"by": request.override_by_name, "reason": request.override_reason}


# Free text may hold anything but NUL, which PostgreSQL cannot store (the schema says so too).
TEXT = r"^[^\x00]+$"
OPTIONAL_TEXT = r"^[^\x00]*$"


def _text(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(TEXT, **kwargs)


def _optional_text(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        OPTIONAL_TEXT, max_length=4000, required=False, allow_blank=True, default="", **kwargs
    )


class PromotionCreateSerializer(serializers.Serializer):
    version = serializers.RegexField(REF_REGEX, help_text="the version to promote: any reference form")
    alias = serializers.RegexField(ALIAS_REGEX, help_text="e.g. staging, canary, production")
    reason = _text()
    canary_weight = serializers.IntegerField(
        required=False, min_value=1, max_value=99, help_text="start a canary taking this percent instead"
    )
    override_reason = _optional_text(help_text="admins: move despite failing gates, saying why")


class DecisionSerializer(serializers.Serializer):
    comment = _optional_text()
    reason = _optional_text(help_text="rejections need one (or a comment)")
    override_reason = _optional_text(help_text="admins: approve despite failing gates, saying why")


class RollbackSerializer(serializers.Serializer):
    reason = _text()
    to = RefField(required=False, help_text="a version the alias served before; default: the previous")


class CanarySerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["ramp", "promote", "abort"])
    weight = serializers.IntegerField(required=False, min_value=1, max_value=99)
    reason = _text()


@extend_schema_field({"type": "string", "pattern": ALIAS_REGEX})
class AliasField(serializers.RegexField):
    def __init__(self, **kwargs):
        super().__init__(ALIAS_REGEX, **kwargs)


class PromotionFilterSerializer(ListFilterSerializer):
    state = serializers.ChoiceField(choices=PromotionRequest.State.choices, required=False, allow_blank=True)
    adapter = NameField(required=False, allow_blank=True, help_text="namespace/name")
    alias = AliasField(required=False, allow_blank=True)


class QueryChoiceField(EmptyIsInvalidMixin, serializers.ChoiceField):
    pass


class QueryAliasField(EmptyIsInvalidMixin, AliasField):
    pass


class InventoryFilterSerializer(ListFilterSerializer):
    paginated = False
    alias = QueryAliasField(required=False, default="production")
    at = QueryDateTimeField(required=False, help_text="RFC 3339 (default: now)")
    format = QueryChoiceField(choices=["json", "csv"], required=False, default="json")


class AliasAtSerializer(ListFilterSerializer):
    paginated = False
    at = QueryDateTimeField(required=False, help_text="RFC 3339: what the alias pointed to then (default: now)")


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _promotions():
    return PromotionRequest.objects.select_related(
        "adapter", "version__adapter", "expected_version__adapter"
    ).prefetch_related("approvals")


def _promotion_get(request_id) -> PromotionRequest:
    found = _promotions().filter(id=request_id).first()
    if found is None:
        raise NotFound("promotion_not_found", f"no promotion request {request_id}")
    return found


def _alias(alias: str) -> str:
    promotions.alias_name_check(alias)
    return alias


def _adapter_get(name: str) -> Adapter:
    namespace, short = parse_name(name)
    adapter = Adapter.objects.filter(namespace=namespace, name=short).first()
    if adapter is None:
        raise NotFound("adapter_not_found", f"no adapter named {name!r}")
    return adapter


# --- Aliases -----------------------------------------------------------------------------------


class AliasListView(APIView):
    """Every alias of an adapter name with what it serves now (primary, canary and split)."""

    @extend_schema(responses={200: AliasSerializer(many=True), **error_responses(400, 404)})
    def get(self, request, name):
        adapter = _adapter_get(name)
        rows = AdapterAlias.objects.filter(adapter=adapter).select_related(
            "version__adapter", "canary_version__adapter"
        )
        data = [
            alias_data(
                adapter,
                row.name,
                version=row.version,
                canary=row.canary_version,
                weight=row.canary_weight,
                at=None,
                move=None,
            )  # fmt: skip
            for row in rows.order_by("name")
        ]
        return Response(data)


class AliasDetailView(APIView):
    """What an alias serves now, or served at `?at=` (exact at move boundaries: a move at T counts from T)."""

    @extend_schema(parameters=[AliasAtSerializer], responses={200: AliasSerializer, **error_responses(400, 404)})
    def get(self, request, name, alias):
        namespace, short = parse_name(name)
        alias = _alias(alias)
        at = _valid(AliasAtSerializer, request.query_params).get("at")
        state = alias_state_at(namespace, short, alias, at or timezone.now())
        if state is None:
            adapter = _adapter_get(name)  # 404 adapter_not_found when there is no such name
            if at is None:
                raise NotFound("alias_not_found", f"{adapter.full_name} has no alias {alias!r}")
            return Response(alias_data(adapter, alias, version=None, canary=None, weight=0, at=at, move=None))
        return Response(_alias_state_data(f"{namespace}/{short}", alias, state, at))


def _alias_state_data(full_name: str, alias: str, state, at) -> dict:
    """alias_data's answer from an AliasState: refs built from the name the request gave."""
    version = SimpleNamespace(ref=f"{full_name}:v{state.number}", digest_ref=f"{full_name}@sha256:{state.digest}")
    canary = None
    if state.canary_number is not None:
        canary = SimpleNamespace(
            ref=f"{full_name}:v{state.canary_number}", digest_ref=f"{full_name}@sha256:{state.canary_digest}"
        )
    move = SimpleNamespace(id=state.move_id, moved_at=state.moved_at)
    adapter = SimpleNamespace(full_name=full_name)
    return alias_data(adapter, alias, version=version, canary=canary, weight=state.canary_weight, at=at, move=move)


class MovePagination(VersionCursorPagination):
    ordering = ("-moved_at", "-id")


class AliasHistoryView(APIView):
    """Every move of an alias, newest first (cursor-paged)."""

    pagination_class = MovePagination

    @extend_schema(responses={200: AliasMoveSerializer(many=True), **error_responses(400, 404)})
    def get(self, request, name, alias):
        adapter, alias = _adapter_get(name), _alias(alias)
        moves = AliasMove.objects.filter(adapter=adapter, alias=alias).select_related(
            "adapter", "from_version__adapter", "to_version__adapter", "from_canary_version__adapter",
            "canary_version__adapter",
        )  # fmt: skip
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(moves, request, view=self)
        return paginator.get_paginated_response(AliasMoveSerializer(page, many=True).data)


class AliasRollbackView(APIView):
    """Point the alias back at its previous version (or `to`), at once (approver, admin)."""

    @extend_schema(request=RollbackSerializer, responses={200: AliasMoveSerializer, 202: PromotionRequestSerializer,
                                                          **error_responses(400, 403, 404, 409)})  # fmt: skip
    def post(self, request, name, alias):
        body = _valid(RollbackSerializer, request.data)
        adapter, alias = _adapter_get(name), _alias(alias)
        done = promotions.alias_rollback(
            adapter=adapter, alias=alias, user=request.user, reason=body["reason"], to_ref=body.get("to")
        )
        if done.request is not None:  # the policy wants approvals for rollbacks
            return Response(PromotionRequestSerializer(_promotion_get(done.request.id)).data, status=202)
        return Response(AliasMoveSerializer(done.move).data)


class AliasCanaryView(APIView):
    """Ramp the running canary, promote it to 100%, or abort it (approver, admin)."""

    @extend_schema(
        request=CanarySerializer, responses={200: AliasMoveSerializer, **error_responses(400, 403, 404, 409)}
    )
    def post(self, request, name, alias):
        body = _valid(CanarySerializer, request.data)
        adapter, alias = _adapter_get(name), _alias(alias)
        move = promotions.alias_canary(
            adapter=adapter, alias=alias, user=request.user, action=body["action"], reason=body["reason"],
            weight=body.get("weight"),
        )  # fmt: skip
        return Response(AliasMoveSerializer(move).data)


# --- Promotion requests ------------------------------------------------------------------------


class PromotionListView(APIView):
    """Promotion requests, newest first; `POST` asks for one (engineer, approver, admin)."""

    pagination_class = VersionCursorPagination
    required_scope = "promotion.request"  # what a scoped CI token needs to POST (registry/api/permissions.py)

    @extend_schema(
        parameters=[PromotionFilterSerializer],
        responses={200: PromotionRequestSerializer(many=True), **error_responses(400)},
    )
    def get(self, request):
        filters = _valid(PromotionFilterSerializer, request.query_params)
        rows = _promotions()
        if filters.get("state"):
            rows = rows.filter(state=filters["state"])
        if filters.get("adapter"):
            namespace, short = parse_name(filters["adapter"])
            rows = rows.filter(adapter__namespace=namespace, adapter__name=short)
        if filters.get("alias"):
            rows = rows.filter(alias=filters["alias"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(PromotionRequestSerializer(page, many=True).data)

    @extend_schema(
        request=PromotionCreateSerializer,
        responses={201: PromotionRequestSerializer, **error_responses(400, 403, 404, 409)},
    )
    def post(self, request):
        body = _valid(PromotionCreateSerializer, request.data)
        canary = body.get("canary_weight")
        created = promotions.promotion_request(
            version_ref=body["version"],
            alias=body["alias"],
            reason=body["reason"],
            user=request.user,
            kind=PromotionRequest.Kind.CANARY if canary else PromotionRequest.Kind.PROMOTE,
            canary_weight=canary or 0,
            override_reason=body.get("override_reason", ""),
        )
        return Response(PromotionRequestSerializer(_promotion_get(created.id)).data, status=status.HTTP_201_CREATED)


class PromotionDetailView(APIView):
    """A request: its gates, approvals and execution steps."""

    @extend_schema(responses={200: PromotionRequestSerializer, **error_responses(404)})
    def get(self, request, request_id):
        return Response(PromotionRequestSerializer(_promotion_get(request_id)).data)


class _DecisionView(APIView):
    action = ""

    @extend_schema(request=DecisionSerializer, responses={200: PromotionRequestSerializer,
                                                          **error_responses(400, 403, 404, 409, 422)})  # fmt: skip
    def post(self, request, request_id):
        body = _valid(DecisionSerializer, request.data)
        if self.action == "approve":
            promotions.promotion_approve(
                request_id=request_id, user=request.user, comment=body["comment"],
                override_reason=body["override_reason"],
            )  # fmt: skip
        elif self.action == "reject":
            promotions.promotion_reject(
                request_id=request_id, user=request.user, reason=body["reason"] or body["comment"]
            )
        else:
            promotions.promotion_cancel(
                request_id=request_id, user=request.user, reason=body["reason"] or body["comment"]
            )
        return Response(PromotionRequestSerializer(_promotion_get(request_id)).data)


class PromotionApproveView(_DecisionView):
    """Approve (approver, admin; never your own request). Gates are evaluated again and must pass."""

    action = "approve"


class PromotionRejectView(_DecisionView):
    """Reject with a reason (approver, admin)."""

    action = "reject"


class PromotionCancelView(_DecisionView):
    """Withdraw a request not yet executing (its requester, or an admin)."""

    action = "cancel"


# --- Inventory: what served an alias, across every name, at a time -------------------------------


INVENTORY_COLUMNS = ["adapter", "alias", "version", "digest_ref", "canary", "canary_weight", "moved_at", "moved_by"]


def inventory_rows(alias: str, at: datetime):
    """One row per adapter name whose `alias` was set at `at`: DISTINCT ON (adapter) over the moves,
    newest move at or before `at` first. Read as plain values, not model objects: at 10,000 names
    building the objects cost four times the query."""
    moves = (
        AliasMove.objects.filter(alias=alias, moved_at__lte=at)
        .order_by("adapter_id", "-moved_at", "-id")
        .distinct("adapter_id")
        .values_list(
            "adapter__namespace",
            "adapter__name",
            "to_version__number",
            "to_version__digest",
            "canary_version__number",
            "canary_weight",
            "moved_at",
            "actor_name",
        )  # fmt: skip
    )
    for namespace, name, number, digest, canary, weight, moved_at, moved_by in moves.iterator(chunk_size=2000):
        full_name = f"{namespace}/{name}"  # the canary is a version of the same name
        yield {
            "adapter": full_name,
            "alias": alias,
            "version": f"{full_name}:v{number}",
            "digest_ref": f"{full_name}@sha256:{digest}",
            "canary": f"{full_name}:v{canary}" if canary is not None else None,
            "canary_weight": weight,
            "moved_at": moved_at.isoformat(),
            "moved_by": moved_by,
        }


class InventoryView(APIView):
    """What every adapter name's alias (default production) served at a time (default now), as JSON or CSV."""

    permission_classes = [IsAuthenticated]

    def perform_content_negotiation(self, request, force=False):
        # `format=csv` picks this view's own CSV answer, not one of DRF's renderers.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[InventoryFilterSerializer],
        responses={200: OpenApiResponse(description="rows: " + ", ".join(INVENTORY_COLUMNS)), **error_responses(400)},
    )
    def get(self, request):
        filters = _valid(InventoryFilterSerializer, request.query_params)
        alias, answer = filters["alias"], filters["format"]
        at = filters.get("at") or timezone.now()
        rows = list(inventory_rows(alias, at))
        if answer == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=INVENTORY_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="inventory-{alias}.csv"'
            return response
        return Response({"alias": alias, "at": at.isoformat(), "count": len(rows), "rows": rows})


# --- Policies ----------------------------------------------------------------------------------


class PromotionPolicyView(APIView):
    """A namespace's promotion policy for one alias (`*`: its default); `PUT` replaces it (admin)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **error_responses(400)})
    def get(self, request, namespace, alias):
        namespace, alias = _policy_subject(namespace, alias)
        return Response(
            {"namespace": namespace, "alias": alias, "policy": promotions.promotion_policy_for(namespace, alias)}
        )

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, **error_responses(400, 403)})
    def put(self, request, namespace, alias):
        namespace, alias = _policy_subject(namespace, alias)
        row = promotions.promotion_policy_set(
            namespace=namespace, alias=alias, document=request.data, user=request.user
        )
        return Response({"namespace": namespace, "alias": alias, "policy": row.document})


def _policy_subject(namespace: str, alias: str) -> tuple[str, str]:
    if not NAMESPACE_PATTERN.match(namespace):
        raise RegistryError("namespace_invalid", f"{namespace[:80]!r} is not a namespace (letters, digits, . _ -)")
    return namespace, alias if alias == "*" else _alias(alias)
