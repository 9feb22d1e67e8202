"""Simulator correctness on hand-computed traces (no database: plain Python, no `db` fixture).

The hand counts: with one worker, equal sizes and no host tier, every policy is a textbook page
replacement algorithm, so the classic reference strings give the expected hits."""

import functools
import random

import pytest

from registry.residency.simulate import Capacity, Trace, next_uses, simulate
from registry.residency.traces import generate


def trace_of(keys, sizes=None):
    sizes = sizes or {}
    return Trace(
        ts=[float(i) for i in range(len(keys))],
        adapter=list(keys),
        base=["0"] * len(keys),
        bytes=[sizes.get(key, 1) for key in keys],
    )


def hits(keys, policy, slots):
    return simulate(trace_of(keys), policy, 1, Capacity(gpu_slots=slots), check_invariants=True)["gpu_hits"]


# Silberschatz's reference string: 3 frames give 12 LRU faults and 9 OPT faults out of 20.
SILBERSCHATZ = "7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1".split()
# Belady's anomaly string: LRU 10 faults with 3 frames and 8 with 4; OPT 7 and 6.
ANOMALY = "1 2 3 4 1 2 5 1 2 3 4 5".split()


@pytest.mark.parametrize(
    ("keys", "slots", "policy", "expected_hits"),
    [
        (SILBERSCHATZ, 3, "lru", 8),
        (SILBERSCHATZ, 3, "belady", 11),
        (ANOMALY, 3, "lru", 2),
        (ANOMALY, 4, "lru", 4),
        (ANOMALY, 3, "belady", 5),
        (ANOMALY, 4, "belady", 6),
        # a a b c b a c, 2 slots: LFU keeps a (2 uses) and cycles b and c; Belady keeps what comes back first.
        ("aabcbac", 2, "lfu", 2),
        ("aabcbac", 2, "lru", 2),
        ("aabcbac", 2, "belady", 3),
        # a b a b c a b, 2 slots: at c, LFU's tie (a and b used twice) evicts the less recent a, then
        # evicts c (1 use) for a, so b hits; LRU evicts b for a, so b misses.
        ("ababcab", 2, "lfu", 3),
        ("ababcab", 2, "lru", 2),
        ("ababcab", 2, "belady", 3),
    ],
)
def test_hand_computed_hits(keys, slots, policy, expected_hits):
    assert hits(keys, policy, slots) == expected_hits


def textbook_lru_hits(keys, slots):
    """The definition, as a list: most recent at the end; evict the front."""
    cache, count = [], 0
    for key in keys:
        if key in cache:
            count += 1
            cache.remove(key)
        elif len(cache) == slots:
            cache.pop(0)
        cache.append(key)
    return count


def brute_force_best_hits(keys, slots):
    """Most hits over every eviction choice (demand loading: a miss always loads the adapter)."""

    @functools.cache
    def best(index, cache):
        if index == len(keys):
            return 0
        key = keys[index]
        if key in cache:
            return 1 + best(index + 1, cache)
        if len(cache) < slots:
            return best(index + 1, cache | {key})
        return max(best(index + 1, (cache - {victim}) | {key}) for victim in cache)

    return best(0, frozenset())


@pytest.mark.parametrize("seed", range(6))
def test_lru_equals_textbook_and_belady_equals_brute_force(seed):
    chooser = random.Random(seed)
    keys = [chooser.choice("abcdef") for _ in range(16)]
    for slots in (2, 3, 4):
        assert hits(keys, "lru", slots) == textbook_lru_hits(keys, slots)
        assert hits(keys, "belady", slots) == brute_force_best_hits(keys, slots)


def test_next_uses():
    assert next_uses(list("abab c".replace(" ", ""))) == [2, 3, float("inf"), float("inf"), float("inf")]


