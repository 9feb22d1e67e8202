"""Residency planner against the engines' own caches, and the planner's time and memory at scale.

(a) GPU hit rates on generated traces (registry/residency/traces.py) with 10,000 adapters, one
    worker, GPU capacity for 1% and 5% of the adapters (slots; for the rank mix, bytes: that
    share of all adapters' bytes), no host tier: `lru` and `lfu` (engine caches), `belady` (the
    clairvoyant reference; exact optimum with equal sizes and one worker), `planner` (re-plans
    every --plan-interval seconds of trace time from the past only, the engine's LRU between
    plans), and `static` — the hit rate of the best fixed set chosen knowing each adapter's true
    request count over the whole trace. Under the independent reference model (every trace here
    except drift draws each request independently) no online policy can beat `static` by more
    than noise (the A0 policy is optimal for IRM), so where `static` itself is below 0.90 ×
    Belady the target cannot be met by any policy that sees only the past; the table shows it.
    Targets (issue 12): planner ≥ lru and ≥ lfu on every trace; ≥ 0.90 × Belady on stationary
    Zipf; ≥ 0.85 × Belady on drifting popularity.
(b) Load balance with 8 workers (Zipf s = 1.0, per-worker capacity 1% and 5%): hit rates and
    max_worker_share as a multiple of the fair share (target ≤ 1.2).
(c) Planner time and peak memory for 10^4, 10^5 and 10^6 candidate adapters on 100 workers
    (4 bases, each worker serving 2; rank mix; 64 GPU slots, 2,000 host slots and 200 GiB of disk
    each), each in a fresh process pinned to one core. Target: 10^6 × 100 under 10 s and 2 GB.

Run: .venv/bin/python benchmarks/residency.py [--requests 500000] [--plan-interval 10] [--skip-scale]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import OUT, machine_description  # noqa: E402

from registry.residency import traces  # noqa: E402
from registry.residency.replay import PlannerReplay  # noqa: E402
from registry.residency.simulate import Capacity, Trace, simulate  # noqa: E402

ADAPTERS = 10_000
TRACES = [
    ("zipf s=0.8", "stationary", {"popularity": "zipf", "s": 0.8}),
    ("zipf s=1.0", "stationary", {"popularity": "zipf", "s": 1.0}),
    ("zipf s=1.2", "stationary", {"popularity": "zipf", "s": 1.2}),
    ("zipf s=1.5", "stationary", {"popularity": "zipf", "s": 1.5}),
    ("slora α=0.1", "other", {"popularity": "slora", "alpha": 0.1}),
    ("slora α=0.3", "other", {"popularity": "slora", "alpha": 0.3}),
    ("slora α=0.6", "other", {"popularity": "slora", "alpha": 0.6}),
    ("slora α=1 (uniform)", "other", {"popularity": "slora", "alpha": 1.0}),
    ("drift s=1.0 period 100,000", "drift", {"popularity": "drift", "s": 1.0, "drift_period": 100_000}),
    ("drift s=1.0 period 10,000", "drift", {"popularity": "drift", "s": 1.0, "drift_period": 10_000}),
    ("zipf s=1.0 bursty cv=4", "stationary", {"popularity": "zipf", "s": 1.0, "cv": 4.0}),
    ("zipf s=1.0 bursty cv=8", "stationary", {"popularity": "zipf", "s": 1.0, "cv": 8.0}),
    ("zipf s=1.0 rank mix (bytes)", "other", {"popularity": "zipf", "s": 1.0, "sizes": "rank-mix"}),
]
TARGET = {"stationary": 0.90, "drift": 0.85}


def as_trace(generated) -> Trace:
    return Trace(
        generated.ts.tolist(),
        [str(a) for a in generated.adapter.tolist()],
        [str(b) for b in generated.base.tolist()],
        generated.bytes.tolist(),
    )


def capacity_for(generated, fraction: float) -> Capacity:
    if len(np.unique(generated.bytes)) == 1:
        return Capacity(gpu_slots=max(1, round(fraction * ADAPTERS)))
    sizes = np.zeros(ADAPTERS, np.int64)
    sizes[generated.adapter] = generated.bytes
    sizes[sizes == 0] = int(np.median(generated.bytes))  # adapters never requested: their size does not matter
    return Capacity(gpu_bytes=int(fraction * sizes.sum()))


def static_best(generated, capacity: Capacity) -> float:
    """Hit rate of the fixed GPU set chosen with each adapter's true count (greedy by count per room)."""
    counts = np.bincount(generated.adapter, minlength=ADAPTERS).astype(np.float64)
    if capacity.gpu_slots is not None:
        return float(np.sort(counts)[::-1][: capacity.gpu_slots].sum() / counts.sum())
    sizes = np.ones(ADAPTERS, np.int64)
    sizes[generated.adapter] = generated.bytes
    order = np.argsort(-counts / sizes, kind="stable")
    keep = np.cumsum(sizes[order]) <= capacity.gpu_bytes
    return float(counts[order][keep].sum() / counts.sum())


