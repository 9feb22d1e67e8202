"""The Residency page: what the planner wants each serving worker to keep warm, what the fleet saw,
how the planner would have done against the engines' LRU on the last day's traffic, and what the
next plan will change.

Plans are read as the API reads them (ResidencyPlan / WorkerDesiredState, written only by
registry/services/residency.py); "Re-plan now" calls the same service as POST /api/v1/residency/replan
and is for global admins, as that endpoint is. The two expensive panels (the replay and the dry
run of the next plan) are loaded lazily by htmx from the page's own URL (?panel=...), so the page
renders from a few indexed queries; without JavaScript their links render the page with the panel.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import F, FloatField, Q, Sum
from django.db.models.functions import Cast
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from registry import roles
from registry.models import (
    AdapterVersion,
    ResidencyPlan,
    ServingWorker,
    TelemetryWindow,
    WorkerDesiredState,
)
from registry.residency import telemetry_replay
from registry.services.residency import residency_preview, residency_replan
from ui.residency_plot import hit_rate_svg

WORKERS_PER_PAGE = 20
ENTRIES_SHOWN = 20  # per tier on a worker's card; "show all" pages through the rest
ENTRIES_PER_PAGE = 100
TOP_ADAPTERS = 10
CHANGES_SHOWN = 20
REPLAY_CACHE_KEY = "ui.residency.replay.v1"
REPLAY_CACHE_SECONDS = 600
REPLAY_HOURS = 24
# The replay re-plans every RESIDENCY_PLAN_INTERVAL_SECONDS of trace time, but at most this many
# plans over the whole fleet's day, so a large fleet's replay stays within a page load.
REPLAY_MAX_PLANS = 2000
PANELS = ("replay", "next")


@dataclass(frozen=True)
class TierKind:
    key: str
    label: str
    tier: str  # the desired state's list
    pinned: bool | None = None  # GPU entries: pinned or not; None: every entry of the list

    def entries(self, desired: dict) -> list:
        rows = desired.get(self.tier, [])
        if self.pinned is None:
            return rows
        return [row for row in rows if bool(row.get("pinned", False)) == self.pinned]


TIER_KINDS = (
    TierKind("gpu-pinned", "GPU, pinned", "gpu", pinned=True),
    TierKind("gpu-unpinned", "GPU, unpinned (engine LRU)", "gpu", pinned=False),
    TierKind("host", "Host memory", "host"),
    TierKind("disk", "Disk prefetch", "disk"),
)
TIER_BY_KEY = {kind.key: kind for kind in TIER_KINDS}
CHANGE_TIERS = (("gpu", "GPU"), ("host", "Host memory"), ("disk", "Disk prefetch"))


def _wants_fragment(request) -> bool:
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


# --- Links to adapter versions ----------------------------------------------------------------


def _version_links(refs) -> dict:
    """ns/name@sha256:<hex> -> {"url", "label": "ns/name:vN"} for each ref that names a version (one query)."""
    digests = {ref.rpartition("@sha256:")[2] for ref in refs if "@sha256:" in ref}
    rows = AdapterVersion.objects.filter(digest__in=digests).values_list(
        "adapter__namespace", "adapter__name", "number", "digest"
    )
    return {
        f"{namespace}/{name}@sha256:{digest}": {
            "url": reverse("ui:adapter-detail", args=[namespace, name, number]),
            "label": f"{namespace}/{name}:v{number}",
        }
        for namespace, name, number, digest in rows
    }


def _linked(entries: list, links: dict) -> list:
    """Entries (dicts with a "ref") with the link and label of their version; an unknown ref is shown as it is."""
    return [{**entry, **links.get(entry["ref"], {"url": None, "label": entry["ref"]})} for entry in entries]


# --- The worker cards -------------------------------------------------------------------------


@dataclass
class TierView:
    kind: TierKind
    count: int
    entries: list  # the first ENTRIES_SHOWN, with "url"


@dataclass
class WorkerCard:
    worker: ServingWorker
    state: WorkerDesiredState | None = None
    tiers: list = field(default_factory=list)
    telemetry: dict = field(default_factory=dict)  # "hour" | "day" -> figures
    top: list = field(default_factory=list)

    @property
    def labels(self) -> list:
        return sorted(self.worker.labels.items()) if isinstance(self.worker.labels, dict) else []


def _worker_page(after: str):
    workers = ServingWorker.objects.prefetch_related("base_versions__base_model").order_by("name")
    if after:
        workers = workers.filter(name__gt=after)
    rows = list(workers[: WORKERS_PER_PAGE + 1])
    return rows[:WORKERS_PER_PAGE], (rows[WORKERS_PER_PAGE - 1].name if len(rows) > WORKERS_PER_PAGE else None)


def _cards(workers: list, plan: ResidencyPlan | None, now: datetime) -> list:
    states = {}
    if plan is not None:
        states = {s.worker_id: s for s in plan.worker_states.filter(worker__in=workers)}
    cards = [WorkerCard(worker=worker, state=states.get(worker.id)) for worker in workers]
    shown = {
        card.worker.id: {kind.key: kind.entries(card.state.desired) for kind in TIER_KINDS}
        for card in cards
        if card.state is not None
    }
    urls = _version_links(
        entry["ref"] for tiers in shown.values() for entries in tiers.values() for entry in entries[:ENTRIES_SHOWN]
    )
    for card in cards:
        tiers = shown.get(card.worker.id)
        if tiers is not None:
            card.tiers = [
                TierView(kind, len(tiers[kind.key]), _linked(tiers[kind.key][:ENTRIES_SHOWN], urls))
                for kind in TIER_KINDS
            ]
    _add_telemetry(cards, now)
    return cards


# --- Recent telemetry -------------------------------------------------------------------------


def _weighted_sum(column: str, condition: Q) -> Sum:
    has = condition & Q(**{f"{column}__isnull": False})
    return Sum(Cast(F(column), FloatField()) * F("requests"), filter=has)


def _period_aggregates(name: str, condition: Q) -> dict:
    has_p50, has_p99 = condition & Q(ttft_p50_ms__isnull=False), condition & Q(ttft_p99_ms__isnull=False)
    return {
        f"{name}_requests": Sum("requests", filter=condition),
        f"{name}_cold": Sum("cold_loads", filter=condition),
        f"{name}_p50_sum": _weighted_sum("ttft_p50_ms", condition),
        f"{name}_p50_weight": Sum("requests", filter=has_p50),
        f"{name}_p99_sum": _weighted_sum("ttft_p99_ms", condition),
        f"{name}_p99_weight": Sum("requests", filter=has_p99),
    }


def _ratio(numerator, denominator):
    return numerator / denominator if numerator is not None and denominator else None


def _period(row: dict, name: str) -> dict:
    requests = row.get(f"{name}_requests") or 0
    cold = row.get(f"{name}_cold") or 0
    return {
        "requests": requests,
        "cold_loads": cold,
        "cold_rate": cold / requests if requests else None,
        "p50": _ratio(row.get(f"{name}_p50_sum"), row.get(f"{name}_p50_weight")),
        "p99": _ratio(row.get(f"{name}_p99_sum"), row.get(f"{name}_p99_weight")),
    }


def _add_telemetry(cards: list, now: datetime) -> None:
    """Per worker: the last hour and the last day (windows ending in them), and its busiest adapters."""
    if not cards:
        return
    ids = [card.worker.id for card in cards]
    day, hour = Q(window_end__gt=now - timedelta(days=1)), Q(window_end__gt=now - timedelta(hours=1))
    rows = (
        TelemetryWindow.objects.filter(day, worker_id__in=ids)
        .values("worker_id")
        .annotate(**_period_aggregates("hour", hour), **_period_aggregates("day", day))
    )
    figures = {row["worker_id"]: row for row in rows}
    top = _top_adapters(ids, now)
    for card in cards:
        row = figures.get(card.worker.id)
        if row is not None and row["day_requests"] is not None:
            card.telemetry = {"hour": _period(row, "hour"), "day": _period(row, "day")}
        card.top = top.get(card.worker.id, [])


_TOP_ADAPTERS_SQL = """
SELECT worker_id, namespace, name, number, requests, cold_loads FROM (
    SELECT t.worker_id, a.namespace, a.name, v.number, t.requests, t.cold_loads,
           row_number() OVER (PARTITION BY t.worker_id ORDER BY t.requests DESC, v.id) AS position
    FROM (
        SELECT worker_id, adapter_version_id, sum(requests) AS requests, sum(cold_loads) AS cold_loads
        FROM {windows} WHERE worker_id = ANY(%s) AND window_end > %s GROUP BY 1, 2
    ) t
    JOIN {versions} v ON v.id = t.adapter_version_id JOIN {adapters} a ON a.id = v.adapter_id
) ranked WHERE position <= %s ORDER BY worker_id, position
"""


def _top_adapters(worker_ids: list, now: datetime) -> dict:
    """worker id -> its TOP_ADAPTERS adapter versions by requests over the last day (one statement:
    the ORM puts a window function over an aggregate into GROUP BY, which PostgreSQL refuses)."""
    sql = _TOP_ADAPTERS_SQL.format(
        windows=TelemetryWindow._meta.db_table,
        versions=AdapterVersion._meta.db_table,
        adapters=AdapterVersion._meta.get_field("adapter").related_model._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [worker_ids, now - timedelta(days=1), TOP_ADAPTERS])
        rows = cursor.fetchall()
    top: dict = {}
    for worker_id, namespace, name, number, requests, cold_loads in rows:
        top.setdefault(worker_id, []).append(
            {
                "ref": f"{namespace}/{name}:v{number}",
                "url": reverse("ui:adapter-detail", args=[namespace, name, number]),
                "requests": requests,
                "cold_loads": cold_loads,
            }
        )
    return top


# --- The page ---------------------------------------------------------------------------------


def _latest_plan() -> ResidencyPlan | None:
    return ResidencyPlan.objects.order_by("-created_at", "-id").first()


@require_GET
@login_required
def residency(request):
    """The page; htmx asks the same URL for the worker cards' next page or for a lazy panel."""
    panel = request.GET.get("panel", "")
    if panel and panel not in PANELS:
        raise Http404(f"no panel {panel[:40]!r}: the Residency page has {', '.join(PANELS)}")
    if panel and _wants_fragment(request):
        return render(request, f"ui/residency.html#{panel}", _panel_context(panel))
    now = timezone.now()
    after = request.GET.get("after", "")[:63]
    workers, next_after = _worker_page(after)
    plan = _latest_plan()
    context = {
        "plan": plan,
        "cards": _cards(workers, plan, now),
        "after": after,
        "next_after": next_after,
        "any_worker": bool(workers) or ServingWorker.objects.exists(),
        "can_replan": roles.is_admin(request.user),
        "plan_interval": settings.RESIDENCY_PLAN_INTERVAL_SECONDS,
        "now": now,
        "panel": panel,
        **(_panel_context(panel) if panel else {}),
    }
    if after and _wants_fragment(request):
        return render(request, "ui/residency.html#cards", context)
    return render(request, "ui/residency.html", context)