def test_host_tier_keeps_gpu_evictions_and_promotes_them():
    # 1 GPU slot, 1 host slot, LRU: a m; b m (a -> host); a host hit (b -> host); c m (a -> host, b dropped); a host hit.
    result = simulate(trace_of("abaca"), "lru", 1, Capacity(gpu_slots=1, host_slots=1), check_invariants=True)
    assert (result["gpu_hits"], result["host_hits"], result["misses"]) == (0, 2, 3)
    assert (result["loads"], result["host_loads"]) == (3, 2)
    assert result["gpu_hit_rate"] + result["host_hit_rate"] + result["miss_rate"] == pytest.approx(1.0)


def test_bytes_capacity_evicts_until_the_adapter_fits():
    sizes = {"a": 4, "b": 4, "c": 6, "d": 11}
    # 10 bytes: a, b (8); c evicts a (b + c = 10); a evicts b (c + a = 10); c hits.
    result = simulate(trace_of("abcac", sizes), "lru", 1, Capacity(gpu_bytes=10), check_invariants=True)
    assert (result["gpu_hits"], result["loads"], result["bytes_loaded"]) == (1, 4, 18)
    # d is larger than the whole GPU tier: loaded for the request, never kept, nothing evicted for it.
    result = simulate(trace_of("ada", sizes), "lru", 1, Capacity(gpu_bytes=10), check_invariants=True)
    assert (result["gpu_hits"], result["loads"]) == (1, 2)


@pytest.mark.parametrize("policy", ["lru", "lfu", "belady"])
@pytest.mark.parametrize(
    "capacity",
    [Capacity(gpu_slots=5), Capacity(gpu_slots=5, host_slots=10), Capacity(gpu_bytes=10**9, host_bytes=3 * 10**9)],
)
def test_multi_worker_capacity_never_exceeded(policy, capacity):
    generated = generate("zipf", n_adapters=200, n_requests=3000, seed=3, sizes="rank-mix")
    trace = Trace(
        ts=generated.ts.tolist(),
        adapter=[str(a) for a in generated.adapter.tolist()],
        base=[str(b) for b in generated.base.tolist()],
        bytes=generated.bytes.tolist(),
    )
    result = simulate(trace, policy, 4, capacity, check_invariants=True)  # asserts after every request
    assert result["gpu_hits"] + result["host_hits"] + result["misses"] == 3000
    assert 0.25 <= result["max_worker_share"] <= 1.0
    assert result["max_worker_share_vs_fair"] == pytest.approx(result["max_worker_share"] * 4)


def test_routing_prefers_the_worker_holding_the_adapter():
    # 2 workers, 1 slot each: a -> w0, b -> w1 (least loaded), then a and b hit where they live.
    result = simulate(trace_of("abab"), "lru", 2, Capacity(gpu_slots=1), check_invariants=True)
    assert result["gpu_hits"] == 2
    assert result["max_worker_share"] == 0.5


class PinOneAdapter:
    """A stand-in for the hook's contract (the real planner has its own tests in test_planner.py):
    at each plan it puts one adapter back into worker 0's GPU, using nothing but the past."""

    eviction = "lru"

    def __init__(self, pinned):
        self.pinned = pinned
        self.calls = []

    def replan(self, now, index, trace, pool, counts):
        self.calls.append((now, index))
        if self.pinned not in pool[0].gpu.entries:
            pool[0].gpu.insert(self.pinned, 1, index)


def test_replanner_hook_runs_every_plan_interval_and_its_time_is_reported():
    planner = PinOneAdapter("x")
    # ts 0..7, 1 GPU slot; plans at ts 0, 2, 4, 6 put x back, so every x hits and a, b, c, d miss.
    result = simulate(trace_of("xaxbxcxd"), "toy", 1, Capacity(gpu_slots=1), True, planner, plan_interval=2.0)
    assert planner.calls == [(0.0, 0), (2.0, 2), (4.0, 4), (6.0, 6)]
    assert result["gpu_hits"] == 4 and result["misses"] == 4
    assert result["policy"] == "toy" and result["plan_seconds"] > 0
