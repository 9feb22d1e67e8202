"""Promotions in the browser: a version's aliases and its Promote action, promotion requests and
the approvals inbox, each name's alias timeline (rollback, canary steps), and the candidate beside
what an alias serves.

Every write calls the service the API calls (registry/services/promotions.py), so the role rules,
four eyes, gates and audit events are the same wherever a promotion is asked for. The role checks here only choose which buttons a page shows; a
refusal by a service is shown beside the form with its code, never as a 500. Every action that
moves an alias shows exactly what will change first: its form posts once to preview and once more,
with `confirm`, to do it.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import F, Prefetch, Q, Window
from django.db.models.functions import RowNumber
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from registry import roles
from registry.api.errors import record_denied_write
from registry.errors import RegistryError
from registry.metrics_display import LABELS, delta, direction, significant
from registry.models import (
    Adapter,
    AdapterAlias,
    AdapterVersion,
    AliasMove,
    Job,
    PromotionApproval,
    PromotionRequest,
)
from registry.selectors import adapter_version_get
from registry.services import promotions
from ui.signing import signing_context

State = PromotionRequest.State
PAGE_SIZE = 25
WAITING_SHOWN = 50
HISTORY_SIZE = 20
VERSIONS_OFFERED = 50
STANDARD_ALIASES = ("staging", "production")
POLLED_STATES = (State.APPROVED, State.EXECUTING)  # a worker is on it: the request page follows it
FINAL_STATES = (State.EXECUTED, State.FAILED, State.REJECTED, State.CANCELLED)


def _wants_fragment(request) -> bool:
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


# The services' rules (registry/roles.py, per namespace), to choose buttons. Without a namespace (a
# page about no one name): whether the user may do it in some namespace.
def can_request(user, namespace: str | None = None) -> bool:
    if namespace is not None:
        return roles.can_request_promotion(user, namespace)
    return bool(roles.roles_of(user) & roles.REQUESTERS or roles.namespaces_where(user, roles.REQUESTERS))


def can_decide(user, namespace: str | None = None) -> bool:
    if namespace is not None:
        return roles.can_decide_promotion(user, namespace)
    return bool(roles.roles_of(user) & roles.DECIDERS or roles.namespaces_where(user, roles.DECIDERS))


def _refused(request, error: RegistryError) -> RegistryError:
    """A service's refusal, shown on the page; a 403 is an access.denied event, as over the API."""
    if error.status_code == 403:
        record_denied_write(request, error.message)
    return error


# --- What an alias serves, as a person reads it -----------------------------------------------


@dataclass(frozen=True)
class Split:
    """What an alias serves: a primary version and, during a canary, a second one with its percent."""

    version: AdapterVersion | None
    canary: AdapterVersion | None = None
    canary_weight: int = 0

    @classmethod
    def of(cls, alias: AdapterAlias | None) -> "Split":
        if alias is None:
            return cls(None)
        return cls(alias.version, alias.canary_version, alias.canary_weight if alias.canary_version else 0)

    @property
    def parts(self) -> list[tuple[AdapterVersion, int]]:
        if self.version is None:
            return []
        if self.canary is None:
            return [(self.version, 100)]
        return [(self.version, 100 - self.canary_weight), (self.canary, self.canary_weight)]

    @property
    def text(self) -> str:
        """ "v3", "v3 90%, v5 10%", or "nothing"."""
        if self.version is None:
            return "nothing"
        if self.canary is None:
            return f"v{self.version.number}"
        return ", ".join(f"v{version.number} {weight}%" for version, weight in self.parts)


def change_text(adapter: Adapter, alias: str, before: Split, after: Split) -> str:
    """ "acme/bot:production: v3 → v5": the one line every confirmation shows."""
    return f"{adapter.full_name}:{alias}: {before.text} → {after.text}"


def _serving(adapter: Adapter, alias: str) -> AdapterAlias | None:
    return (
        AdapterAlias.objects.select_related("version__adapter", "canary_version__adapter")
        .filter(adapter=adapter, name=alias)
        .first()
    )


def _alias_names(names) -> list[str]:
    return sorted(set(names) | set(STANDARD_ALIASES))


# --- The version page's Aliases panel (ui/views.py adapter_detail) ---------------------------------


