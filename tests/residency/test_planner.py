"""The planner's invariants and hysteresis, its forecast, and the planner inside the simulator.

No database: the planner is plain Python and NumPy. Expected values are hand-computed from the
inputs each test builds (not read back from the planner)."""

import math

import numpy as np
import pytest

from registry.residency.forecast import (
    DecayedCounter,
    canary_split,
    decayed_rates,
    drift_detected,
    planned_share,
)
from registry.residency.planner import Candidates, PlanConfig, WorkerSpec, plan
from registry.residency.replay import PlannerReplay
from registry.residency.simulate import Capacity, Trace, simulate
from registry.residency.traces import generate


def candidates(demand, bases=None, sizes=None, ranks=None, pinned=None, pin_workers=None):
    n = len(demand)
    return Candidates.build(
        refs=[f"ns/a{i}@sha256:{i:064x}" for i in range(n)],
        bases=bases or ["llama"] * n,
        sizes=sizes or [100] * n,
        ranks=ranks or [16] * n,
        demand=demand,
        pinned=pinned,
        pin_workers=pin_workers,
    )


def zipf_candidates(n, bases=("llama", "mistral"), seed=0):
    rng = np.random.default_rng(seed)
    demand = 1.0 / np.arange(1, n + 1)
    rng.shuffle(demand)
    ranks = rng.choice([8, 16, 32, 64], size=n)
    return Candidates.build(
        refs=[f"ns/a{i}@sha256:{i:064x}" for i in range(n)],
        bases=[bases[i % len(bases)] for i in range(n)],
        sizes=ranks * 1000,
        ranks=ranks,
        demand=demand,
    )


def check_invariants(result, cands, workers):
    """Capacity, base affinity and rank limits on every tier of every worker."""
    by_name = {spec.name: spec for spec in workers}
    for name, worker_plan in result.workers.items():
        spec = by_name[name]
        for tier in ("gpu", "host", "disk"):
            held = getattr(worker_plan, tier)
            assert len(set(held.tolist())) == len(held), f"{name} {tier} holds an adapter twice"
            for index in held.tolist():
                assert cands.base_keys[cands.base[index]] in spec.bases, "adapter on a worker not serving its base"
                assert spec.max_rank is None or cands.ranks[index] <= spec.max_rank, "rank over the worker's limit"
            slots = {"gpu": spec.gpu_slots, "host": spec.host_slots, "disk": None}[tier]
            budget = {"gpu": spec.gpu_bytes, "host": spec.host_bytes, "disk": spec.disk_bytes}[tier]
            if slots is not None:
                assert len(held) <= slots
            if budget is not None:
                assert int(cands.sizes[held].sum()) <= budget
        assert not set(worker_plan.gpu.tolist()) & set(worker_plan.host.tolist()), "GPU and host both hold an adapter"


FLEET = [
    WorkerSpec("w0", frozenset({"llama"}), gpu_slots=5, max_rank=16, host_slots=20),
    WorkerSpec("w1", frozenset({"llama", "mistral"}), gpu_bytes=150_000, host_bytes=400_000, disk_bytes=2_000_000),
    WorkerSpec("w2", frozenset({"mistral"}), gpu_slots=8, gpu_bytes=40_000, max_rank=32),
    WorkerSpec("w3", frozenset({"qwen"}), gpu_slots=4),  # serves a base no candidate is built on
]


def test_capacity_affinity_and_rank_limits_hold_on_a_mixed_fleet():
    cands = zipf_candidates(2000)
    result = plan(cands, FLEET)
    check_invariants(result, cands, FLEET)
    assert len(result.workers["w3"].gpu) == 0
    assert len(result.workers["w0"].gpu) == 5  # room was never the limit on a slot worker


def test_a_base_no_worker_serves_is_never_planned_and_does_not_count_as_demand():
    cands = candidates([5.0, 3.0, 2.0], bases=["llama", "llama", "orphan"])
    result = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=1)])
    assert result.workers["w0"].gpu.tolist() == [0]
    assert result.total_demand == pytest.approx(8.0)
    assert result.expected_gpu_hit_rate == pytest.approx(5.0 / 8.0)


