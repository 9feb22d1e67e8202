"""The residency planner: which adapters each serving worker keeps in GPU, in host memory and on disk.

Plain Python and NumPy, no Django: the registry's re-plan task (registry/services/residency.py)
and the simulator (`--policy planner`) call the same `plan`.

Inputs
- `Candidates`: one row per adapter version some alias serves (parallel arrays: ref, base, bytes,
  LoRA rank, forecast demand in requests per second, pinned by policy).
- `WorkerSpec`s: each serving worker's bases, GPU slots and/or bytes, max LoRA rank, host and disk
  budgets.
- The previous plan (for hysteresis) and a `PlanConfig`.

How it plans (greedy on a value density, which is the textbook approximation for a knapsack and
exact for equal sizes):
1. Pins first: a pinned adapter goes into GPU on every eligible worker (or the one its pin names).
2. Priority = demand × (expected load seconds)^load_cost_weight / room, where room is 1 for slot
   capacity or the adapter's bytes relative to the mean for byte capacity. So a high-rank adapter
   counts for more per request (its miss costs a longer load) and for less per byte (it takes
   more room). Incumbents (in GPU in the previous plan) get × (1 + hysteresis): a challenger must
   be clearly hotter to displace one, so plans do not churn on noise.
3. GPU placement in priority order: an adapter goes on `replicas` eligible workers (base served,
   rank ≤ max rank, room left), preferring the workers that held it before and otherwise the least
   loaded; replicas = ⌈demand / (replicate_fraction × the base's fair load per worker)⌉ so a hot adapter's
   traffic is spread and no worker gets far more than its fair share. Only the GPU loop is Python;
   it runs once per placed replica (bounded by the fleet's GPU slots), cheap skips otherwise.
4. Host and disk tiers, vectorised: the remaining adapters in priority order, each to one eligible
   worker chosen by a stable hash of its ref (so inserting one adapter does not reshuffle every
   other), cut at each worker's budget.
5. The hottest `pin_fraction` of each worker's GPU capacity, less `reserve_slots` (one slot, or
   room for the largest planned adapter), is marked pinned (SGLang `pinned`; the simulator never
   evicts them) if at least `min_evidence_to_pin` requests stand behind its
   forecast (`Candidates.evidence`); the rest of the GPU list is loaded but left to the engine's
   LRU, which handles what the forecast did not see coming.

Expected GPU hit rate = planned GPU demand / total demand (an adapter on any GPU can be routed to
it). Per worker: its share of GPU-hit traffic (an adapter's demand split over its replicas) plus
an even share of its bases' miss traffic.
"""

import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

TIERS = ("gpu", "host", "disk")


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    bases: frozenset
    gpu_slots: int | None = None
    gpu_bytes: int | None = None
    max_rank: int | None = None
    host_slots: int | None = None
    host_bytes: int | None = None
    disk_bytes: int | None = None

    def __post_init__(self):
        if self.gpu_slots is None and self.gpu_bytes is None:
            raise ValueError(f"worker {self.name}: give gpu_slots or gpu_bytes")
        for label in ("gpu_slots", "gpu_bytes", "max_rank", "host_slots", "host_bytes", "disk_bytes"):
            value = getattr(self, label)
            if value is not None and value < 0:
                raise ValueError(f"worker {self.name}: {label} must not be negative")

    @property
    def has_host(self) -> bool:
        return self.host_slots is not None or self.host_bytes is not None