def version_aliases_context(version: AdapterVersion, user) -> dict:
    """Which aliases of this name serve this version (and with what weight), and the Promote form.

    One query for the name's aliases, one for the user's roles: the same count for any number of
    aliases (tests/ui/test_views.py counts the page's queries).
    """
    rows = list(
        AdapterAlias.objects.filter(adapter_id=version.adapter_id)
        .select_related("version", "canary_version")
        .order_by("name")
    )
    here = []
    for row in rows:
        split = Split.of(row)
        weight = sum(weight for served, weight in split.parts if served.id == version.id)
        if weight:
            here.append(
                {"name": row.name, "weight": weight, "split": split, "canary": row.canary_version_id == version.id}
            )
    return {
        "aliases_here": here,
        "can_promote": can_request(user, version.adapter.namespace),
        "alias_choices": _alias_names(row.name for row in rows),
    }


# --- Promote: preview, then request -----------------------------------------------------------------


@dataclass
class PromoteForm:
    """The Promote form as typed; `problem` is the first thing wrong with it, with the service's code."""

    version_ref: str
    alias_choice: str
    alias_custom: str
    reason: str
    canary_weight_text: str
    override_reason: str
    problem: RegistryError | None = None

    @classmethod
    def from_post(cls, data) -> "PromoteForm":
        return cls(
            version_ref=data.get("version", "").strip(),
            alias_choice=data.get("alias", "").strip(),
            alias_custom=data.get("alias_custom", "").strip(),
            reason=data.get("reason", "").strip(),
            canary_weight_text=data.get("canary_weight", "").strip(),
            override_reason=data.get("override_reason", "").strip(),
        )

    @property
    def alias(self) -> str:
        """A typed alias wins over the picked one: typing one is the clearer intent."""
        return self.alias_custom or self.alias_choice

    @property
    def canary_weight(self) -> int:
        return int(self.canary_weight_text) if self.canary_weight_text.isdigit() else 0

    def checked(self) -> "PromoteForm":
        """The same checks (and codes) as the service, so the preview never shows a request it would refuse."""
        try:
            if not self.alias:
                raise RegistryError("alias_required", "pick an alias, or type one")
            promotions.alias_name_check(self.alias)
            if not self.reason:
                raise RegistryError("reason_required", "say why: a promotion request needs a reason")
            if self.canary_weight_text and not 1 <= self.canary_weight <= 99:
                raise RegistryError("canary_weight_invalid", "a canary weight is a whole percent from 1 to 99")
        except RegistryError as problem:
            self.problem = problem
        return self


def _preview(version: AdapterVersion, form: PromoteForm, user) -> dict:
    """What the request would do: the change, the policy's approvals, the gates evaluated now, and
    what stands in the way (an open request for the alias, or nothing to change)."""
    adapter, alias = version.adapter, form.alias
    current = _serving(adapter, alias)
    before = Split.of(current)
    canary = bool(form.canary_weight)
    if canary:
        after = Split(before.version, version, form.canary_weight) if before.version else Split(None)
    else:
        after = Split(version)
    policy = promotions.promotion_policy_for(adapter.namespace, alias)
    gates = promotions.gates_evaluate(version, before.version, policy, user=user)
    blockers = []
    open_request = (
        PromotionRequest.objects.filter(adapter=adapter, alias=alias, state__in=PromotionRequest.OPEN_STATES)
        .select_related("version")
        .first()
    )
    if open_request is not None:
        blockers.append(("alias_conflict", f"{adapter.full_name}:{alias} already has an open request", open_request))
    if before.version is not None and before.version.id == version.id and before.canary is None:
        blockers.append(("alias_unchanged", f"{adapter.full_name}:{alias} already serves v{version.number}", None))
    if canary and before.version is None:
        blockers.append(
            ("canary_without_alias", f"{adapter.full_name}:{alias} serves nothing yet; promote first", None)
        )
    return {
        "change": change_text(adapter, alias, before, after),
        "before": before,
        "after": after,
        "kind": "canary" if canary else "promote",
        "policy": policy,
        "approvals": policy["approvals"],
        "gates": gate_rows(gates),
        "gates_passed": all(gate["passed"] for gate in gates),
        "blockers": blockers,
        "compare_url": compare_url(version, alias),
    }