def _panel_context(panel: str) -> dict:
    return {"replay": _replay_context()} if panel == "replay" else {"next": _next_plan_context()}


# --- A tier in full -----------------------------------------------------------------------------


def _int_param(request, name: str, default: int | None = None) -> int | None:
    text = request.GET.get(name, "")
    if not text:
        return default
    if not text.isdigit() or len(text) > 18:
        raise Http404(f"{name} takes a whole number, not {text[:40]!r}")
    return int(text)


@require_GET
@login_required
def residency_tier(request, name: str, tier: str):
    """Every entry of one tier of a worker's state in a plan (?plan=, default its newest), a page at a
    time from ?start= (a position in the plan's list: a stored state never changes, so pages hold still)."""
    kind = TIER_BY_KEY.get(tier)
    worker = ServingWorker.objects.filter(name=name).first()
    if kind is None or worker is None:
        raise Http404("no such worker or tier")
    states = WorkerDesiredState.objects.filter(worker=worker).select_related("plan")
    plan_id = _int_param(request, "plan")
    state = (states.filter(plan_id=plan_id) if plan_id is not None else states.order_by("-plan_id")).first()
    if state is None:
        where = f"in plan {plan_id}" if plan_id is not None else "yet"
        raise Http404(f"{worker.name} has no planned state {where}")
    entries = kind.entries(state.desired)
    start = min(_int_param(request, "start", 0), len(entries))
    page = entries[start : start + ENTRIES_PER_PAGE]
    context = {
        "worker": worker,
        "state": state,
        "kind": kind,
        "entries": _linked(page, _version_links(entry["ref"] for entry in page)),
        "total": len(entries),
        "start": start,
        "first_position": start + 1,
        "last_position": start + len(page),
        "previous_start": max(start - ENTRIES_PER_PAGE, 0) if start else None,
        "next_start": start + ENTRIES_PER_PAGE if start + ENTRIES_PER_PAGE < len(entries) else None,
    }
    template = "ui/residency_tier.html#entries" if _wants_fragment(request) else "ui/residency_tier.html"
    return render(request, template, context)