def test_expected_hit_rate_is_the_planned_share_of_demand():
    cands = candidates([3.0, 2.0, 1.0])
    result = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=2)])
    assert result.workers["w0"].gpu.tolist() == [0, 1]
    assert result.expected_gpu_hit_rate == pytest.approx(5.0 / 6.0)
    assert result.workers["w0"].expected_gpu_hit_rate == pytest.approx(5.0 / 6.0)


def test_pins_are_kept_on_every_eligible_worker_or_the_named_one_even_when_cold():
    cands = candidates(
        [9.0, 8.0, 7.0, 0.0, 0.0],
        pinned=[False, False, False, True, True],
        pin_workers=[None, None, None, None, "w1"],
    )
    workers = [WorkerSpec(f"w{w}", frozenset({"llama"}), gpu_slots=2) for w in range(3)]
    result = plan(cands, workers)
    for name in ("w0", "w1", "w2"):
        gpu = result.workers[name].gpu.tolist()
        assert 3 in gpu
        pinned = dict(zip(gpu, result.workers[name].pinned.tolist(), strict=True))
        assert pinned[3] is True
    assert 4 in result.workers["w1"].gpu.tolist()
    assert 4 not in result.workers["w0"].gpu.tolist() + result.workers["w2"].gpu.tolist()
    assert result.unplaced_pins == []


def test_a_pin_without_room_is_reported():
    cands = candidates([0.0, 0.0], pinned=[True, True])
    result = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=1)])
    assert result.unplaced_pins == [1]


def test_hot_adapters_are_replicated_and_load_stays_near_the_fair_share():
    cands = zipf_candidates(5000, bases=("llama",))
    workers = [WorkerSpec(f"w{w}", frozenset({"llama"}), gpu_slots=50) for w in range(8)]
    result = plan(cands, workers)
    hottest = int(np.argmax(cands.demand))
    holders = [name for name, worker_plan in result.workers.items() if hottest in worker_plan.gpu.tolist()]
    fair = cands.demand.sum() / 8
    assert len(holders) == math.ceil(cands.demand[hottest] / (0.5 * fair))
    loads = [worker_plan.planned_load for worker_plan in result.workers.values()]
    assert max(loads) <= 1.2 * (sum(loads) / len(loads))
    shares = [worker_plan.expected_share for worker_plan in result.workers.values()]
    assert sum(shares) == pytest.approx(1.0)


def test_cost_aware_a_costlier_load_wins_slots_and_a_smaller_adapter_wins_bytes():
    # Same demand: with slots the rank-64 adapter (longer load) is worth more.
    cands = candidates([1.0, 1.0], sizes=[10_000_000, 300_000_000], ranks=[8, 64])
    by_slots = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=1)])
    assert by_slots.workers["w0"].gpu.tolist() == [1]
    # With bytes the small one gives more hits per byte of GPU memory.
    by_bytes = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_bytes=300_000_000)])
    assert by_bytes.workers["w0"].gpu.tolist()[0] == 0
    # And with load costs ignored, slots fall back to demand order (ties: first row).
    hits_only = plan(
        cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=1)], config=PlanConfig(load_cost_weight=0)
    )
    assert hits_only.workers["w0"].gpu.tolist() == [0]


def test_same_input_gives_the_same_plan():
    cands = zipf_candidates(3000)
    first, second = plan(cands, FLEET), plan(cands, FLEET)
    for name in first.workers:
        for tier in ("gpu", "host", "disk"):
            assert getattr(first.workers[name], tier).tolist() == getattr(second.workers[name], tier).tolist()


def gpu_diff(before, after) -> int:
    return sum(len(before.gpu_sets()[name] ^ after.gpu_sets()[name]) for name in before.workers)


def host_diff(before, after) -> int:
    return sum(
        len(set(before.workers[name].host.tolist()) ^ set(after.workers[name].host.tolist())) for name in before.workers
    )