def compare_url(version: AdapterVersion, alias: str) -> str:
    adapter = version.adapter
    base = reverse("ui:alias-compare", args=[adapter.namespace, adapter.name])
    return f"{base}?candidate=v{version.number}&alias={alias}"


@require_POST
@login_required
def promotion_new(request):
    """The Promote form: without `confirm` a preview of exactly what will change and the gates; with
    it, the request (promotion_request evaluates the gates again and decides), then its page."""
    if not can_request(request.user):
        raise PermissionDenied("requesting a promotion needs the engineer, approver or admin role")
    form = PromoteForm.from_post(request.POST).checked()
    try:
        version = adapter_version_get(form.version_ref)
    except RegistryError as error:
        return render(request, "ui/promotion_confirm.html", {"form": form, "error": error}, status=error.status_code)
    context = {
        "form": form,
        "version": version,
        "is_admin": roles.is_admin(request.user, version.adapter.namespace),
        "alias_choices": _alias_names(
            AdapterAlias.objects.filter(adapter_id=version.adapter_id).values_list("name", flat=True)
        ),
    }
    if form.problem is not None:
        return render(request, "ui/promotion_confirm.html", {**context, "error": form.problem}, status=400)
    if request.POST.get("confirm"):
        try:
            created = promotions.promotion_request(
                version_ref=str(version.id),
                alias=form.alias,
                reason=form.reason,
                user=request.user,
                kind=PromotionRequest.Kind.CANARY if form.canary_weight else PromotionRequest.Kind.PROMOTE,
                canary_weight=form.canary_weight,
                override_reason=form.override_reason,
            )
        except RegistryError as error:
            context.update(error=_refused(request, error), **_preview(version, form, request.user))
            return render(request, "ui/promotion_confirm.html", context, status=error.status_code)
        messages.success(request, f"Promotion requested: {created.state}.")
        return redirect("ui:promotion", created.id)
    return render(request, "ui/promotion_confirm.html", {**context, **_preview(version, form, request.user)})


# --- Gates as a person reads them --------------------------------------------------------------------


def gate_rows(gates: list[dict]) -> list[dict]:
    """Each gate with its metrics side by side (candidate, served, delta) when it compared numbers."""
    rows = []
    for gate in gates or []:
        numbers = gate.get("numbers") or {}
        candidate, served = numbers.get("candidate") or {}, numbers.get("served") or {}
        metrics = [
            {
                "label": LABELS.get(metric, metric),
                "direction": direction(metric),
                "candidate": significant(value),
                "served": significant(served.get(metric)),
                "delta": delta(metric, value, served.get(metric)),
            }
            for metric, value in candidate.items()
        ]
        rows.append({**gate, "metrics": metrics, "served_ref": numbers.get("served_ref")})
    return rows


# --- A promotion request's page and its decisions ------------------------------------------------------


def _requests():
    return PromotionRequest.objects.select_related("adapter", "version__adapter", "expected_version__adapter")


def _request_or_404(request_id) -> PromotionRequest:
    found = (
        _requests()
        .prefetch_related(Prefetch("approvals", queryset=PromotionApproval.objects.order_by("created_at")))
        .filter(id=request_id)
        .first()
    )
    if found is None:
        raise Http404(f"no promotion request {request_id}")
    return found


def _request_context(request, promotion: PromotionRequest) -> dict:
    user = request.user
    approvals = list(promotion.approvals.all())
    pending = promotion.state == State.PENDING
    decided = any(approval.user_id == user.id for approval in approvals)
    expected = Split(promotion.expected_version)
    if promotion.kind == PromotionRequest.Kind.CANARY:
        after = Split(promotion.expected_version, promotion.version, promotion.canary_weight)
    else:
        after = Split(promotion.version)
    return {
        "promotion": promotion,
        "approvals": approvals,
        "approved_count": sum(1 for a in approvals if a.decision == PromotionApproval.Decision.APPROVE),
        "gates": gate_rows(promotion.gates),
        "steps": [{**step, "at": parse_datetime(step.get("at") or "")} for step in promotion.steps],
        "change": change_text(promotion.adapter, promotion.alias, expected, after),
        "polling": promotion.state in POLLED_STATES,
        "final": promotion.state in FINAL_STATES,
        "is_requester": promotion.requested_by_id == user.id,
        "can_decide": pending
        and can_decide(user, promotion.adapter.namespace)
        and promotion.requested_by_id != user.id
        and not decided,
        "can_cancel": promotion.state in (State.PENDING, State.APPROVED)
        and (promotion.requested_by_id == user.id or roles.is_admin(user, promotion.adapter.namespace)),
        "is_admin": roles.is_admin(user, promotion.adapter.namespace),
        "compare_url": compare_url(promotion.version, promotion.alias),
    }