@dataclass
class Candidates:
    """Parallel arrays, one row per candidate adapter version (build with `Candidates.build`)."""

    refs: list
    base_keys: list  # distinct bases; `base` holds indices into it
    base: np.ndarray  # int32
    sizes: np.ndarray  # int64 bytes
    ranks: np.ndarray  # int32 LoRA rank (0 when unknown)
    demand: np.ndarray  # float64 forecast requests per second
    pinned: np.ndarray  # bool
    pin_workers: list | None = None  # per row: a worker name the pin names, or None for every eligible worker
    evidence: np.ndarray | None = None  # per row: requests the forecast rests on (None: plenty for every row)
    _index: dict | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, refs, bases, sizes, demand, ranks=None, pinned=None, pin_workers=None, evidence=None
    ) -> "Candidates":
        n = len(refs)
        base_keys, base = np.unique(np.asarray(bases, dtype=object).astype(str), return_inverse=True)
        candidates = cls(
            refs=list(refs),
            base_keys=[str(key) for key in base_keys],
            base=base.astype(np.int32).reshape(n),
            sizes=np.asarray(sizes, dtype=np.int64).reshape(n),
            ranks=np.zeros(n, np.int32) if ranks is None else np.asarray(ranks, dtype=np.int32).reshape(n),
            demand=np.asarray(demand, dtype=np.float64).reshape(n),
            pinned=np.zeros(n, bool) if pinned is None else np.asarray(pinned, dtype=bool).reshape(n),
            pin_workers=None if pin_workers is None else list(pin_workers),
            evidence=None if evidence is None else np.asarray(evidence, dtype=np.float64).reshape(n),
        )
        candidates.validate()
        return candidates

    def validate(self) -> None:
        n = len(self.refs)
        if n and (self.sizes.min() <= 0):
            raise ValueError("every candidate needs a positive size in bytes")
        if n and (not np.all(np.isfinite(self.demand)) or self.demand.min() < 0):
            raise ValueError("demand must be finite and not negative")
        if self.pin_workers is not None and len(self.pin_workers) != n:
            raise ValueError("pin_workers must have one entry per candidate")

    def __len__(self) -> int:
        return len(self.refs)

    def index_of(self, ref: str) -> int | None:
        if self._index is None:
            self._index = {ref: index for index, ref in enumerate(self.refs)}
        return self._index.get(ref)


@dataclass(frozen=True)
class PlanConfig:
    hysteresis: float = 0.25
    replicate_fraction: float = 0.5
    pin_fraction: float = 1.0
    min_evidence_to_pin: float = 3.0
    reserve_slots: int = 1  # GPU room never pinned, left to the engine's LRU (see _hottest_fraction)
    load_cost_weight: float = 1.0
    load_fixed_seconds: float = 0.05
    load_bytes_per_second: float = 2e9


@dataclass
class WorkerPlan:
    name: str
    gpu: np.ndarray  # candidate indices, hottest first
    pinned: np.ndarray  # bool, parallel to gpu
    host: np.ndarray
    disk: np.ndarray
    expected_gpu_hit_rate: float = 0.0
    expected_share: float = 0.0
    planned_load: float = 0.0  # forecast requests per second this worker serves from GPU

    def tier_of(self) -> dict:
        """candidate index -> tier name (gpu wins over host over disk)."""
        held = {int(i): "disk" for i in self.disk}
        held.update({int(i): "host" for i in self.host})
        held.update({int(i): "gpu" for i in self.gpu})
        return held


@dataclass
class Plan:
    workers: dict  # name -> WorkerPlan, in the order the specs came
    expected_gpu_hit_rate: float
    total_demand: float
    plan_seconds: float
    unplaced_pins: list  # candidate indices a pin asked for but no eligible worker had room for
    config: PlanConfig

    def desired_state(self, name: str, candidates: Candidates, previous: dict | None = None) -> dict:
        """A worker's declarative state keyed by refs; `evict` lists what `previous` held that this plan drops."""
        plan = self.workers[name]
        state = {
            "gpu": [
                _entry(candidates, i, pinned=bool(p))
                for i, p in zip(plan.gpu.tolist(), plan.pinned.tolist(), strict=True)
            ],
            "host": [_entry(candidates, i) for i in plan.host.tolist()],
            "disk": [_entry(candidates, i) for i in plan.disk.tolist()],
            "expected_gpu_hit_rate": plan.expected_gpu_hit_rate,
            "expected_share": plan.expected_share,
        }
        kept = {entry["ref"] for tier in TIERS for entry in state[tier]}
        state["evict"] = sorted(
            {_ref_of(item) for tier in TIERS for item in (previous or {}).get(tier, []) if _ref_of(item) not in kept}
        )
        return state

    def routes(self, candidates: Candidates, indices=None) -> dict:
        """ref -> worker names that hold it: GPU holders least planned load first, then host, then disk."""
        holders: dict[int, list] = {}
        for tier in TIERS:
            ordered = (
                sorted(self.workers.values(), key=lambda plan: plan.planned_load)
                if tier == "gpu"
                else self.workers.values()
            )
            for plan in ordered:
                for index in getattr(plan, tier).tolist():
                    names = holders.setdefault(index, [])
                    if plan.name not in names:
                        names.append(plan.name)
        wanted = holders.keys() if indices is None else [int(i) for i in indices]
        return {candidates.refs[i]: holders.get(i, []) for i in wanted}

    def gpu_sets(self) -> dict:
        return {name: set(plan.gpu.tolist()) for name, plan in self.workers.items()}