def test_hysteresis_noise_does_not_churn_the_gpu_and_a_small_change_makes_a_small_diff():
    cands = zipf_candidates(3000, bases=("llama",))
    workers = [WorkerSpec(f"w{w}", frozenset({"llama"}), gpu_slots=20, host_slots=100) for w in range(4)]
    before = plan(cands, workers)
    rng = np.random.default_rng(1)
    noisy = Candidates.build(
        cands.refs, ["llama"] * len(cands), cands.sizes, cands.demand * rng.uniform(0.9, 1.1, len(cands)), cands.ranks
    )
    with_hysteresis = plan(noisy, workers, previous=before)
    without = plan(noisy, workers, previous=before, config=PlanConfig(hysteresis=0.0))
    assert gpu_diff(before, with_hysteresis) < gpu_diff(before, without)
    assert gpu_diff(before, with_hysteresis) <= 4
    # One new adapter, hot enough for the GPU: one GPU entry in, one out; host lists barely move.
    grown = Candidates.build(
        [*cands.refs, "ns/new@sha256:" + "f" * 64],
        ["llama"] * (len(cands) + 1),
        [*cands.sizes, 16000],
        [*cands.demand, 0.3],
        [*cands.ranks, 16],
    )
    after = plan(grown, workers, previous=before)
    assert gpu_diff(before, after) == 2
    assert host_diff(before, after) <= 4


def test_previous_plan_given_as_refs_is_honoured_like_a_plan_object():
    cands = zipf_candidates(500, bases=("llama",))
    workers = [WorkerSpec(f"w{w}", frozenset({"llama"}), gpu_slots=10) for w in range(2)]
    before = plan(cands, workers)
    as_refs = {name: before.desired_state(name, cands) for name in before.workers}
    rng = np.random.default_rng(2)
    noisy = Candidates.build(
        cands.refs, ["llama"] * 500, cands.sizes, cands.demand * rng.uniform(0.9, 1.1, 500), cands.ranks
    )
    from_plan, from_refs = plan(noisy, workers, previous=before), plan(noisy, workers, previous=as_refs)
    assert from_plan.gpu_sets() == from_refs.gpu_sets()


def test_desired_state_lists_refs_per_tier_and_what_to_evict():
    cands = candidates([5.0, 4.0, 3.0, 2.0])
    worker = WorkerSpec("w0", frozenset({"llama"}), gpu_slots=2, host_slots=1, disk_bytes=100)
    result = plan(cands, [worker])
    previous = {"gpu": [{"ref": "ns/gone@sha256:" + "0" * 64}], "host": [cands.refs[1]]}  # entries or bare refs
    state = result.desired_state("w0", cands, previous=previous)
    assert [entry["ref"] for entry in state["gpu"]] == cands.refs[:2]
    assert state["gpu"][0]["pinned"] is True and state["gpu"][0]["bytes"] == 100 and state["gpu"][0]["rank"] == 16
    assert state["gpu"][1]["pinned"] is False  # the reserve slot: the engine's LRU keeps it
    assert [entry["ref"] for entry in state["host"]] == [cands.refs[2]]
    assert [entry["ref"] for entry in state["disk"]] == [cands.refs[3]]
    assert state["evict"] == ["ns/gone@sha256:" + "0" * 64]


def test_routes_list_gpu_holders_least_loaded_first_then_host():
    cands = candidates([10.0, 1.0, 1.0, 0.5])
    workers = [
        WorkerSpec("w0", frozenset({"llama"}), gpu_slots=2, host_slots=2),
        WorkerSpec("w1", frozenset({"llama"}), gpu_slots=1, host_slots=2),
    ]
    result = plan(cands, workers)
    routes = result.routes(cands)
    hot = routes[cands.refs[0]]
    assert set(hot) == {"w0", "w1"}  # replicated: 10 of 12.5 demand is far over half a worker's fair share
    loads = {name: result.workers[name].planned_load for name in hot}
    assert loads[hot[0]] <= loads[hot[1]]
    assert routes[cands.refs[3]] and all(routes[ref] for ref in cands.refs)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="gpu_slots or gpu_bytes"):
        WorkerSpec("w0", frozenset({"llama"}))
    with pytest.raises(ValueError, match="positive size"):
        candidates([1.0], sizes=[0])
    with pytest.raises(ValueError, match="not negative"):
        candidates([-1.0])
    with pytest.raises(ValueError, match="unique"):
        plan(candidates([1.0]), [WorkerSpec("w", frozenset(), gpu_slots=1)] * 2)