@require_GET
@login_required
def promotion_detail(request, request_id):
    """A request: its change, gates, approvals and steps. While a worker has it, the page polls its
    own fragment; the answer is 286 once the request is final, which stops htmx polling."""
    promotion = _request_or_404(request_id)
    context = _request_context(request, promotion)
    if _wants_fragment(request):
        response = render(request, "ui/promotion_detail.html#promotion", context)
        if not context["polling"]:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "ui/promotion_detail.html", context)


DECISIONS = ("approve", "reject", "cancel")


@require_POST
@login_required
def promotion_decide(request, request_id, action: str):
    """Approve, Reject, Cancel: the services decide who may; a refusal (four eyes, gates_failed, not
    pending) is shown on the request's page with its code and the status the API answers."""
    if action not in DECISIONS:
        raise Http404("no such decision")
    text = request.POST.get("text", "").strip()
    try:
        if action == "approve":
            promotions.promotion_approve(
                request_id=request_id, user=request.user, comment=text,
                override_reason=request.POST.get("override_reason", "").strip(),
            )  # fmt: skip
        elif action == "reject":
            promotions.promotion_reject(request_id=request_id, user=request.user, reason=text)
        else:
            promotions.promotion_cancel(request_id=request_id, user=request.user, reason=text)
    except RegistryError as error:
        promotion = _request_or_404(request_id)  # the fresh gate results, when gates_failed stored them
        context = {**_request_context(request, promotion), "error": _refused(request, error), "text": text}
        return render(request, "ui/promotion_detail.html", context, status=error.status_code)
    done = {"approve": "Approved", "reject": "Rejected", "cancel": "Cancelled"}[action]
    messages.success(request, f"{done}.")
    back = request.POST.get("next", "")
    if back == "inbox":
        return redirect("ui:promotions")
    return redirect("ui:promotion", request_id)


# --- The inbox: waiting for me, and every request, newest first in keyset pages ---------------------------


@dataclass
class Cursor:
    """A place in the list by (created_at, id), never by count: `<microseconds since epoch>_<uuid>`."""

    created_at: datetime
    id: UUID

    def __str__(self) -> str:
        micros = int(self.created_at.timestamp()) * 1_000_000 + self.created_at.microsecond
        return f"{micros}_{self.id}"

    @classmethod
    def of(cls, row: PromotionRequest) -> "Cursor":
        return cls(row.created_at, row.id)

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        micros, _, identifier = text.partition("_")
        try:
            moment = datetime.fromtimestamp(int(micros) // 1_000_000, tz=UTC).replace(
                microsecond=int(micros) % 1_000_000
            )
            return cls(moment, UUID(identifier))
        except (ValueError, OverflowError, OSError):
            raise RegistryError(
                "cursor_invalid", f"{text[:60]!r} is not a page cursor; follow the Older / Newer links"
            ) from None


@dataclass
class RequestPage:
    rows: list
    newer: Cursor | None = None
    older: Cursor | None = None


def _request_page(rows, *, older: Cursor | None, newer: Cursor | None) -> RequestPage:
    """PAGE_SIZE requests before `older`, or after `newer`, or the newest: one bounded query."""
    if newer is not None:
        after = Q(created_at__gt=newer.created_at) | Q(created_at=newer.created_at, id__gt=newer.id)
        found = list(rows.filter(after).order_by("created_at", "id")[: PAGE_SIZE + 1])
        more_newer = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE][::-1]
        return RequestPage(
            found, newer=Cursor.of(found[0]) if more_newer else None, older=Cursor.of(found[-1]) if found else newer
        )
    if older is not None:
        rows = rows.filter(Q(created_at__lt=older.created_at) | Q(created_at=older.created_at, id__lt=older.id))
    found = list(rows.order_by("-created_at", "-id")[: PAGE_SIZE + 1])
    more_older = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    newer_than = None if older is None else (Cursor.of(found[0]) if found else older)
    return RequestPage(found, newer=newer_than, older=Cursor.of(found[-1]) if more_older else None)


