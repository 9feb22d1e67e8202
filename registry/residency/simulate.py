"""Replay a request trace against serving workers and count GPU hits, host hits and loads.

Model (kept simple on purpose, so the numbers are easy to check by hand):
- W workers; each has a GPU tier (a number of slots, or a number of bytes) and an optional host
  tier of the same kind. Every worker serves every base: base affinity is the planner's concern.
- Routing: a request goes to the least-loaded worker (fewest requests so far, lowest index on ties)
  among those holding the adapter in GPU; else among those holding it in host memory; else among
  all workers. With W = 1 routing is trivial. This is what a load-aware, cache-aware router
  (llm-d style) does with engine caches that react only.
- On the chosen worker: a GPU hit; or a host hit (the entry moves host -> GPU, counted in
  `host_loads`); or a miss (loaded from disk into GPU, counted in `loads` and `bytes_loaded`).
  Entries evicted from GPU move to the host tier if there is one; the host tier evicts by the
  same policy and those entries are dropped. An adapter larger than a tier is not kept in it.
- Policies decide only which resident entry a tier evicts (`EvictionPolicy`):
  lru    least recently used (vLLM's and SGLang's engine caches).
  lfu    least frequently used since it entered this tier, ties broken by least recent use.
  belady evict the entry whose next use (over the whole trace) is furthest in the future. With
         one worker, equal sizes and demand loading this is the offline optimum (MIN); with
         unequal sizes or several workers it is a clairvoyant heuristic reference, not an optimum.
  planner re-plans every --plan-interval from the past only (registry/residency/replay.py) with
          the engine's LRU between plans; --half-life and --long-half-life shape its forecast.

`max_worker_share` is the busiest worker's share of all requests (1/W is the fair share; the
issue's target is max_worker_share ≤ 1.2 / W); `max_worker_share_vs_fair` is that share × W.
"""

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from typing import Protocol

from registry.residency.eviction import BeladyPolicy, LFUPolicy, LRUPolicy

POLICIES = ("lru", "lfu", "belady", "planner")
TRACE_COLUMNS = ["ts", "adapter", "base", "bytes"]
NEVER = math.inf


class TraceError(ValueError):
    """The trace file cannot be replayed; the message says which line and why."""


@dataclass
class Trace:
    ts: list
    adapter: list  # adapter ids as they appear in the CSV (strings)
    base: list
    bytes: list  # ints


