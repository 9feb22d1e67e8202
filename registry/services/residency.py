"""Residency plans: gather the planner's input from the database, plan, store the plan, announce it.

`residency_replan` is the one writer of ResidencyPlan and WorkerDesiredState. Called by the Celery
task `residency.replan` (periodic, and after alias moves: `residency_replan_soon`) and by the API's
manual trigger. Replans are serialised by a PostgreSQL advisory lock held for the transaction, so
two never interleave and each compares against the one before it.

Inputs (registry/residency/planner.py does the deciding, with no Django):
- candidates: the adapter versions some alias points at, as primary or canary, whose base some
  serving worker serves; nothing else is ever planned.
- demand: telemetry decayed by RESIDENCY_HALF_LIFE_SECONDS (registry/residency/forecast.py), then
  split by each alias's canary weight: an alias's demand (its primary's plus its canary's) goes
  (100 - w)% to the primary and w% to the canary, so a brand-new canary with no telemetry of its
  own is warm before the router sends it traffic. Telemetry counts a version's requests whatever
  alias they came through, so a version several aliases point at takes the largest of its shares,
  never their sum.
- pins (ResidencyPin), and each worker's previous desired state for the planner's hysteresis.
"""

import hashlib
import json
import logging
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from registry.audit.services import audit_chain_lock, audit_record
from registry.broker import publish_task
from registry.models import (
    AdapterAlias,
    AdapterVersion,
    ResidencyPin,
    ResidencyPlan,
    ServingWorker,
    WorkerDesiredState,
)
from registry.residency import planner
from registry.residency.actions import adapter_path
from registry.residency.forecast import canary_split, decayed_rates
from registry.residency.planner import Candidates, PlanConfig, WorkerSpec
from registry.services.telemetry import telemetry_demand_rows
from registry.webhooks.services import webhook_emit

logger = logging.getLogger(__name__)

TIERS = ("gpu", "host", "disk")
REPLAN_TASK = "residency.replan"  # registry/residency_tasks.py, by name: services never import tasks
# pg_advisory_xact_lock takes a bigint; any fixed number no other lock in this database uses.
REPLAN_LOCK_KEY = int.from_bytes(hashlib.sha256(b"registry.residency.replan").digest()[:8], "big", signed=True)
PERIODIC = "periodic"  # the beat's trigger (registry/residency_tasks.py default)
MANUAL = "manual"  # an admin's re-plan (API, UI): always stored
# A periodic re-plan that changes no worker is stored only when the latest plan is older than this,
# so the plan's figures (expected hit rates, demand) stay fresh without a plan every minute.
PERIODIC_REFRESH_SECONDS = 3600
# Telemetry older than this many half-lives weighs under 2^-20 of a fresh count: not read at all.
TELEMETRY_HALF_LIVES = 20


@dataclass(frozen=True)
class CandidateVersion:
    """The columns of an adapter version the planner reads (full model rows cost 30x more at 10,000)."""

    id: uuid.UUID
    digest_ref: str
    base_version_id: uuid.UUID
    total_bytes: int
    r: int | None


@dataclass
class CandidateInput:
    """The planner's candidate rows, built from the database (parallel lists, one row per version)."""

    versions: list = field(default_factory=list)  # CandidateVersion rows, by digest_ref
    demand: list = field(default_factory=list)
    evidence: list = field(default_factory=list)
    pinned: list = field(default_factory=list)
    pin_workers: list = field(default_factory=list)
    ignored_pins: list = field(default_factory=list)  # pins on versions no alias serves on a served base

    def planner_candidates(self) -> Candidates:
        return Candidates.build(
            refs=[v.digest_ref for v in self.versions],
            bases=[str(v.base_version_id) for v in self.versions],
            sizes=[max(int(v.total_bytes), 1) for v in self.versions],
            demand=self.demand,
            ranks=[int(v.r or 0) for v in self.versions],
            pinned=self.pinned,
            pin_workers=self.pin_workers,
            evidence=self.evidence,
        )


# --- Triggers --------------------------------------------------------------------------------------


def residency_replan_soon(*, trigger: str) -> None:
    """Ask for a re-plan once the current transaction commits (alias moves call this).

    Debounced without shared state: the task runs RESIDENCY_REPLAN_DEBOUNCE_SECONDS later and carries
    the time it was asked for; one that finds a plan started after that time skips, since that plan
    already saw this change. A burst of moves thus costs one plan, however many messages it sent.
    """
    transaction.on_commit(partial(_enqueue_replan, trigger), robust=True)