def _waiting_for(user) -> list:
    """Pending requests this approver may decide: not their own, not already decided by them."""
    if not can_decide(user):
        return []
    rows = _requests().filter(state=State.PENDING)
    if not roles.roles_of(user) & roles.DECIDERS:  # an approver by namespace grants only
        rows = rows.filter(adapter__namespace__in=roles.namespaces_where(user, roles.DECIDERS))
    rows = rows.exclude(requested_by=user).exclude(approvals__user=user).order_by("-created_at", "-id")
    return list(rows[:WAITING_SHOWN])


@require_GET
@login_required
def promotion_inbox(request):
    errors = {}
    state = request.GET.get("state", "").strip()
    if state and state not in State.values:
        errors["state"] = f"{state[:40]!r} is not a state; one of {', '.join(State.values)}"
    cursors = {}
    for name in ("older", "newer"):
        text = request.GET.get(name, "").strip()
        if text:
            try:
                cursors[name] = Cursor.parse(text)
            except RegistryError as error:
                errors[name] = error.message
    page = None
    if not errors:
        rows = _requests().filter(state=state) if state else _requests()
        page = _request_page(rows, older=cursors.get("older"), newer=cursors.get("newer"))
    context = {
        "waiting": _waiting_for(request.user),
        "can_decide": can_decide(request.user),
        "page": page,
        "state": state,
        "states": State.values,
        "errors": errors,
        "query_state": f"state={state}&" if state else "",
    }
    return render(request, "ui/promotion_list.html", context, status=400 if errors else 200)


# --- A name's alias timeline, rollback and canary steps ------------------------------------------------------


def _adapter_or_404(namespace: str, name: str) -> Adapter:
    adapter = Adapter.objects.filter(namespace=namespace, name=name).first()
    if adapter is None:
        raise Http404(f"no adapter named {namespace}/{name}")
    return adapter


def _moves(adapter: Adapter):
    return AliasMove.objects.filter(adapter=adapter).select_related(
        "from_version", "to_version", "from_canary_version", "canary_version"
    )


def _latest_moves(adapter: Adapter, *, alias: str | None, older_than: int | None) -> dict[str, list]:
    """The newest HISTORY_SIZE + 1 moves of each alias (the extra one says there are older ones), in
    one query: a window numbers each alias's moves newest first."""
    moves = _moves(adapter)
    if alias is not None:
        moves = moves.filter(alias=alias)
    if older_than is not None:
        anchor = AliasMove.objects.filter(adapter=adapter, id=older_than).values_list("moved_at", flat=True).first()
        if anchor is None:
            raise Http404(f"no move {older_than} of {adapter.full_name}")
        moves = moves.filter(Q(moved_at__lt=anchor) | Q(moved_at=anchor, id__lt=older_than))
    ranked = moves.annotate(
        rank=Window(RowNumber(), partition_by=[F("alias")], order_by=[F("moved_at").desc(), F("id").desc()])
    ).filter(rank__lte=HISTORY_SIZE + 1)
    grouped: dict[str, list] = {}
    for move in ranked.order_by("alias", "-moved_at", "-id"):
        move.before = Split(move.from_version, move.from_canary_version, move.from_canary_weight)
        move.after = Split(move.to_version, move.canary_version, move.canary_weight)
        grouped.setdefault(move.alias, []).append(move)
    return grouped


def _served_before(adapter: Adapter) -> dict[str, list]:
    """Every version each alias has served (for Roll back's picker), newest number first."""
    served: dict[str, list] = {}
    rows = (
        AliasMove.objects.filter(adapter=adapter)
        .values_list("alias", "to_version_id", "to_version__number")
        .distinct()
        .order_by("alias", "-to_version__number")
    )
    for alias, version_id, number in rows:
        served.setdefault(alias, []).append({"id": version_id, "number": number})
    return served


