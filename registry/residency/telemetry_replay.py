"""Replay a day of serving telemetry against the engines' LRU and against the planner.

Plain Python and NumPy, no Django (the Residency page reads the rows and calls this).

Telemetry says how many requests an adapter had on a worker in a window, not when each came, so
each window's requests are spread evenly over it: n requests in [start, end) arrive at
start + (k + 1/2) · (end - start) / n for k = 0 … n-1. All windows' requests are then interleaved
by time, ties broken by adapter key and then by window start, so the same rows always give the
same trace. A day that holds more than `max_requests` is scaled down by one factor for the whole
fleet: the requests are taken in that order and every (1/factor)-th is kept (cumulative rounding),
so each window keeps its proportional share, even a window of one request now and then.

Each worker's trace is replayed on its own, at its own GPU capacity (slots, else bytes), once with
the engine's LRU (`simulate(..., "lru")`) and once with the planner re-planning every
`plan_interval` seconds of trace time from the past only (`replay.PlannerReplay`), LRU between
plans. Hourly GPU hit rates are read off the simulator's replanner hook: a recorder called before
each request notes the hits counted so far whenever a request crosses into a new hour.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from registry.residency.replay import PlannerReplay
from registry.residency.simulate import Capacity, Trace, simulate

MAX_REQUESTS = 200_000
HOUR = 3600.0
POLICIES = ("lru", "planner")
# The recorder runs before every request that is later than the one before; a step far below any
# window's spacing of requests, so no request is skipped, and far above float resolution at 1 day.
_EVERY_REQUEST = 1e-6


@dataclass(frozen=True)
class Window:
    """Telemetry of one adapter on one worker: `requests` over [start, end), seconds since `origin`."""

    adapter: str
    start: float
    end: float
    requests: int


@dataclass(frozen=True)
class WorkerCapacity:
    gpu_slots: int | None = None
    gpu_bytes: int | None = None

    def simulated(self) -> Capacity:
        """The simulator's tier counts either slots or bytes; slots (vLLM's max_loras) when both are set."""
        if self.gpu_slots is not None:
            return Capacity(gpu_slots=self.gpu_slots)
        return Capacity(gpu_bytes=self.gpu_bytes)


@dataclass
class PolicyResult:
    """One policy's replay: totals and, per hour of the day, requests and GPU hits."""

    requests: int = 0
    gpu_hits: int = 0
    hourly_requests: list = field(default_factory=list)
    hourly_hits: list = field(default_factory=list)
    plan_seconds: float = 0.0

    @property
    def gpu_hit_rate(self) -> float | None:
        return self.gpu_hits / self.requests if self.requests else None

    def hourly_rates(self) -> list:
        return [hits / n if n else None for hits, n in zip(self.hourly_hits, self.hourly_requests, strict=True)]

    def add(self, other: "PolicyResult") -> None:
        self.requests += other.requests
        self.gpu_hits += other.gpu_hits
        self.plan_seconds += other.plan_seconds
        self.hourly_requests = [a + b for a, b in zip(self.hourly_requests, other.hourly_requests, strict=True)]
        self.hourly_hits = [a + b for a, b in zip(self.hourly_hits, other.hourly_hits, strict=True)]


@dataclass
class FleetReplay:
    hours: int
    requests_seen: int  # in the telemetry
    requests_replayed: int  # after scaling
    scale: float  # 1.0: every request replayed
    plan_interval: float
    policies: dict  # "lru" | "planner" -> PolicyResult, the fleet's sums
    workers: dict  # worker name -> {"lru": PolicyResult, "planner": PolicyResult}

    @property
    def scaled(self) -> bool:
        return self.scale < 1.0


def scale_for(total_requests: int, max_requests: int = MAX_REQUESTS) -> float:
    return 1.0 if total_requests <= max_requests else max_requests / total_requests


def build_trace(windows: list, sizes: dict, bases: dict, scale: float = 1.0) -> Trace:
    """The request trace of `windows` (see the module note); `sizes` and `bases` are keyed by adapter."""
    kept = [w for w in windows if w.requests > 0 and w.end > w.start]
    if not kept:
        return Trace([], [], [], [])
    keys = sorted({w.adapter for w in kept})
    code_of = {key: code for code, key in enumerate(keys)}
    codes = np.array([code_of[w.adapter] for w in kept], np.int64)
    starts = np.array([w.start for w in kept], np.float64)
    ends = np.array([w.end for w in kept], np.float64)
    counts = _scaled_counts(np.array([w.requests for w in kept], np.int64), codes, starts, scale)
    per_request = np.repeat(np.arange(len(kept)), counts)
    position = np.arange(per_request.size) - np.repeat(np.cumsum(counts) - counts, counts)  # k within its window
    spacing = (ends - starts)[per_request] / counts[per_request]
    times = starts[per_request] + (position + 0.5) * spacing
    order = np.lexsort((starts[per_request], codes[per_request], times))  # time, then adapter, then window
    adapters = [keys[code] for code in codes[per_request][order].tolist()]
    return Trace(
        ts=times[order].tolist(),
        adapter=adapters,
        base=[str(bases.get(key, "")) for key in adapters],
        bytes=[max(int(sizes.get(key) or 1), 1) for key in adapters],
    )