def planner_result(trace, workers, capacity, plan_interval):
    replay = PlannerReplay(trace, workers, capacity)
    result = simulate(trace, "planner", workers, capacity, replanner=replay, plan_interval=plan_interval)
    result["plans"], result["drifts"] = replay.plans, replay.drifts
    return result


def hit_rates(requests: int, plan_interval: float) -> list:
    rows = []
    for name, kind, options in TRACES:
        generated = traces.generate(n_adapters=ADAPTERS, n_requests=requests, seed=0, **options)
        trace = as_trace(generated)
        for fraction in (0.01, 0.05):
            capacity = capacity_for(generated, fraction)
            row = {"trace": name, "kind": kind, "options": options, "capacity": fraction, "requests": requests}
            for policy in ("lru", "lfu", "belady"):
                row[policy] = simulate(trace, policy, 1, capacity)["gpu_hit_rate"]
            planned = planner_result(trace, 1, capacity, plan_interval)
            row.update(
                planner=planned["gpu_hit_rate"],
                plan_seconds=planned["plan_seconds"],
                plans=planned["plans"],
                drifts=planned["drifts"],
                plan_loads=planned["plan_loads"],
                demand_loads=planned["loads"],
                static=static_best(generated, capacity),
            )
            row["vs_belady"] = row["planner"] / row["belady"] if row["belady"] else 1.0
            # A tie within two standard errors of the difference counts as a tie (uniform popularity:
            # every policy that cannot see the future holds capacity / N in expectation).
            best_cache = max(row["lru"], row["lfu"])
            row["noise"] = 2 * (2 * best_cache * (1 - best_cache) / requests) ** 0.5
            row["beats_caches"] = row["planner"] >= best_cache - row["noise"]
            row["target"] = TARGET.get(kind)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def balance(requests: int, plan_interval: float) -> list:
    generated = traces.generate(n_adapters=ADAPTERS, n_requests=requests, seed=0, popularity="zipf", s=1.0)
    trace = as_trace(generated)
    rows = []
    for fraction in (0.01, 0.05):
        capacity = Capacity(gpu_slots=round(fraction * ADAPTERS))
        row = {"workers": 8, "capacity_per_worker": fraction}
        for policy in ("lru", "lfu"):
            result = simulate(trace, policy, 8, capacity)
            row[policy] = result["gpu_hit_rate"]
            row[f"{policy}_share_vs_fair"] = result["max_worker_share_vs_fair"]
        result = planner_result(trace, 8, capacity, plan_interval)
        row["planner"] = result["gpu_hit_rate"]
        row["planner_share_vs_fair"] = result["max_worker_share_vs_fair"]
        row["plan_seconds"] = result["plan_seconds"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def plan_at_scale(n: int, workers: int) -> dict:
    """Runs in a child process pinned to one core: build candidates, plan, re-plan with the previous plan."""
    from registry.residency.planner import Candidates, WorkerSpec, plan

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = np.random.default_rng(0)
    ranks = rng.choice([8, 16, 32, 64], size=n, p=[0.4, 0.3, 0.2, 0.1])
    demand = 1.0 / np.arange(1, n + 1)
    rng.shuffle(demand)
    started = time.perf_counter()
    candidates = Candidates.build(
        refs=[f"ns{i % 100}/adapter-{i}@sha256:{i:064x}" for i in range(n)],
        bases=[f"base-{i % 4}" for i in range(n)],
        sizes=ranks * traces.bytes_per_rank(),
        ranks=ranks,
        demand=demand,
    )
    built = time.perf_counter() - started
    specs = [
        WorkerSpec(
            f"w{w}",
            frozenset({f"base-{w % 4}", f"base-{(w + 1) % 4}"}),
            gpu_slots=64,
            max_rank=64 if w % 2 else 32,
            host_slots=2000,
            disk_bytes=200 << 30,
        )
        for w in range(workers)
    ]
    first = plan(candidates, specs)
    noisy = candidates.demand * rng.uniform(0.9, 1.1, n)
    candidates.demand = noisy
    second = plan(candidates, specs, previous=first)
    return {
        "adapters": n,
        "workers": workers,
        "build_seconds": built,
        "plan_seconds": first.plan_seconds,
        "replan_seconds": second.plan_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "gpu_entries": sum(len(p.gpu) for p in first.workers.values()),
        "host_entries": sum(len(p.host) for p in first.workers.values()),
        "disk_entries": sum(len(p.disk) for p in first.workers.values()),
        "expected_gpu_hit_rate": first.expected_gpu_hit_rate,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM): ru_maxrss would carry over the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale() -> list:
    rows = []
    for n in (10_000, 100_000, 1_000_000):
        child = subprocess.run(
            [sys.executable, __file__, "--plan-scale", str(n)], capture_output=True, text=True, check=True, cwd=ROOT
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(hits: list, balanced: list, scaled: list, args) -> str:
    lines = [
        f"Machine: {machine_description()}. Command: `.venv/bin/python benchmarks/residency.py "
        f"--requests {args.requests} --plan-interval {args.plan_interval:g}`.",
        "",
        f"(a) One worker, {ADAPTERS:,} adapters, {args.requests:,} requests at 100/s (seed 0), GPU hit rates:",
        "",
        "| trace | GPU capacity | LRU | LFU | Belady | planner | planner / Belady | static best | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in hits:
        target = f"≥ {row['target']:.2f} × Belady" if row["target"] else "≥ LRU, LFU"
        met = row["beats_caches"] and (row["target"] is None or row["vs_belady"] >= row["target"])
        lines.append(
            f"| {row['trace']} | {row['capacity']:.0%} | {row['lru']:.4f} | {row['lfu']:.4f} | {row['belady']:.4f} "
            f"| **{row['planner']:.4f}** | {row['vs_belady']:.3f} | {row['static']:.4f} | {target}: "
            f"{'met' if met else 'NOT met'} |"
        )
    lines += [
        "",
        "(b) 8 workers, Zipf s = 1.0, capacity per worker:",
        "",
        "| capacity | LRU hit | LRU max share × W | LFU hit | LFU max share × W | planner hit | planner max share × W |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in balanced:
        lines.append(
            f"| {row['capacity_per_worker']:.0%} | {row['lru']:.4f} | {row['lru_share_vs_fair']:.3f} | {row['lfu']:.4f} "
            f"| {row['lfu_share_vs_fair']:.3f} | **{row['planner']:.4f}** | **{row['planner_share_vs_fair']:.3f}** |"
        )
    lines += [
        "",
        "(c) Planner at scale, 100 workers, one core:",
        "",
        "| candidates | build inputs | plan | re-plan (with previous) | peak RSS | GPU / host / disk entries |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in scaled:
        lines.append(
            f"| {row['adapters']:,} | {row['build_seconds']:.2f} s | **{row['plan_seconds']:.2f} s** "
            f"| {row['replan_seconds']:.2f} s | **{row['peak_rss_mb']:.0f} MB** "
            f"| {row['gpu_entries']:,} / {row['host_entries']:,} / {row['disk_entries']:,} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500_000)
    parser.add_argument("--plan-interval", type=float, default=10.0)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--plan-scale", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plan_scale:
        print(json.dumps(plan_at_scale(args.plan_scale, 100)))
        return 0
    hits = hit_rates(args.requests, args.plan_interval)
    balanced = balance(args.requests, args.plan_interval)
    scaled = [] if args.skip_scale else scale()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "residency.json").write_text(json.dumps({"hits": hits, "balance": balanced, "scale": scaled}, indent=1))
    report = markdown(hits, balanced, scaled, args)
    (OUT / "residency.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