def _enqueue_replan(trigger: str) -> None:
    """Publish `residency.replan` (registry/broker.py: safe from any gunicorn thread); on a broker error
    the periodic re-plan covers this change, so the move that asked is not failed for it."""
    try:
        publish_task(
            REPLAN_TASK,
            [trigger, timezone.now().isoformat()],
            "cpu",
            countdown=settings.RESIDENCY_REPLAN_DEBOUNCE_SECONDS,
        )
    except Exception:
        logger.exception("could not queue a residency re-plan (%s); the periodic re-plan will cover it", trigger)


# --- The re-plan -----------------------------------------------------------------------------------


def residency_replan(*, trigger: str, unless_planned_since: datetime | None = None) -> ResidencyPlan | None:
    """Plan the whole fleet now, store the plan and each worker's desired state, announce the changes.

    Returns the plan stored, or the latest one when nothing is stored: with `unless_planned_since`
    and a plan started at or after that time (the debounce of residency_replan_soon), and for a
    periodic re-plan that changes no worker while the latest plan is younger than
    PERIODIC_REFRESH_SECONDS (a plan, its rows and its audit event every minute would say nothing
    new), and, unless an admin asked (trigger "manual"), when no serving worker is registered (None
    when no plan exists yet): alias moves in a registry that serves no fleet record nothing.
    """
    with transaction.atomic():
        _replan_lock()
        latest = ResidencyPlan.objects.order_by("-created_at", "-id").first()
        if unless_planned_since is not None and latest is not None and latest.created_at >= unless_planned_since:
            return latest
        started = timezone.now()  # before any input is read: the debounce compares against it
        workers = list(ServingWorker.objects.prefetch_related("base_versions").order_by("name"))
        if not workers and trigger != MANUAL:
            return latest
        candidates = residency_candidates(workers, now=started)
        previous = _latest_states(workers)
        result, planned = _plan(workers, candidates, previous)
        states = _desired_states(workers, result, planned, previous)
        if trigger == PERIODIC and _nothing_new(states, latest, started):
            return latest
        return _store(trigger, started, candidates, planned, result, states, previous)


def _nothing_new(states: list, latest: ResidencyPlan | None, now: datetime) -> bool:
    if latest is None or any(state.changed for state in states):
        return False
    return (now - latest.created_at).total_seconds() < PERIODIC_REFRESH_SECONDS


@dataclass(frozen=True)
class ResidencyPreview:
    """What a re-plan would store now, computed without storing or announcing anything."""

    planned_at: datetime
    candidates: int
    expected_gpu_hit_rate: float | None
    plan_seconds: float
    desired: dict  # worker name -> the desired state the next plan would store (with digest)
    current: dict  # worker name -> its newest stored WorkerDesiredState (absent: never planned)


def residency_preview(*, now: datetime | None = None) -> ResidencyPreview:
    """A dry run of residency_replan on the current inputs (the Residency page's "next plan" diff).

    Reads exactly what a re-plan reads and plans the same way, hysteresis included, but takes no
    lock, writes no row, audit event or webhook.
    """
    now = now or timezone.now()
    workers = list(ServingWorker.objects.prefetch_related("base_versions").order_by("name"))
    candidates = residency_candidates(workers, now=now)
    previous = _latest_states(workers)
    result, planned = _plan(workers, candidates, previous)
    desired = {}
    for worker in workers:
        state = _desired_with_paths(result, worker.name, planned, previous.get(worker.name))
        desired[worker.name] = {**state, "digest": residency_state_digest(state)}
    return ResidencyPreview(
        planned_at=now,
        candidates=len(candidates.versions),
        expected_gpu_hit_rate=_finite(result.expected_gpu_hit_rate),
        plan_seconds=result.plan_seconds,
        desired=desired,
        current=previous,
    )


def _replan_lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REPLAN_LOCK_KEY])


def _worker_spec(worker: ServingWorker) -> WorkerSpec:
    return WorkerSpec(
        name=worker.name,
        bases=frozenset(str(base.id) for base in worker.base_versions.all()),
        gpu_slots=worker.gpu_slots,
        gpu_bytes=worker.gpu_bytes,
        max_rank=worker.max_rank,
        host_slots=worker.host_slots,
        host_bytes=worker.host_bytes,
        disk_bytes=worker.disk_bytes,
    )


def _plan(workers: list, candidates: CandidateInput, previous: dict):
    planned = candidates.planner_candidates()
    specs = [_worker_spec(worker) for worker in workers]
    result = planner.plan(
        planned,
        specs,
        previous={name: _held_refs(state.desired) for name, state in previous.items()} or None,
        config=PlanConfig(),
    )
    return result, planned


def _latest_states(workers: list) -> dict:
    """worker name -> its newest WorkerDesiredState (PostgreSQL DISTINCT ON: one index scan per worker)."""
    rows = (
        WorkerDesiredState.objects.filter(worker__in=workers)
        .order_by("worker_id", "-plan_id")
        .distinct("worker_id")
        .select_related("worker")
    )
    return {row.worker.name: row for row in rows}