def _ref_of(item) -> str:
    return item["ref"] if isinstance(item, dict) else item


def _entry(candidates: Candidates, index: int, pinned: bool | None = None) -> dict:
    entry = {
        "ref": candidates.refs[index],
        "bytes": int(candidates.sizes[index]),
        "rank": int(candidates.ranks[index]),
        "demand": float(candidates.demand[index]),
    }
    if pinned is not None:
        entry["pinned"] = pinned
    return entry


# --- the plan -----------------------------------------------------------------------------------


def plan(candidates: Candidates, workers: list, previous=None, config: PlanConfig | None = None) -> "Plan":
    """Plan residency; `previous` is a Plan over the same candidates, or {worker: {tier: [refs]}}."""
    config = config or PlanConfig()
    started = time.perf_counter()
    names = [spec.name for spec in workers]
    if len(set(names)) != len(names):
        raise ValueError("worker names must be unique")
    fleet = _Fleet(candidates, workers)
    previous_gpu = _previous_gpu_holders(previous, candidates, names)
    priority = _priority(candidates, fleet, config)
    boosted = priority.copy()
    if previous_gpu:
        incumbents = np.fromiter(previous_gpu.keys(), dtype=np.int64, count=len(previous_gpu))
        boosted[incumbents] *= 1.0 + config.hysteresis
    order = np.argsort(-boosted, kind="stable")

    gpu = _GpuPlacement(candidates, fleet, config)
    unplaced_pins = gpu.place_pins(order)
    gpu.place(order, boosted, previous_gpu)
    gpu.restore_moves(previous_gpu)
    in_gpu = gpu.placed_anywhere()

    rest = order[~in_gpu[order]]
    host = _spread(candidates, fleet, rest, "host")
    in_host = np.zeros(len(candidates), bool)
    for assigned in host:
        in_host[assigned] = True
    disk = _spread(candidates, fleet, rest[~in_host[rest]], "disk")

    result = _assemble(candidates, fleet, gpu, host, disk, config)
    result.unplaced_pins = unplaced_pins
    result.plan_seconds = time.perf_counter() - started
    return result


class _Fleet:
    """Per-worker capacities as arrays and which workers may hold which (base, rank)."""

    def __init__(self, candidates: Candidates, workers: list):
        self.specs = list(workers)
        count = len(self.specs)
        base_index = {key: b for b, key in enumerate(candidates.base_keys)}
        self.serves = np.zeros((len(candidates.base_keys), count), bool)  # [base, worker]
        for w, spec in enumerate(self.specs):
            for key in spec.bases:
                if key in base_index:
                    self.serves[base_index[key], w] = True
        self.max_rank = np.array([math.inf if s.max_rank is None else s.max_rank for s in self.specs], np.float64)
        self.by_name = {spec.name: w for w, spec in enumerate(self.specs)}

    def capacity(self, tier: str) -> tuple[np.ndarray, np.ndarray]:
        """(slots, bytes) per worker for a tier; inf where unbounded, 0 where the tier is absent."""
        slots, size = [], []
        for spec in self.specs:
            if tier == "disk":
                s, b = (math.inf, spec.disk_bytes) if spec.disk_bytes is not None else (0, 0)
            else:
                s, b = getattr(spec, f"{tier}_slots"), getattr(spec, f"{tier}_bytes")
                if s is None and b is None:
                    s, b = 0, 0
                s = math.inf if s is None else s
                b = math.inf if b is None else b
            slots.append(s)
            size.append(b)
        return np.array(slots, np.float64), np.array(size, np.float64)

    def eligible(self, base: int, rank: int) -> np.ndarray:
        return self.serves[base] & (self.max_rank >= rank)

    def uses_bytes(self, tier: str) -> bool:
        return any(getattr(spec, f"{tier}_bytes") is not None for spec in self.specs)