def load_trace(path: str) -> Trace:
    """Read and validate `ts,adapter,base,bytes` (header exactly, ts non-decreasing, bytes > 0); `-` is stdin."""
    try:
        handle = (
            open(sys.stdin.fileno(), newline="", encoding="utf-8", closefd=False)
            if path == "-"
            else open(path, newline="", encoding="utf-8")
        )
    except OSError as error:
        raise TraceError(f"cannot read trace {path}: {error.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != TRACE_COLUMNS:
            raise TraceError(f"{path}: header must be {','.join(TRACE_COLUMNS)}, got {','.join(header or [])!r}")
        trace = Trace([], [], [], [])
        previous = -math.inf
        for line, row in enumerate(reader, start=2):
            previous = _append_row(trace, row, line, previous, path)
    return trace


def _append_row(trace: Trace, row: list, line: int, previous: float, path: str) -> float:
    if len(row) != 4:
        raise TraceError(f"{path}:{line}: expected 4 columns, got {len(row)}")
    try:
        ts, size = float(row[0]), int(row[3])
    except ValueError:
        raise TraceError(f"{path}:{line}: ts must be a number and bytes an integer") from None
    if not ts >= previous:  # also refuses NaN
        raise TraceError(f"{path}:{line}: ts {row[0]} is before the previous row's; ts must be non-decreasing")
    if size <= 0 or not row[1]:
        raise TraceError(f"{path}:{line}: adapter must be non-empty and bytes > 0")
    trace.ts.append(ts)
    trace.adapter.append(row[1])
    trace.base.append(row[2])
    trace.bytes.append(size)
    return ts


def next_uses(adapters: list) -> list:
    """next_use[i]: index of the next request for adapters[i] after i (NEVER if none); one backward pass."""
    result = [NEVER] * len(adapters)
    seen = {}
    for index in range(len(adapters) - 1, -1, -1):
        key = adapters[index]
        result[index] = seen.get(key, NEVER)
        seen[key] = index
    return result


def policy_factory(name: str, trace: Trace):
    """A function that makes one fresh policy per tier (each tier orders only its own entries)."""
    if name == "lru":
        return LRUPolicy
    if name == "lfu":
        return LFUPolicy
    if name == "belady":
        upcoming = next_uses(trace.adapter)
        return lambda: BeladyPolicy(upcoming)
    raise ValueError(f"unknown policy {name!r}")


# --- tiers and workers ------------------------------------------------------------------------


class Tier:
    """Resident entries within a capacity of `slots` entries or `capacity_bytes` bytes."""

    def __init__(self, policy, slots=None, capacity_bytes=None):
        self.policy = policy
        self.slots = slots
        self.capacity_bytes = capacity_bytes
        self.entries = {}  # key -> bytes
        self.last_used = {}  # key -> index of the request that last used it (Belady's next use follows from it)
        self.used_bytes = 0
        self.pinned = set()  # entries a plan pinned: held, but out of the policy's reach until unpinned

    def fits_alone(self, size: int) -> bool:
        if self.capacity_bytes is not None:
            return size <= self.capacity_bytes
        return self.slots >= 1

    def over_capacity(self, extra_entries=0, extra_bytes=0) -> bool:
        if self.slots is not None:
            return len(self.entries) + extra_entries > self.slots
        return self.used_bytes + extra_bytes > self.capacity_bytes

    def touch(self, key, index):
        self.last_used[key] = index
        if key not in self.pinned:
            self.policy.touch(key, index)

    def insert(self, key, size: int, index: int) -> list:
        """Make room by evicting, then add; returns the evicted (key, size, last used index) triples.

        `index` is the request that last used `key` (for a demoted entry, its own last use, not the
        request that pushed it out), so Belady's next use stays the entry's own. When only pinned
        entries are left to evict, `key` is not kept (the request is served without caching it)."""
        if not self.fits_alone(size):
            return []
        evicted = []
        while self.over_capacity(1, size):
            if len(self.entries) == len(self.pinned):
                return evicted
            victim = self.policy.victim()
            evicted.append((victim, *self.remove(victim)))
        self.entries[key] = size
        self.used_bytes += size
        self.touch(key, index)
        return evicted

    def remove(self, key) -> tuple:
        """Drop `key`; returns (size, index of its last use)."""
        size = self.entries.pop(key)
        self.used_bytes -= size
        if key in self.pinned:
            self.pinned.discard(key)
        else:
            self.policy.remove(key)
        return size, self.last_used.pop(key)

    def pin(self, key):
        """Keep a resident entry until `unpin_all` (SGLang's pinned adapters): the policy forgets it."""
        if key not in self.pinned:
            self.policy.remove(key)
            self.pinned.add(key)

    def unpin_all(self):
        for key in sorted(self.pinned, key=self.last_used.__getitem__):
            self.pinned.discard(key)
            self.policy.touch(key, self.last_used[key])

    def check(self):
        """Capacity invariant, for tests: never more entries or bytes than the tier holds."""
        assert not self.over_capacity(), f"tier over capacity: {len(self.entries)} entries, {self.used_bytes} bytes"


@dataclass
class Counts:
    gpu_hits: int = 0
    host_hits: int = 0
    misses: int = 0
    loads: int = 0
    bytes_loaded: int = 0
    host_loads: int = 0
    host_bytes_loaded: int = 0
    plan_loads: int = 0  # loads a plan made ahead of demand (prefetches), from disk into GPU or host
    plan_bytes_loaded: int = 0


class Worker:
    def __init__(self, gpu: Tier, host: Tier | None):
        self.gpu = gpu
        self.host = host
        self.requests = 0

    def serve(self, key, size: int, index: int, counts: Counts):
        self.requests += 1
        if key in self.gpu.entries:
            counts.gpu_hits += 1
            self.gpu.touch(key, index)
            return
        if self.host is not None and key in self.host.entries:
            counts.host_hits += 1
            counts.host_loads += 1
            counts.host_bytes_loaded += size
            self.host.remove(key)
        else:
            counts.misses += 1
            counts.loads += 1
            counts.bytes_loaded += size
        for evicted, evicted_size, last_used in self.gpu.insert(key, size, index):
            self.demote(evicted, evicted_size, last_used)

    def demote(self, key, size: int, last_used: int):
        """A GPU eviction keeps a host copy when there is a host tier (what vLLM's max_cpu_loras does)."""
        if self.host is not None:
            self.host.insert(key, size, last_used)

    def check(self):
        self.gpu.check()
        if self.host is not None:
            self.host.check()


def route(workers: list, key) -> Worker:
    """Least-loaded worker holding the adapter in GPU, else in host memory, else any worker."""
    if len(workers) == 1:
        return workers[0]
    holders = [worker for worker in workers if key in worker.gpu.entries]
    if not holders:
        holders = [worker for worker in workers if worker.host is not None and key in worker.host.entries]
    return min(holders or workers, key=lambda worker: worker.requests)


@dataclass
class Capacity:
    gpu_slots: int | None = None
    gpu_bytes: int | None = None
    host_slots: int | None = None
    host_bytes: int | None = None


def build_workers(count: int, capacity: Capacity, make_policy) -> list:
    has_host = capacity.host_slots is not None or capacity.host_bytes is not None
    return [
        Worker(
            Tier(make_policy(), capacity.gpu_slots, capacity.gpu_bytes),
            Tier(make_policy(), capacity.host_slots, capacity.host_bytes) if has_host else None,
        )
        for _ in range(count)
    ]


class Replanner(Protocol):
    """Where a planner plugs in (`--policy planner` passes registry.residency.replay.PlannerReplay).

    Between plans the engines' own cache handles misses with `eviction` (the issue says LRU);
    `replan` runs before the first request and then whenever `plan_interval` seconds of trace time
    have passed, sees only the requests before `index` (the past), and may move entries between
    the workers' tiers (`Tier.insert` / `Tier.remove` / `Tier.pin`). Its wall time is reported as
    `plan_seconds`; loads it makes ahead of demand go into `counts.plan_loads` and
    `counts.plan_bytes_loaded` (kept apart from `loads`, which are demand misses)."""

    eviction: str

    def replan(self, now: float, index: int, trace: Trace, pool: list, counts: "Counts") -> None: ...


def simulate(
    trace: Trace,
    policy: str,
    workers: int,
    capacity: Capacity,
    check_invariants=False,
    replanner: Replanner | None = None,
    plan_interval: float = 60.0,
) -> dict:
    """Replay `trace`; with check_invariants every tier's capacity is asserted after each request."""
    make_policy = policy_factory(replanner.eviction if replanner else policy, trace)
    pool = build_workers(workers, capacity, make_policy)
    counts = Counts()
    plan_seconds, next_plan = 0.0, -math.inf
    for index, (key, size) in enumerate(zip(trace.adapter, trace.bytes, strict=True)):
        if replanner is not None and trace.ts[index] >= next_plan:
            started = time.perf_counter()
            replanner.replan(trace.ts[index], index, trace, pool, counts)
            plan_seconds += time.perf_counter() - started
            next_plan = trace.ts[index] + plan_interval
        route(pool, key).serve(key, size, index, counts)
        if check_invariants:
            for worker in pool:
                worker.check()
    return summary(policy, len(trace.adapter), counts, pool, plan_seconds)


def summary(policy: str, requests: int, counts: Counts, pool: list, plan_seconds: float = 0.0) -> dict:
    share = max(worker.requests for worker in pool) / requests if requests else 0.0
    rate = (lambda n: n / requests) if requests else (lambda n: 0.0)
    return {
        "policy": policy,
        "requests": requests,
        "workers": len(pool),
        "gpu_hits": counts.gpu_hits,
        "host_hits": counts.host_hits,
        "misses": counts.misses,
        "gpu_hit_rate": rate(counts.gpu_hits),
        "host_hit_rate": rate(counts.host_hits),
        "miss_rate": rate(counts.misses),
        "loads": counts.loads,
        "bytes_loaded": counts.bytes_loaded,
        "host_loads": counts.host_loads,
        "host_bytes_loaded": counts.host_bytes_loaded,
        "plan_loads": counts.plan_loads,
        "plan_bytes_loaded": counts.plan_bytes_loaded,
        "plan_seconds": plan_seconds,
        "max_worker_share": share,
        "max_worker_share_vs_fair": share * len(pool),
    }


# --- command line -----------------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments answer one line on stderr and exit 2 (argparse's default prints the usage too)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m registry.residency.simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--trace", required=True, help="CSV with columns ts,adapter,base,bytes (- reads stdin)")
    parser.add_argument("--policy", required=True, choices=POLICIES)
    parser.add_argument("--workers", type=positive_int, default=1)
    gpu = parser.add_mutually_exclusive_group(required=True)
    gpu.add_argument("--gpu-slots", type=positive_int, help="adapters each worker's GPU holds")
    gpu.add_argument("--gpu-bytes", type=positive_int, help="bytes of adapters each worker's GPU holds")
    host = parser.add_mutually_exclusive_group()
    host.add_argument("--host-slots", type=positive_int, help="adapters each worker's host memory holds")
    host.add_argument("--host-bytes", type=positive_int, help="bytes of adapters each worker's host memory holds")
    parser.add_argument(
        "--plan-interval", type=positive_float, default=10.0, help="seconds between re-plans (planner only)"
    )
    parser.add_argument(
        "--half-life",
        type=positive_float,
        default=5.0,
        help="short half-life of the demand forecast, seconds (planner)",
    )
    parser.add_argument(
        "--long-half-life",
        type=positive_float,
        default=1800.0,
        help="long half-life of the forecast, seconds (planner)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def format_table(result: dict, seconds: float) -> str:
    rows = [
        ("policy", result["policy"]),
        ("requests", f"{result['requests']:,}"),
        ("workers", result["workers"]),
        ("gpu hit rate", f"{result['gpu_hit_rate']:.4f}"),
        ("host hit rate", f"{result['host_hit_rate']:.4f}"),
        ("miss rate", f"{result['miss_rate']:.4f}"),
        ("loads from disk", f"{result['loads']:,} ({result['bytes_loaded']:,} bytes)"),
        ("loads from host", f"{result['host_loads']:,} ({result['host_bytes_loaded']:,} bytes)"),
        ("loads by plans", f"{result['plan_loads']:,} ({result['plan_bytes_loaded']:,} bytes, ahead of demand)"),
        ("planning time", f"{result['plan_seconds']:.2f} s"),
        (
            "busiest worker",
            f"{result['max_worker_share']:.4f} of requests ({result['max_worker_share_vs_fair']:.2f} × fair share)",
        ),
        ("simulated in", f"{seconds:.2f} s"),
    ]
    return "\n".join(f"{label:<16} {value}" for label, value in rows)


def run(trace: Trace, args, capacity: Capacity) -> dict:
    if args.policy != "planner":
        return simulate(trace, args.policy, args.workers, capacity)
    from registry.residency.replay import PlannerReplay

    replay = PlannerReplay(
        trace, args.workers, capacity, short_half_life=args.half_life, long_half_life=args.long_half_life
    )
    return simulate(trace, "planner", args.workers, capacity, replanner=replay, plan_interval=args.plan_interval)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    capacity = Capacity(args.gpu_slots, args.gpu_bytes, args.host_slots, args.host_bytes)
    started = time.perf_counter()
    try:
        trace = load_trace(args.trace)
        result = run(trace, args, capacity)
    except TraceError as error:
        parser.error(str(error))
    elapsed = time.perf_counter() - started
    print(json.dumps(result) if args.json else format_table(result, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