def _scaled_counts(requests: np.ndarray, codes: np.ndarray, starts: np.ndarray, scale: float) -> np.ndarray:
    """Every (1/scale)-th request, counted in (start, adapter) order: totals stay proportional."""
    if scale >= 1.0:
        return requests
    order = np.lexsort((codes, starts))
    cumulative = np.cumsum(requests[order])
    kept = np.floor(cumulative * scale) - np.floor((cumulative - requests[order]) * scale)
    counts = np.empty_like(requests)
    counts[order] = kept.astype(np.int64)
    return counts


class _HourlyRecorder:
    """A simulator replanner that notes the GPU hits counted before each new hour, and passes the
    planner's own re-plans through every `plan_interval` seconds (None: the engine's LRU alone)."""

    eviction = "lru"

    def __init__(self, hours: int, planner: PlannerReplay | None, plan_interval: float):
        self.marks = [None] * (hours + 1)  # hour -> (requests before it, hits before it)
        self.planner = planner
        self.plan_interval = plan_interval
        self.next_plan = -math.inf
        self.next_hour = 0

    def replan(self, now: float, index: int, trace: Trace, pool: list, counts) -> None:
        while self.next_hour < len(self.marks) - 1 and now >= self.next_hour * HOUR:
            self.marks[self.next_hour] = (index, counts.gpu_hits)
            self.next_hour += 1
        if self.planner is not None and now >= self.next_plan:
            self.planner.replan(now, index, trace, pool, counts)
            self.next_plan = now + self.plan_interval

    def result(self, summary: dict) -> PolicyResult:
        end = (summary["requests"], summary["gpu_hits"])
        marks = [mark for mark in self.marks[: self.next_hour]] + [end] * (len(self.marks) - self.next_hour)
        return PolicyResult(
            requests=summary["requests"],
            gpu_hits=summary["gpu_hits"],
            hourly_requests=[marks[h + 1][0] - marks[h][0] for h in range(len(marks) - 1)],
            hourly_hits=[marks[h + 1][1] - marks[h][1] for h in range(len(marks) - 1)],
            plan_seconds=summary["plan_seconds"],
        )


def replay_trace(
    trace: Trace,
    capacity: WorkerCapacity,
    policy: str,
    *,
    hours: int = 24,
    plan_interval: float = 60.0,
    short_half_life: float = 60.0,
    long_half_life: float = 1800.0,
) -> PolicyResult:
    """One worker's trace (times in seconds from the first hour's start) under `policy`, hour by hour."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    if not trace.adapter:
        return PolicyResult(hourly_requests=[0] * hours, hourly_hits=[0] * hours)
    simulated = capacity.simulated()
    planner = None
    if policy == "planner":
        planner = PlannerReplay(trace, 1, simulated, short_half_life=short_half_life, long_half_life=long_half_life)
    recorder = _HourlyRecorder(hours, planner, plan_interval)
    summary = simulate(trace, policy, 1, simulated, replanner=recorder, plan_interval=_EVERY_REQUEST)
    return recorder.result(summary)


def replay_fleet(
    workers: dict,
    sizes: dict,
    bases: dict,
    *,
    hours: int = 24,
    max_requests: int = MAX_REQUESTS,
    plan_interval: float = 60.0,
    short_half_life: float = 60.0,
    long_half_life: float = 1800.0,
) -> FleetReplay:
    """`workers`: name -> (windows, WorkerCapacity); every worker replayed on its own, the fleet summed."""
    seen = sum(w.requests for windows, _ in workers.values() for w in windows)
    scale = scale_for(seen, max_requests)
    totals = {policy: PolicyResult(hourly_requests=[0] * hours, hourly_hits=[0] * hours) for policy in POLICIES}
    per_worker = {}
    for name, (windows, capacity) in sorted(workers.items()):
        trace = build_trace(windows, sizes, bases, scale)
        per_worker[name] = {}
        for policy in POLICIES:
            result = replay_trace(
                trace,
                capacity,
                policy,
                hours=hours,
                plan_interval=plan_interval,
                short_half_life=short_half_life,
                long_half_life=long_half_life,
            )
            per_worker[name][policy] = result
            totals[policy].add(result)
    return FleetReplay(
        hours=hours,
        requests_seen=seen,
        requests_replayed=totals["lru"].requests,
        scale=scale,
        plan_interval=plan_interval,
        policies=totals,
        workers=per_worker,
    )
