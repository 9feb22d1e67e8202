"""The planner inside the simulator: `--policy planner` re-plans every plan interval from the past.

At each plan the requests since the last one feed two decayed counters, a short and a long
half-life (forecast.py). The long one is the demand forecast, and its decayed counts are the
evidence behind each adapter's forecast (the planner pins only adapters with enough of it).
Before planning, the last plan is scored out of sample: the share of the requests since it that
went to the adapters it put in GPU. When that share falls below `drift_threshold` × the previous
plan's share, popularity has moved: the long counter forgets its history and restarts from the
short one, so the next plan follows the new hot set within one plan interval instead of a long
half-life.

`planner.plan` then places adapters on the simulated workers (every worker serves every base in
the simulator), and the plan is applied to the workers' tiers the way `adapterctl residency apply`
applies it to an engine: planned GPU adapters are loaded (from host memory if a copy is there,
else from disk), hottest last so it is the most recently used, the supported part pinned; planned
host adapters are loaded into host memory. What the plan displaces is evicted by the engine's
own policy (LRU), which also handles misses between plans in the unpinned part of the GPU.

Loads a plan makes ahead of demand are counted apart (`plan_loads`, `plan_bytes_loaded`).
"""

import numpy as np

from registry.residency.forecast import DecayedCounter, drift_detected, planned_share
from registry.residency.planner import Candidates, PlanConfig, WorkerSpec, plan


class PlannerReplay:
    eviction = "lru"

    def __init__(
        self,
        trace,
        workers: int,
        capacity,
        config: PlanConfig | None = None,
        short_half_life: float = 5.0,
        long_half_life: float = 1800.0,
        drift_threshold: float = 0.7,
    ):
        keys, first, codes = np.unique(
            np.asarray(trace.adapter, dtype=object).astype(str), return_index=True, return_inverse=True
        )
        self.keys = keys.tolist()
        self.codes = codes.reshape(-1)
        self.sizes = np.asarray(trace.bytes, dtype=np.int64)[first]
        bases = np.asarray(trace.base, dtype=object).astype(str)[first]
        self.candidates = Candidates.build(self.keys, bases, self.sizes, np.zeros(len(self.keys)))
        every_base = frozenset(self.candidates.base_keys)
        self.specs = [
            WorkerSpec(
                name=f"w{w}",
                bases=every_base,
                gpu_slots=capacity.gpu_slots,
                gpu_bytes=capacity.gpu_bytes,
                host_slots=capacity.host_slots,
                host_bytes=capacity.host_bytes,
            )
            for w in range(workers)
        ]
        self.config = config or PlanConfig()
        self.short = DecayedCounter(len(self.keys), short_half_life)
        self.long = DecayedCounter(len(self.keys), long_half_life)
        self.counted = 0
        self.previous = None
        self.plans = 0
        self.drifts = 0
        self.drift_threshold = drift_threshold
        self.baseline_share = None  # the previous plan's out-of-sample share of requests

    def replan(self, now: float, index: int, trace, pool: list, counts) -> None:
        recent = self.codes[self.counted : index]
        self.short.add(recent, now)
        self.long.add(recent, now)
        self.counted = index
        if self.previous is not None and len(recent):
            planned = np.zeros(len(self.keys), bool)
            for worker_plan in self.previous.workers.values():
                planned[worker_plan.gpu] = True
            observed = planned_share(planned, np.bincount(recent, minlength=len(self.keys)))
            if drift_detected(observed, self.baseline_share, len(recent), self.drift_threshold):
                self.long.reset_to(self.short)
                self.drifts += 1
                observed = None  # the next plan rests on a new forecast: its share is the new baseline
            self.baseline_share = observed
        self.candidates.demand = self.long.rates()
        self.candidates.evidence = self.long.counts
        result = plan(self.candidates, self.specs, previous=self.previous, config=self.config)
        self.previous = result
        self.plans += 1
        for worker, worker_plan in zip(pool, result.workers.values(), strict=True):
            self.apply(worker, worker_plan, index, counts)

    def apply(self, worker, worker_plan, index: int, counts) -> None:
        gpu = worker.gpu
        gpu.unpin_all()
        planned = worker_plan.gpu.tolist()
        for code in reversed(planned):  # coldest first, so the hottest ends most recently used
            key, size = self.keys[code], int(self.sizes[code])
            if key in gpu.entries:
                gpu.touch(key, gpu.last_used[key])  # most recently used now; its last use stays its own
                continue
            self.load(worker, key, size, counts)
            for evicted, evicted_size, last_used in gpu.insert(key, size, index):
                worker.demote(evicted, evicted_size, last_used)
        for code, pinned in zip(planned, worker_plan.pinned.tolist(), strict=True):
            if pinned and self.keys[code] in gpu.entries:
                gpu.pin(self.keys[code])
        if worker.host is not None:
            for code in worker_plan.host.tolist():
                key = self.keys[code]
                if key not in gpu.entries and key not in worker.host.entries:
                    counts.plan_loads += 1
                    counts.plan_bytes_loaded += int(self.sizes[code])
                    worker.host.insert(key, int(self.sizes[code]), index)

    @staticmethod
    def load(worker, key, size: int, counts) -> None:
        """A planned GPU load: from the host copy when there is one, else from disk."""
        if worker.host is not None and key in worker.host.entries:
            worker.host.remove(key)
            return
        counts.plan_loads += 1
        counts.plan_bytes_loaded += size