@dataclass
class AliasRow:
    name: str
    split: Split
    moves: list = field(default_factory=list)
    older: int | None = None  # the id of the last move shown, when there are older ones
    earlier: list = field(default_factory=list)  # versions it served, other than the one it serves now


@require_GET
@login_required
def alias_timeline(request, namespace: str, name: str):
    adapter = _adapter_or_404(namespace, name)
    only = request.GET.get("alias", "").strip() or None
    older_text = request.GET.get("older", "").strip()
    older = int(older_text) if older_text.isdigit() else None
    rows = AdapterAlias.objects.filter(adapter=adapter).select_related("version", "canary_version").order_by("name")
    if only is not None:
        rows = rows.filter(name=only)
    moves = _latest_moves(adapter, alias=only, older_than=older)
    served = _served_before(adapter)
    aliases = []
    for row in rows:
        shown = moves.get(row.name, [])
        aliases.append(
            AliasRow(
                name=row.name,
                split=Split.of(row),
                moves=shown[:HISTORY_SIZE],
                older=shown[HISTORY_SIZE - 1].id if len(shown) > HISTORY_SIZE else None,
                earlier=[v for v in served.get(row.name, []) if v["id"] != row.version_id],
            )
        )
    user = request.user
    context = {
        "adapter": adapter,
        "aliases": aliases,
        "only": only,
        "paged": older is not None,
        "can_decide": can_decide(user, adapter.namespace),
        "can_request": can_request(user, adapter.namespace),
        "versions": list(adapter.versions.order_by("-number").only("id", "number", "status")[:VERSIONS_OFFERED]),
        "latest": adapter.versions.order_by("-number").only("number").first(),
        "open_requests": list(
            _requests().filter(adapter=adapter, state__in=PromotionRequest.OPEN_STATES).order_by("-created_at")
        ),
    }
    return render(request, "ui/alias_timeline.html", context)


ALIAS_ACTIONS = ("rollback", "canary")
CANARY_ACTIONS = {"ramp": "Ramp the canary", "promote": "Promote the canary to 100%", "abort": "Abort the canary"}


def _rollback_target(adapter: Adapter, alias: str, current: AdapterAlias, to_text: str) -> AdapterVersion:
    """The version a rollback would serve: the service's own rule (rollback_target), so the
    confirmation names the version it will move to; the confirmed form then sends it explicitly.
    A bare `vN` or number picked on the page names a version of this adapter."""
    if to_text and "/" not in to_text and len(to_text) != 36:
        to_text = f"{adapter.full_name}:{to_text}"
    return promotions.rollback_target(adapter, alias, current, to_text or None)


def _canary_checked(adapter: Adapter, alias: str, split: Split, action: str, weight: int | None) -> None:
    """The service's refusals, before the confirmation rather than after it."""
    if action not in CANARY_ACTIONS:
        raise RegistryError("canary_action_invalid", f"unknown canary action {action[:40]!r}: ramp, promote or abort")
    if split.canary is None:
        raise RegistryError("no_canary", f"{adapter.full_name}:{alias} runs no canary", status_code=409)
    if action == "ramp" and not (weight and 1 <= weight <= 99):
        raise RegistryError("canary_weight_invalid", "a canary weight is a whole percent from 1 to 99")


def _canary_after(split: Split, action: str, weight: int | None) -> Split:
    if split.canary is None:
        return split
    if action == "ramp":
        return Split(split.version, split.canary, weight or 0)
    if action == "promote":
        return Split(split.canary)
    return Split(split.version)