def _priority(candidates: Candidates, fleet: _Fleet, config: PlanConfig) -> np.ndarray:
    sizes = candidates.sizes.astype(np.float64)
    load_seconds = config.load_fixed_seconds + sizes / config.load_bytes_per_second
    value = candidates.demand * load_seconds**config.load_cost_weight
    if fleet.uses_bytes("gpu") and len(sizes):
        value = value / (sizes / sizes.mean())
    servable = fleet.serves.any(axis=1)[candidates.base] if len(candidates) else np.zeros(0, bool)
    return np.where(servable, value, 0.0)


def _previous_gpu_holders(previous, candidates: Candidates, names: list) -> dict:
    """candidate index -> set of worker indices that held it in GPU in the previous plan."""
    if previous is None:
        return {}
    position = {name: w for w, name in enumerate(names)}
    holders: dict[int, set] = {}
    if isinstance(previous, Plan):
        for name, worker_plan in previous.workers.items():
            if name in position:
                for index in worker_plan.gpu.tolist():
                    if index < len(candidates):
                        holders.setdefault(index, set()).add(position[name])
        return holders
    for name, state in previous.items():
        if name not in position:
            continue
        for item in state.get("gpu", []):
            index = candidates.index_of(_ref_of(item))
            if index is not None:
                holders.setdefault(index, set()).add(position[name])
    return holders