# --- forecast ---------------------------------------------------------------------------------


def test_decayed_rates_recover_a_constant_rate_and_halve_per_half_life():
    # 10 requests per 10 s window for 1000 s, adapter 0; nothing for adapter 1.
    ends = np.arange(10.0, 1001.0, 10.0)
    ages = 1000.0 - ends
    rates = decayed_rates(np.zeros(len(ends), int), ages, np.full(len(ends), 10), n=2, half_life_seconds=60.0)
    assert rates[0] == pytest.approx(1.0, rel=0.07)  # windows, not instants: within the window's width
    assert rates[1] == 0.0
    one = decayed_rates([0], [60.0], [100], n=1, half_life_seconds=60.0)
    assert one[0] == pytest.approx(50 * math.log(2) / 60.0)
    with pytest.raises(ValueError):
        decayed_rates([2], [0.0], [1], n=2, half_life_seconds=60.0)


def test_canary_split_and_counter_reset():
    assert canary_split(10.0, 0.1) == pytest.approx((9.0, 1.0))
    with pytest.raises(ValueError):
        canary_split(1.0, 1.5)
    short, long = DecayedCounter(3, 10.0), DecayedCounter(3, 1000.0)
    for counter in (short, long):
        counter.add(np.array([0, 0, 0, 1]), 0.0)
        counter.add(np.array([2]), 10.0)
    assert short.counts.tolist() == pytest.approx([1.5, 0.5, 1.0])
    long.reset_to(short)
    assert long.counts.tolist() == pytest.approx([1.5, 0.5, 1.0]) and long.at == 10.0


def test_drift_is_detected_when_the_planned_set_stops_taking_its_share():
    planned = np.array([True, True, False, False])
    assert planned_share(planned, np.array([40, 35, 10, 15])) == pytest.approx(0.75)
    assert planned_share(planned, np.zeros(4)) is None
    assert not drift_detected(0.70, 0.75, requests=100)  # noise around the same share
    assert drift_detected(0.05, 0.75, requests=100)  # the hot set moved
    assert not drift_detected(0.05, 0.75, requests=20)  # 15 expected hits: too few to tell
    assert not drift_detected(0.05, None, requests=100) and not drift_detected(None, 0.75, requests=100)


# --- the planner in the simulator ---------------------------------------------------------------


def trace_of(keys):
    return Trace([float(i) for i in range(len(keys))], list(keys), ["0"] * len(keys), [1] * len(keys))


def test_planner_replay_on_a_hand_computed_trace():
    # Two slots, plans at ts 0 and 4. ts 0: no past, nothing planned; LRU: a misses, then hits 3 times.
    # ts 4: the past says a 4 times: a is planned and pinned (the second slot is the engine's reserve).
    # Then b, c, d each miss and take turns in the reserve slot without displacing a, which hits at
    # the end. Plain LRU evicts a on the scan (b, c, d) and misses it.
    trace = trace_of("aaaabcda")
    capacity = Capacity(gpu_slots=2)
    replay = PlannerReplay(trace, 1, capacity)
    result = simulate(trace, "planner", 1, capacity, True, replay, plan_interval=4.0)
    assert (result["gpu_hits"], result["misses"], result["plan_loads"]) == (4, 4, 0)
    assert replay.plans == 2
    assert simulate(trace, "lru", 1, capacity)["gpu_hits"] == 3


def test_with_one_slot_nothing_is_pinned_and_the_plan_only_preloads():
    # One slot: the reserve leaves nothing to pin. ts 4: a (3 of 4 requests) is loaded back ahead of
    # demand (one plan load) and hits; c then takes the slot, a misses once more and hits last.
    trace = trace_of("aaabacaa")
    capacity = Capacity(gpu_slots=1)
    replay = PlannerReplay(trace, 1, capacity)
    result = simulate(trace, "planner", 1, capacity, True, replay, plan_interval=4.0)
    assert (result["gpu_hits"], result["misses"], result["plan_loads"]) == (4, 4, 1)