# --- Candidates and their demand -------------------------------------------------------------------


def residency_candidates(workers: list, *, now: datetime) -> CandidateInput:
    """Every version an alias points at on a base some worker serves, with its forecast demand and pins."""
    served_bases = {base.id for worker in workers for base in worker.base_versions.all()}
    aliases = list(
        AdapterAlias.objects.values("adapter_id", "name", "version_id", "canary_version_id", "canary_weight")
    )
    # A correlated EXISTS, not `id IN (every alias target)`: binding 10,000 ids cost a second.
    aliased = AdapterAlias.objects.filter(Q(version_id=OuterRef("id")) | Q(canary_version_id=OuterRef("id")))
    rows = AdapterVersion.objects.filter(Exists(aliased), base_version_id__in=served_bases).values_list(
        "id", "adapter__namespace", "adapter__name", "digest", "base_version_id", "total_bytes", "r"
    )
    versions = sorted(
        (
            CandidateVersion(vid, f"{namespace}/{name}@sha256:{digest}", base, size, r)
            for vid, namespace, name, digest, base, size, r in rows
        ),
        key=lambda version: version.digest_ref,
    )
    observed = _observed_rates(now)
    shares = _alias_shares(aliases, observed)
    pinned, pin_workers, ignored = _pins(versions, aliases)
    demand = [shares.get(v.id, 0.0) for v in versions]
    return CandidateInput(
        versions=versions,
        demand=demand,
        evidence=[_evidence(rate) for rate in demand],
        pinned=[v.id in pinned for v in versions],
        pin_workers=[pin_workers.get(v.id) for v in versions],
        ignored_pins=ignored,
    )


def _observed_rates(now: datetime) -> dict:
    """version id -> decayed requests per second from every worker's telemetry (forecast.decayed_rates),
    read as arrays in one statement (services/telemetry.py telemetry_demand_rows)."""
    half_life = _half_life()
    rows = telemetry_demand_rows(now - timedelta(seconds=half_life * TELEMETRY_HALF_LIVES))
    if not rows.versions:
        return {}
    ages = now.timestamp() - rows.window_end
    rates = decayed_rates(rows.codes, ages, rows.requests, n=len(rows.versions), half_life_seconds=half_life)
    return {uuid.UUID(version): rate for version, rate in zip(rows.versions, rates.tolist(), strict=True)}


def _half_life() -> float:
    return float(settings.RESIDENCY_HALF_LIFE_SECONDS)


def _evidence(rate: float) -> float:
    """The decayed request count a rate rests on (the planner pins only forecasts with enough behind them)."""
    return rate * _half_life() / math.log(2)


def _alias_shares(aliases: list, observed: dict) -> dict:
    """version id -> demand: per alias, its total split by the canary weight; a version's largest share."""
    shares: dict = {}
    for row in aliases:
        primary, canary = row["version_id"], row["canary_version_id"]
        if canary is None or canary == primary:
            parts = [(primary, observed.get(primary, 0.0))]
        else:
            total = observed.get(primary, 0.0) + observed.get(canary, 0.0)
            to_primary, to_canary = canary_split(total, row["canary_weight"] / 100.0)
            parts = [(primary, to_primary), (canary, to_canary)]
        for version_id, share in parts:
            shares[version_id] = max(shares.get(version_id, 0.0), share)
    return shares


def _pins(versions: list, aliases: list) -> tuple[set, dict, list]:
    """(pinned version ids, version id -> the one worker its pins name or None for all, ignored pins).

    An alias pin pins what the alias serves now, canary included. Pins naming different workers for
    one version pin it on every eligible worker: a superset of what each asked for.
    """
    candidate_ids = {v.id for v in versions}
    served_by_alias: dict = {}
    for row in aliases:
        served_by_alias.setdefault((row["adapter_id"], row["name"]), []).extend(
            [v for v in (row["version_id"], row["canary_version_id"]) if v]
        )
    named: dict = {}
    ignored = []
    for pin in ResidencyPin.objects.select_related("worker", "adapter_version__adapter", "adapter"):
        targets = (
            [pin.adapter_version_id] if pin.adapter_version_id else served_by_alias.get((pin.adapter_id, pin.alias), [])
        )
        kept = [t for t in targets if t in candidate_ids]
        if not kept:
            ignored.append(pin.target)
        for version_id in kept:
            named.setdefault(version_id, set()).add(pin.worker.name if pin.worker_id else None)
    pin_workers = {vid: next(iter(names)) if len(names) == 1 else None for vid, names in named.items()}
    return set(named), pin_workers, ignored