class _GpuPlacement:
    def __init__(self, candidates: Candidates, fleet: _Fleet, config: PlanConfig):
        self.c = candidates
        self.fleet = fleet
        self.config = config
        self.slots_free, self.bytes_free = fleet.capacity("gpu")
        self.load = np.zeros(len(fleet.specs))
        self.lists = [[] for _ in fleet.specs]  # per worker: (candidate index, pinned by policy)
        self.copies = np.zeros(len(candidates), np.int32)
        # Fair load per base (its demand over the workers serving it) and per worker (the sum over its
        # bases): replication and "stay where it was" compare against these, so demand moving on one
        # base never changes the plans of workers that do not serve it.
        per_base = np.bincount(candidates.base, weights=candidates.demand, minlength=len(candidates.base_keys))
        self.fair_by_base = per_base / np.maximum(fleet.serves.sum(axis=1), 1)
        self.fair_by_worker = fleet.serves.T.astype(np.float64) @ self.fair_by_base

    def room(self, index: int) -> np.ndarray:
        return (self.slots_free >= 1) & (self.bytes_free >= self.c.sizes[index])

    def put(self, index: int, workers, pinned: bool) -> None:
        share = float(self.c.demand[index]) / len(workers)
        for w in workers:
            self.slots_free[w] -= 1
            self.bytes_free[w] -= self.c.sizes[index]
            self.load[w] += share
            self.lists[w].append((index, pinned))
        self.copies[index] += len(workers)

    def place_pins(self, order: np.ndarray) -> list:
        unplaced = []
        pinned = np.flatnonzero(self.c.pinned)
        rank_in_order = np.empty(len(order), np.int64)
        rank_in_order[order] = np.arange(len(order))
        for index in pinned[np.argsort(rank_in_order[pinned], kind="stable")].tolist():
            eligible = self.fleet.eligible(int(self.c.base[index]), int(self.c.ranks[index]))
            named = self.c.pin_workers[index] if self.c.pin_workers else None
            if named is not None:
                only = np.zeros_like(eligible)
                if named in self.fleet.by_name:
                    only[self.fleet.by_name[named]] = True
                eligible &= only
            targets = np.flatnonzero(eligible & self.room(index))
            if len(targets) < int(eligible.sum()) or not len(targets):
                unplaced.append(index)
            if len(targets):
                self.put(index, targets.tolist(), pinned=True)
        return unplaced

    def place(self, order: np.ndarray, priority: np.ndarray, previous: dict) -> None:
        c, fleet = self.c, self.fleet
        min_size = float(c.sizes.min()) if len(c) else 0.0
        worker_open = (self.slots_free >= 1) & (self.bytes_free >= min_size)
        base_open = (fleet.serves & worker_open).any(axis=1)
        limits = self.config.replicate_fraction * self.fair_by_base
        for index in order.tolist():
            if priority[index] <= 0 or not base_open.any():
                break
            base = int(c.base[index])
            if not base_open[base] or self.copies[index]:
                continue
            eligible = fleet.eligible(base, int(c.ranks[index]))
            targets = np.flatnonzero(eligible & self.room(index))
            if not len(targets):
                continue
            limit = limits[base]
            wanted = 1 if limit <= 0 else max(1, math.ceil(float(c.demand[index]) / limit))
            chosen = self.choose(targets, min(wanted, int(eligible.sum())), previous.get(index, ()))
            self.put(index, chosen, pinned=False)
            for w in chosen:
                if self.slots_free[w] < 1 or self.bytes_free[w] < min_size:
                    worker_open[w] = False
            base_open = (fleet.serves & worker_open).any(axis=1)

    def choose(self, targets: np.ndarray, count: int, held_before) -> list:
        """`count` workers among `targets`: previous holders not far over their fair load first, then least loaded."""
        loads = self.load[targets]
        stay = np.array([w in held_before for w in targets.tolist()]) & (loads < 1.1 * self.fair_by_worker[targets])
        ranked = targets[np.lexsort((targets, loads, ~stay))]
        return ranked[:count].tolist()

    def restore_moves(self, previous: dict) -> int:
        """Undo moves the greedy pass made: an incumbent pushed off its old worker `b` onto `a`
        swaps back with an entry new to `b` that `a` can hold. One hot newcomer would otherwise
        push a chain of incumbents one worker along each. Returns the swaps made."""
        if not previous:
            return 0
        total = 0
        position = [{index: k for k, (index, _) in enumerate(entries)} for entries in self.lists]
        for _ in range(len(self.lists)):  # a chain is undone one link per pass at worst
            swaps = self._restore_pass(previous, position)
            total += swaps
            if not swaps:
                break
        return total

    def _restore_pass(self, previous: dict, position: list) -> int:
        swaps = 0
        for a, entries in enumerate(self.lists):
            for k in range(len(entries)):
                index, pinned = entries[k]
                if pinned or a in previous.get(index, ()):
                    continue
                for b in sorted(previous.get(index, ())):
                    partner = self._newcomer_to_swap(b, a, index, previous, position)
                    if partner is None:
                        continue
                    self._swap(a, k, b, position[b][partner], position)
                    swaps += 1
                    break
        return swaps

    def _newcomer_to_swap(self, b: int, a: int, index: int, previous: dict, position: list):
        """An entry on `b` that was not there before, can live on `a`, and leaves both within budget."""
        if index in position[b]:
            return None
        eligible_on_a = self.fleet.eligible
        for other, pinned in self.lists[b]:
            if pinned or b in previous.get(other, ()) or other in position[a]:
                continue
            if not eligible_on_a(int(self.c.base[other]), int(self.c.ranks[other]))[a]:
                continue
            delta = int(self.c.sizes[index]) - int(self.c.sizes[other])
            if self.bytes_free[a] + delta >= 0 and self.bytes_free[b] - delta >= 0:
                return other
        return None

    def _swap(self, a: int, k_a: int, b: int, k_b: int, position: list) -> None:
        index, other = self.lists[a][k_a][0], self.lists[b][k_b][0]
        self.lists[a][k_a], self.lists[b][k_b] = (other, False), (index, False)
        del position[a][index], position[b][other]
        position[a][other], position[b][index] = k_a, k_b
        delta = int(self.c.sizes[index]) - int(self.c.sizes[other])
        self.bytes_free[a] += delta
        self.bytes_free[b] -= delta
        moved = float(self.c.demand[index]) / self.copies[index] - float(self.c.demand[other]) / self.copies[other]
        self.load[a] -= moved
        self.load[b] += moved

    def placed_anywhere(self) -> np.ndarray:
        return self.copies > 0