@require_POST
@login_required
def alias_action(request, namespace: str, name: str, alias: str, action: str):
    """Roll back, or ramp / promote / abort a canary: a confirmation of exactly what changes, then,
    with `confirm`, the service's move (or, for a rollback whose policy wants approvals, a request)."""
    if action not in ALIAS_ACTIONS:
        raise Http404("no such action")
    adapter = _adapter_or_404(namespace, name)
    if not can_decide(request.user, adapter.namespace):
        raise PermissionDenied("rolling back and changing canaries need the approver or admin role")
    post = request.POST
    reason = post.get("reason", "").strip()
    canary_action = post.get("canary_action", "").strip()
    weight_text = post.get("weight", "").strip()
    weight = int(weight_text) if weight_text.isdigit() else None
    context = {"adapter": adapter, "alias": alias, "action": action, "reason": reason,
               "canary_action": canary_action, "weight": weight_text,
               "timeline_url": reverse("ui:alias-timeline", args=[namespace, name])}  # fmt: skip
    current = _serving(adapter, alias)
    if current is None:
        error = RegistryError("alias_not_found", f"{adapter.full_name} has no alias {alias!r}", status_code=404)
        return render(request, "ui/alias_action_confirm.html", {**context, "error": error}, status=404)
    before = Split.of(current)
    try:
        if action == "rollback":
            target = _rollback_target(adapter, alias, current, post.get("to", "").strip())
            after = Split(target)
            context.update(target=target, title=f"Roll back {adapter.full_name}:{alias}",
                           approvals=promotions.promotion_policy_for(adapter.namespace, alias)["rollback_approvals"])  # fmt: skip
        else:
            _canary_checked(adapter, alias, before, canary_action, weight)
            after = _canary_after(before, canary_action, weight)
            context["title"] = f"{CANARY_ACTIONS[canary_action]} of {adapter.full_name}:{alias}"
        context["change"] = change_text(adapter, alias, before, after)
        if post.get("confirm"):
            return _alias_action_done(request, adapter, alias, action, context)
        if not reason:
            raise RegistryError("reason_required", "say why: the change is recorded with its reason")
    except RegistryError as error:
        context["error"] = _refused(request, error)
        return render(request, "ui/alias_action_confirm.html", context, status=error.status_code)
    return render(request, "ui/alias_action_confirm.html", context)


def _alias_action_done(request, adapter: Adapter, alias: str, action: str, context: dict):
    """The confirmed move through the service; RegistryError goes back to the confirmation."""
    user, reason = request.user, context["reason"]
    if action == "rollback":
        done = promotions.alias_rollback(
            adapter=adapter, alias=alias, user=user, reason=reason, to_ref=str(context["target"].id)
        )
        if done.request is not None:
            messages.success(request, "The policy wants approvals for rollbacks: a rollback request was made.")
            return redirect("ui:promotion", done.request.id)
        messages.success(request, f"Rolled back: {context['change']}.")
    else:
        weight = int(context["weight"]) if context["weight"].isdigit() else None
        promotions.alias_canary(
            adapter=adapter, alias=alias, user=user, action=context["canary_action"], reason=reason, weight=weight
        )
        messages.success(request, f"Done: {context['change']}.")
    return redirect("ui:alias-timeline", adapter.namespace, adapter.name)


# --- Candidate vs served ---------------------------------------------------------------------------------


def _latest_evaluations(versions: list[AdapterVersion]) -> dict[tuple, Job]:
    """Each version's latest finished evaluation per suite, keyed (version id, suite id): one query."""
    latest = {}
    jobs = (
        Job.objects.filter(
            adapter_version__in=[v.id for v in versions], kind=Job.Kind.EVALUATION, state=Job.State.SUCCEEDED
        )
        .select_related("suite")
        .order_by("finished_at")
    )
    for job in jobs:
        latest[(job.adapter_version_id, job.suite_id)] = job  # later ones replace earlier ones
    return latest


def _served_numbers(served: AdapterVersion, own: Job | None, candidate_job: Job | None) -> tuple[dict, str]:
    """The served version's metrics on a suite: its own run, or the candidate's run that measured it."""
    if own is not None:
        return own.result.get("metrics", {}).get("adapter") or {}, ""
    if candidate_job is not None:
        reference = candidate_job.result.get("reference") or {}
        if isinstance(reference, dict) and reference.get("compared") and reference.get("ref") == served.ref:
            return candidate_job.result.get("metrics", {}).get("reference") or {}, "measured in the candidate's run"
    return {}, ""