# --- Re-plan now ----------------------------------------------------------------------------------


@require_POST
@login_required
def residency_replan_action(request):
    """An admin's manual re-plan: the service POST /api/v1/residency/replan calls (audited, announced)."""
    if not roles.is_admin(request.user):
        raise PermissionDenied("re-planning serving residency needs the global admin role")
    plan = residency_replan(trigger="manual")
    changed = plan.summary.get("changed_workers", [])
    messages.success(
        request,
        f"Plan {plan.id} stored: {plan.summary.get('workers', 0)} worker(s), {len(changed)} with a changed state.",
    )
    return redirect("ui:residency")


# --- Planner against LRU on the last day's traffic -----------------------------------------------


def _replay_context() -> dict:
    """The replay's figures, from the cache when computed in the last REPLAY_CACHE_SECONDS."""
    figures = cache.get(REPLAY_CACHE_KEY)
    if figures is None:
        figures = _replay_figures(timezone.now())
        cache.set(REPLAY_CACHE_KEY, figures, REPLAY_CACHE_SECONDS)
    if figures["requests_seen"]:
        figures = {**figures, "svg": hit_rate_svg(figures)}
    return figures


def _replay_origin(now: datetime) -> datetime:
    """The start of the first of REPLAY_HOURS clock hours, the last of which is the current one."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=REPLAY_HOURS - 1)


def _replay_figures(now: datetime) -> dict:
    origin = _replay_origin(now)
    workers = list(ServingWorker.objects.order_by("name"))
    by_worker = _replay_windows(workers, origin)
    versions = {key for windows in by_worker.values() for key in (w.adapter for w in windows)}
    rows = list(AdapterVersion.objects.filter(id__in=versions).values_list("id", "total_bytes", "base_version_id"))
    sizes = {str(vid): size for vid, size, _ in rows}
    bases = {str(vid): str(base) for vid, _, base in rows}
    interval = _replay_plan_interval(sum(1 for windows in by_worker.values() if windows))
    fleet = telemetry_replay.replay_fleet(
        {
            worker.name: (by_worker[worker.id], telemetry_replay.WorkerCapacity(worker.gpu_slots, worker.gpu_bytes))
            for worker in workers
            if by_worker.get(worker.id)
        },
        sizes,
        bases,
        hours=REPLAY_HOURS,
        plan_interval=interval,
        long_half_life=float(settings.RESIDENCY_HALF_LIFE_SECONDS),
    )
    return {
        "computed_at": now,
        "origin": origin,
        "hours": REPLAY_HOURS,
        "requests_seen": fleet.requests_seen,
        "requests_replayed": fleet.requests_replayed,
        "scaled": fleet.scaled,
        "scale": fleet.scale,
        "plan_interval": interval,
        "workers": len(fleet.workers),
        "lru": _policy_figures(fleet.policies["lru"]),
        "planner": _policy_figures(fleet.policies["planner"]),
        "per_worker": [
            {"name": name, "lru": results["lru"].gpu_hit_rate, "planner": results["planner"].gpu_hit_rate}
            for name, results in fleet.workers.items()
        ],
    }


def _replay_windows(workers: list, origin: datetime) -> dict:
    """worker id -> its windows that start in the replayed day, times in seconds from `origin`."""
    by_worker: dict = {worker.id: [] for worker in workers}
    rows = (
        TelemetryWindow.objects.filter(window_start__gte=origin, requests__gt=0)
        .values_list("worker_id", "adapter_version_id", "window_start", "window_end", "requests")
        .iterator(chunk_size=10_000)
    )
    for worker_id, version_id, start, end, requests in rows:
        by_worker.setdefault(worker_id, []).append(
            telemetry_replay.Window(
                str(version_id), (start - origin).total_seconds(), (end - origin).total_seconds(), requests
            )
        )
    return by_worker


def _replay_plan_interval(workers: int) -> float:
    day = REPLAY_HOURS * 3600.0
    return max(float(settings.RESIDENCY_PLAN_INTERVAL_SECONDS), day * max(workers, 1) / REPLAY_MAX_PLANS)


def _policy_figures(result) -> dict:
    return {
        "requests": result.requests,
        "gpu_hits": result.gpu_hits,
        "gpu_hit_rate": result.gpu_hit_rate,
        "hourly": result.hourly_rates(),
        "hourly_requests": result.hourly_requests,
    }


# --- What the next plan will change --------------------------------------------------------------


def _next_plan_context() -> dict:
    preview = residency_preview()
    rows = []
    for name, desired in preview.desired.items():
        current = preview.current.get(name)
        rows.append(_worker_changes(name, current, desired))
    links = _version_links(
        ref
        for row in rows
        for tier in row["tiers"]
        for ref in tier["load"][:CHANGES_SHOWN] + tier["unload"][:CHANGES_SHOWN]
    )
    for row in rows:
        for tier in row["tiers"]:
            for side in ("load", "unload"):
                tier[f"{side}_shown"] = _linked([{"ref": ref} for ref in tier[side][:CHANGES_SHOWN]], links)
    return {"preview": preview, "workers": rows, "changing": sum(1 for row in rows if row["changes"])}


def _refs(desired: dict | None, tier: str) -> list:
    return [entry["ref"] for entry in (desired or {}).get(tier, [])]


def _worker_changes(name: str, current: WorkerDesiredState | None, desired: dict) -> dict:
    """Per tier the refs the next plan loads and unloads, against the worker's newest stored state."""
    before = current.desired if current is not None else None
    tiers = []
    for tier, label in CHANGE_TIERS:
        old, new = _refs(before, tier), _refs(desired, tier)
        old_set, new_set = set(old), set(new)
        load = [ref for ref in new if ref not in old_set]
        unload = [ref for ref in old if ref not in new_set]
        if load or unload:
            tiers.append({"tier": tier, "label": label, "load": load, "unload": unload})
    pins = _pin_changes(before, desired)
    return {
        "name": name,
        "planned_before": current is not None,
        "changes": current is None or current.digest != desired["digest"],
        "tiers": tiers,
        "pinned": pins["pinned"],
        "unpinned": pins["unpinned"],
    }


def _pin_changes(before: dict | None, desired: dict) -> dict:
    """GPU entries kept on the GPU whose pinning flips (SGLang reloads them; vLLM does not pin)."""
    old = {entry["ref"]: bool(entry.get("pinned")) for entry in (before or {}).get("gpu", [])}
    new = {entry["ref"]: bool(entry.get("pinned")) for entry in desired.get("gpu", [])}
    flipped = [ref for ref in new if ref in old and old[ref] != new[ref]]
    return {"pinned": sum(1 for ref in flipped if new[ref]), "unpinned": sum(1 for ref in flipped if not new[ref])}