SPREAD_ROUNDS = 4


def _spread(candidates: Candidates, fleet: _Fleet, order: np.ndarray, tier: str) -> list:
    """Host or disk lists: each adapter (in priority order) to one eligible worker by a stable hash
    of its ref, each worker's share cut at its budget; what was cut goes round again among the
    workers with room left (the hash shifted by the round), so a worker is not left empty because
    the hash happened to favour its neighbour. Returns per worker an index array in priority order."""
    slots_left, budget_left = fleet.capacity(tier)
    count = len(fleet.specs)
    if not len(order) or not np.any((slots_left > 0) & (budget_left > 0)):
        return [np.zeros(0, np.int64) for _ in range(count)]
    position = np.arange(len(order))  # priority position of each pending adapter
    hashes = _stable_hashes(candidates, order)
    groups = _eligibility_groups(candidates, fleet, order)
    taken: list[list] = [[] for _ in range(count)]
    for round_ in range(SPREAD_ROUNDS):
        room = (slots_left >= 1) & (budget_left > 0)
        if not len(position) or not room.any():
            break
        owner = _owners(fleet, groups, position, hashes + round_, room)
        placed = np.zeros(len(position), bool)
        for w in np.unique(owner[owner >= 0]).tolist():
            mine = np.flatnonzero(owner == w)
            sizes = candidates.sizes[order[position[mine]]]
            fits = np.arange(len(mine)) < slots_left[w] if math.isfinite(slots_left[w]) else np.ones(len(mine), bool)
            if math.isfinite(budget_left[w]):
                fits &= np.cumsum(sizes) <= budget_left[w]
            taken[w].append(position[mine[fits]])
            placed[mine[fits]] = True
            slots_left[w] -= int(fits.sum())
            budget_left[w] -= float(sizes[fits].sum())
        position, hashes, groups = position[~placed], hashes[~placed], groups[~placed]
    return [order[np.sort(np.concatenate(parts))] if parts else np.zeros(0, np.int64) for parts in taken]


def _eligibility_groups(candidates: Candidates, fleet: _Fleet, order: np.ndarray) -> np.ndarray:
    """Per adapter in `order` a group number: one group per (base, rank level), i.e. per set of
    eligible workers (levels: how many distinct worker rank limits the adapter's rank exceeds)."""
    levels = np.unique(fleet.max_rank)
    level = np.searchsorted(levels, candidates.ranks[order], side="left")
    return candidates.base[order].astype(np.int64) * (len(levels) + 1) + level


def _owners(
    fleet: _Fleet, groups: np.ndarray, position: np.ndarray, hashes: np.ndarray, room: np.ndarray
) -> np.ndarray:
    """Per pending adapter the worker its hash picks among the eligible workers with room (-1: none)."""
    levels = np.unique(fleet.max_rank)
    owner = np.full(len(position), -1, np.int64)
    for group in np.unique(groups).tolist():
        members = np.flatnonzero(groups == group)
        base, level = divmod(group, len(levels) + 1)
        rank_limit_ok = fleet.max_rank >= (levels[level] if level < len(levels) else math.inf)
        eligible = np.flatnonzero(fleet.serves[base] & rank_limit_ok & room)
        if len(eligible):
            owner[members] = eligible[hashes[members] % len(eligible)]
    return owner