def metric_comparison(candidate: AdapterVersion, served: AdapterVersion | None) -> list[dict]:
    """Per suite either has run: each metric of the candidate and of the served version, with the delta."""
    latest = _latest_evaluations([candidate] + ([served] if served else []))
    suites = {job.suite_id: job.suite for job in latest.values()}
    sections = []
    for suite_id, suite in sorted(suites.items(), key=lambda item: item[1].ref):
        mine = latest.get((candidate.id, suite_id))
        theirs, source = ({}, "")
        if served is not None:
            theirs, source = _served_numbers(served, latest.get((served.id, suite_id)), mine)
        ours = (mine.result.get("metrics", {}).get("adapter") or {}) if mine else {}
        rows = []
        for metric in list(ours) + [m for m in theirs if m not in ours]:
            value, other = ours.get(metric), theirs.get(metric)
            rows.append({
                "label": LABELS.get(metric, metric), "direction": direction(metric),
                "candidate": significant(value) if value is not None else "—",
                "served": significant(other) if other is not None else "—",
                "delta": delta(metric, value, other),
            })  # fmt: skip
        sections.append({"suite": suite, "rows": rows, "source": source, "candidate_job": mine})
    return sections


def config_comparison(candidate: AdapterVersion, served: AdapterVersion | None) -> list[dict]:
    def modules(value) -> str:
        return (", ".join(value) if isinstance(value, list) else str(value or "")) or "—"

    fields = [
        ("Base", lambda v: v.base_version.ref),
        ("PEFT type", lambda v: v.peft_type),
        ("Rank r", lambda v: v.r if v.r is not None else "—"),
        ("Alpha", lambda v: significant(v.lora_alpha) if v.lora_alpha is not None else "—"),
        ("Target modules", lambda v: modules(v.target_modules)),
        ("Modules saved", lambda v: modules(v.modules_to_save)),
        ("DoRA · rsLoRA", lambda v: f"{'yes' if v.use_dora else 'no'} · {'yes' if v.use_rslora else 'no'}"),
        ("Parameters", lambda v: v.parameter_count),
        ("Dtypes", lambda v: ", ".join(v.dtypes or []) or "—"),
    ]
    rows = []
    for label, read in fields:
        ours = str(read(candidate))
        theirs = str(read(served)) if served is not None else "—"
        rows.append(
            {"label": label, "candidate": ours, "served": theirs, "changed": served is not None and ours != theirs}
        )
    return rows


def file_comparison(candidate: AdapterVersion, served: AdapterVersion | None) -> list[dict]:
    ours = {f.path: f for f in candidate.files.all()}
    theirs = {f.path: f for f in served.files.all()} if served is not None else {}
    rows = []
    for path in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(path), theirs.get(path)
        same = mine is not None and other is not None and mine.blob_id == other.blob_id
        rows.append({"path": path, "candidate": mine, "served": other, "same": same})
    return rows


@require_GET
@login_required
def alias_compare(request, namespace: str, name: str):
    """?candidate=vN (or any reference of this name) &alias=production: the candidate beside what the
    alias serves now. Bad parameters are a 400 page saying what to pass."""
    adapter = _adapter_or_404(namespace, name)
    alias = request.GET.get("alias", "production").strip() or "production"
    candidate_text = request.GET.get("candidate", "").strip()
    context = {"adapter": adapter, "alias": alias, "candidate_text": candidate_text}
    try:
        promotions.alias_name_check(alias)
        if not candidate_text:
            raise RegistryError("candidate_required", "say which version to compare: ?candidate=vN")
        ref = (
            candidate_text
            if "/" in candidate_text or len(candidate_text) == 36
            else f"{adapter.full_name}:{candidate_text}"
        )
        candidate = adapter_version_get(ref)
        if candidate.adapter_id != adapter.id:
            raise RegistryError("candidate_invalid", f"{candidate.ref} is not a version of {adapter.full_name}")
    except RegistryError as error:
        return render(request, "ui/compare.html", {**context, "error": error}, status=error.status_code)
    current = _serving(adapter, alias)
    served = current.version if current is not None else None
    context.update(
        candidate=candidate,
        served=served,
        split=Split.of(current),
        metrics=metric_comparison(candidate, served),
        config=config_comparison(candidate, served),
        files=file_comparison(candidate, served),
        signer_columns=[
            ("Candidate", candidate.number, signing_context(candidate)["signatures"]),
            ("Served", served.number if served else None, signing_context(served)["signatures"] if served else []),
        ],
        can_promote=can_request(request.user, candidate.adapter.namespace),
    )
    return render(request, "ui/compare.html", context)