# --- Storing and announcing ------------------------------------------------------------------------


def residency_state_digest(desired: dict) -> str:
    """What a worker must hold, hashed: tier, ref and pinning, in a fixed order (RFC 8785 JSON).

    Demand figures, expected hit rates and the order within a tier move with every telemetry window;
    they are not a change the worker has to act on, so they stay out of the digest.
    """
    held = {
        tier: sorted([entry["ref"], bool(entry.get("pinned", False))] for entry in desired.get(tier, []))
        for tier in TIERS
    }
    # Only ASCII refs and booleans: json.dumps with sorted keys and no spaces is byte for byte the RFC
    # 8785 form here, and ten times faster than rfc8785.dumps on a worker with thousands of entries.
    canonical = json.dumps(held, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(canonical).hexdigest()


def _held_refs(desired: dict) -> dict:
    """A stored desired state as the planner takes a previous one: {tier: [refs]}."""
    return {tier: [entry["ref"] for entry in desired.get(tier, [])] for tier in TIERS}


def _desired_with_paths(result, name: str, planned, previous_state) -> dict:
    previous = _held_refs(previous_state.desired) if previous_state is not None else None
    desired = result.desired_state(name, planned, previous=previous)
    for tier in TIERS:
        for entry in desired[tier]:
            entry["path"] = adapter_path(entry["ref"])
    desired["planned_load"] = float(result.workers[name].planned_load)
    return desired


def _desired_states(workers: list, result, planned, previous: dict) -> list[WorkerDesiredState]:
    """One unsaved WorkerDesiredState per worker, `changed` against its previous one."""
    states = []
    for worker in workers:
        before = previous.get(worker.name)
        desired = _desired_with_paths(result, worker.name, planned, before)
        digest = residency_state_digest(desired)
        states.append(
            WorkerDesiredState(
                worker=worker,
                desired=desired,
                digest=digest,
                expected_gpu_hit_rate=_finite(desired.get("expected_gpu_hit_rate")),
                changed=before is None or before.digest != digest,
            )
        )
    return states


def _store(trigger, started, candidates, planned, result, states, previous) -> ResidencyPlan:
    audit_chain_lock()  # the chain's head before the rows: the order every recording transaction keeps
    plan = ResidencyPlan.objects.create(
        created_at=started,
        trigger=trigger[:64],
        config={**asdict(result.config), "half_life_seconds": _half_life()},
        candidates=len(candidates.versions),
        expected_gpu_hit_rate=_finite(result.expected_gpu_hit_rate),
        plan_seconds=result.plan_seconds,
        summary=_summary(result, planned, candidates, states),
    )
    for state in states:
        state.plan = plan
    for state in states:  # one INSERT each: bulk_create's UNNEST dumps the large JSON values 3x slower
        state.save(force_insert=True)
    _announce(plan, states, previous)
    return plan


def _finite(value) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _counts(desired: dict) -> dict:
    return {tier: len(desired.get(tier, [])) for tier in (*TIERS, "evict")}


def _summary(result, planned, candidates: CandidateInput, states: list) -> dict:
    totals = {tier: sum(_counts(s.desired)[tier] for s in states) for tier in (*TIERS, "evict")}
    return {
        "workers": len(states),
        "changed_workers": [s.worker.name for s in states if s.changed],
        "total_demand": _finite(result.total_demand),
        **totals,
        "unplaced_pins": [planned.refs[i] for i in result.unplaced_pins],
        "ignored_pins": candidates.ignored_pins,
    }


def _announce(plan: ResidencyPlan, states: list, previous: dict) -> None:
    """One audit event for the plan (counts, not the plan), one webhook per worker whose state changed."""
    audit_record(
        type="residency.plan",
        object_type="residency_plan",
        object_id=str(plan.id),
        after={
            "trigger": plan.trigger,
            "candidates": plan.candidates,
            "expected_gpu_hit_rate": plan.expected_gpu_hit_rate,
            **{key: plan.summary[key] for key in ("workers", "changed_workers", *TIERS, "evict")},
        },
        reason=f"residency re-plan ({plan.trigger})",
    )
    for state in states:
        if not state.changed:
            continue
        before = previous.get(state.worker.name)
        webhook_emit(
            "residency.plan_changed",
            {
                "worker": state.worker.name,
                "engine": state.worker.engine,
                "plan": plan.id,
                "planned_at": plan.created_at.isoformat(),
                "trigger": plan.trigger,
                "digest": state.digest,
                "previous_digest": before.digest if before is not None else None,
                "counts": _counts(state.desired),
                "expected_gpu_hit_rate": state.expected_gpu_hit_rate,
                "plan_url": f"/api/v1/residency/workers/{state.worker.name}/plan",
            },
        )