def test_planner_beats_the_engine_caches_on_a_zipf_trace():
    generated = generate("zipf", n_adapters=2000, n_requests=60_000, s=1.0, seed=3)
    trace = Trace(generated.ts.tolist(), [str(a) for a in generated.adapter.tolist()], ["0"] * 60_000, [1] * 60_000)
    capacity = Capacity(gpu_slots=40)
    lru = simulate(trace, "lru", 1, capacity)["gpu_hit_rate"]
    lfu = simulate(trace, "lfu", 1, capacity)["gpu_hit_rate"]
    replay = PlannerReplay(trace, 1, capacity)
    planner = simulate(trace, "planner", 1, capacity, True, replay, plan_interval=10.0)
    assert planner["gpu_hit_rate"] > max(lru, lfu)
    assert planner["plan_seconds"] > 0 and planner["plan_loads"] > 0


def test_only_adapters_with_enough_requests_behind_their_forecast_are_pinned():
    cands = Candidates.build(
        refs=["ns/a@sha256:" + "1" * 64, "ns/b@sha256:" + "2" * 64, "ns/c@sha256:" + "3" * 64],
        bases=["llama"] * 3,
        sizes=[100] * 3,
        demand=[5.0, 4.0, 3.0],
        evidence=[50.0, 2.0, 3.0],
    )
    result = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=4)])
    worker = result.workers["w0"]
    assert dict(zip(worker.gpu.tolist(), worker.pinned.tolist(), strict=True)) == {0: True, 1: False, 2: True}


def test_a_reserve_of_gpu_room_is_never_pinned():
    cands = candidates([5.0, 4.0, 3.0], sizes=[100, 300, 200])
    by_slots = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=3)])
    assert by_slots.workers["w0"].pinned.tolist() == [True, True, False]
    # Bytes: density order 0 (5/100), 2 (3/200), 1 (4/300); room for the largest planned adapter (300)
    # stays unpinned, so 100 + 200 of the 600 are pinned.
    by_bytes = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_bytes=600)])
    assert by_bytes.workers["w0"].gpu.tolist() == [0, 2, 1]
    assert by_bytes.workers["w0"].pinned.tolist() == [True, True, False]
    no_reserve = plan(cands, [WorkerSpec("w0", frozenset({"llama"}), gpu_slots=3)], config=PlanConfig(reserve_slots=0))
    assert no_reserve.workers["w0"].pinned.tolist() == [True, True, True]


def test_demand_moving_on_one_base_leaves_the_plans_of_other_bases_alone():
    cands = zipf_candidates(400)  # bases llama and mistral, alternating
    workers = [WorkerSpec(f"l{w}", frozenset({"llama"}), gpu_slots=10) for w in range(3)]
    workers += [WorkerSpec(f"m{w}", frozenset({"mistral"}), gpu_slots=10) for w in range(3)]
    before = plan(cands, workers)
    mistral = np.array([cands.base_keys[b] == "mistral" for b in cands.base])
    hotter = Candidates.build(cands.refs, [cands.base_keys[b] for b in cands.base], cands.sizes,
                              np.where(mistral, cands.demand * 5, cands.demand), cands.ranks)  # fmt: skip
    after = plan(hotter, workers, previous=before)
    for name in ("l0", "l1", "l2"):
        assert after.workers[name].gpu.tolist() == before.workers[name].gpu.tolist()


def test_host_entries_the_hash_crowds_onto_one_worker_spill_to_the_others():
    import zlib

    refs = [f"ns/a{i}@sha256:{i:064x}" for i in range(40)]
    # The hot one goes to GPU on both workers; then two refs the hash sends to the same worker.
    same = [ref for ref in refs[1:] if zlib.crc32(ref.encode()) % 2 == 0][:2]
    cands = Candidates.build([refs[0], *same], ["llama"] * 3, [100] * 3, [10.0, 2.0, 1.0])
    workers = [WorkerSpec(f"w{w}", frozenset({"llama"}), gpu_slots=1, host_slots=1) for w in range(2)]
    result = plan(cands, workers)
    assert sorted(len(worker_plan.host) for worker_plan in result.workers.values()) == [1, 1]
    assert sorted(int(i) for worker_plan in result.workers.values() for i in worker_plan.host) == [1, 2]