def _stable_hashes(candidates: Candidates, order: np.ndarray) -> np.ndarray:
    """CRC-32 of each ref: stable across processes (Python's hash() is salted per process)."""
    refs = candidates.refs
    return np.fromiter((zlib.crc32(str(refs[i]).encode()) for i in order.tolist()), dtype=np.int64, count=len(order))


def _assemble(candidates, fleet, gpu: _GpuPlacement, host: list, disk: list, config: PlanConfig) -> Plan:
    servable = fleet.serves.any(axis=1)[candidates.base] if len(candidates) else np.zeros(0, bool)
    total = float(candidates.demand[servable].sum())
    planned = float(candidates.demand[gpu.placed_anywhere()].sum())
    miss_share = _miss_share(candidates, fleet, gpu, servable)
    slots, budget = fleet.capacity("gpu")
    workers = {}
    for w, spec in enumerate(fleet.specs):
        entries = gpu.lists[w]
        indices = np.array([i for i, _ in entries], np.int64)
        policy_pins = np.array([p for _, p in entries], bool)
        hits, misses = gpu.load[w], miss_share[w]
        workers[spec.name] = WorkerPlan(
            name=spec.name,
            gpu=indices,
            pinned=policy_pins
            | (
                _hottest_fraction(candidates, indices, slots[w], budget[w], config.pin_fraction, config.reserve_slots)
                & _supported(candidates, indices, config)
            ),
            host=host[w],
            disk=disk[w],
            expected_gpu_hit_rate=hits / (hits + misses) if hits + misses > 0 else 0.0,
            expected_share=(hits + misses) / total if total > 0 else 0.0,
            planned_load=hits,
        )
    return Plan(
        workers=workers,
        expected_gpu_hit_rate=planned / total if total > 0 else 0.0,
        total_demand=total,
        plan_seconds=0.0,
        unplaced_pins=[],
        config=config,
    )


def _miss_share(candidates, fleet, gpu: _GpuPlacement, servable: np.ndarray) -> np.ndarray:
    """Each base's unplanned demand spread evenly over the workers serving it."""
    share = np.zeros(len(fleet.specs))
    missed = servable & ~gpu.placed_anywhere()
    per_base = np.bincount(
        candidates.base[missed], weights=candidates.demand[missed], minlength=len(candidates.base_keys)
    )
    for base in np.flatnonzero(per_base).tolist():
        serving = np.flatnonzero(fleet.serves[base])
        share[serving] += per_base[base] / len(serving)
    return share


def _supported(candidates, indices: np.ndarray, config: PlanConfig) -> np.ndarray:
    """Pin only what enough requests stand behind: right after popularity moved, the forecast rests on
    seconds of traffic, and most of a GPU's worth of adapters chosen on one request each is noise
    the engine's LRU does better with."""
    if candidates.evidence is None:
        return np.ones(len(indices), bool)
    return candidates.evidence[indices] >= config.min_evidence_to_pin


def _hottest_fraction(
    candidates, indices: np.ndarray, slots: float, budget: float, fraction: float, reserve_slots: int = 1
) -> np.ndarray:
    """Mark the head of a GPU list (it is in priority order) up to `fraction` of the capacity, less a
    reserve the engine keeps for what the forecast did not see: `reserve_slots` slots, or room for the
    largest adapter in the list. With every slot pinned a newly hot adapter could not be cached at all
    until the next plan (and SGLang refuses to pin its last slot)."""
    keep = np.ones(len(indices), bool)
    if math.isfinite(slots):
        keep &= np.arange(len(indices)) < min(math.floor(fraction * slots), slots - reserve_slots)
    if math.isfinite(budget):
        largest = int(candidates.sizes[indices].max()) if len(indices) and reserve_slots else 0
        keep &= np.cumsum(candidates.sizes[indices]) <= min(fraction * budget, budget - largest)
    return keep
