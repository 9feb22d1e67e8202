"""registry/residency/telemetry_replay.py on windows small enough to replay by hand: the trace
(spread, interleaving, scaling), LRU hit counts per hour, and the planner run through the same hook."""

import pytest

from registry.residency.telemetry_replay import (
    Window,
    WorkerCapacity,
    build_trace,
    replay_fleet,
    replay_trace,
    scale_for,
)


def trace_of(windows, scale=1.0):
    return build_trace(windows, sizes={}, bases={}, scale=scale)


def test_it_spreads_each_window_evenly_and_interleaves_by_time_then_adapter():
    windows = [Window("c", 5, 10, 1), Window("a", 0, 10, 2), Window("b", 0, 10, 1)]
    trace = trace_of(windows)
    # a: 2.5 and 7.5; b: 5.0; c: 7.5 (the middle of [5, 10)); at 7.5 a comes before c
    assert trace.ts == [2.5, 5.0, 7.5, 7.5]
    assert trace.adapter == ["a", "b", "a", "c"]
    assert trace.bytes == [1, 1, 1, 1] and trace.base == ["", "", "", ""]


def test_the_same_windows_in_any_order_give_the_same_trace():
    windows = [Window("b", 0, 10, 3), Window("a", 0, 10, 3), Window("a", 10, 20, 2)]
    assert trace_of(windows).adapter == trace_of(windows[::-1]).adapter == ["a", "b", "a", "b", "a", "b", "a", "a"]


def test_it_leaves_out_empty_windows_and_takes_sizes_and_bases():
    trace = build_trace([Window("a", 0, 10, 1), Window("b", 0, 10, 0)], sizes={"a": 4_000}, bases={"a": "llama"})
    assert (trace.adapter, trace.bytes, trace.base) == (["a"], [4_000], ["llama"])
    assert build_trace([], {}, {}).adapter == []


def test_lru_counts_the_textbook_hits():
    # a b a c b a with 2 slots: miss miss hit miss(evicts b) miss(evicts a) miss(evicts c): 1 hit
    windows = [Window(key, 2 * i, 2 * i + 2, 1) for i, key in enumerate("abacba")]
    result = replay_trace(trace_of(windows), WorkerCapacity(gpu_slots=2), "lru", hours=1)
    assert (result.requests, result.gpu_hits) == (6, 1)
    one_slot = replay_trace(trace_of(windows), WorkerCapacity(gpu_slots=1), "lru", hours=1)
    assert one_slot.gpu_hits == 0
    three_slots = replay_trace(trace_of(windows), WorkerCapacity(gpu_slots=3), "lru", hours=1)
    assert three_slots.gpu_hits == 3  # only the three first uses miss


def test_it_counts_hits_hour_by_hour():
    # a: 900, 2700, 4500, 6300; b: 3650. One slot: a miss, a hit | b miss, a miss, a hit
    windows = [Window("a", 0, 7200, 4), Window("b", 3600, 3700, 1)]
    result = replay_trace(trace_of(windows), WorkerCapacity(gpu_slots=1), "lru", hours=3)
    assert result.hourly_requests == [2, 3, 0] and result.hourly_hits == [1, 1, 0]
    assert result.hourly_rates() == [0.5, 1 / 3, None]
    assert result.gpu_hit_rate == 2 / 5


def test_a_byte_capacity_is_used_when_no_slots_are_given():
    trace = build_trace([Window(key, i, i + 1, 1) for i, key in enumerate("abab")], {"a": 10, "b": 10}, {})
    assert replay_trace(trace, WorkerCapacity(gpu_bytes=20), "lru", hours=1).gpu_hits == 2
    assert replay_trace(trace, WorkerCapacity(gpu_bytes=10), "lru", hours=1).gpu_hits == 0


def test_scaling_keeps_every_nth_request_in_proportion():
    assert scale_for(200_000) == 1.0 and scale_for(250_000) == 0.8
    trace = trace_of([Window("a", 0, 10, 6), Window("b", 0, 10, 4)], scale=0.5)
    assert sorted(trace.adapter) == ["a", "a", "a", "b", "b"]
    ones = [Window(f"x{i}", i, i + 1, 1) for i in range(10)]  # rounding each would keep none
    assert len(trace_of(ones, scale=0.3).adapter) == 3


def test_the_planner_replays_through_the_same_hook_and_is_deterministic():
    # A hot adapter beside a rotating cold one, two hours of it, re-planned every minute.
    windows = []
    for hour in range(2):
        for minute in range(60):
            start = hour * 3600 + minute * 60
            windows.append(Window("hot", start, start + 60, 3))
            windows.append(Window(f"cold{minute % 6}", start, start + 60, 3))
    trace = trace_of(windows)
    lru = replay_trace(trace, WorkerCapacity(gpu_slots=2), "lru", hours=2)
    planner = replay_trace(trace, WorkerCapacity(gpu_slots=2), "planner", hours=2, plan_interval=60)
    again = replay_trace(trace, WorkerCapacity(gpu_slots=2), "planner", hours=2, plan_interval=60)
    assert planner.requests == lru.requests == len(trace.adapter) == 720
    assert sum(planner.hourly_requests) == 720 and sum(planner.hourly_hits) == planner.gpu_hits
    assert (planner.gpu_hits, planner.hourly_hits) == (again.gpu_hits, again.hourly_hits)
    assert 0 < lru.gpu_hits < 720 and 0 < planner.gpu_hits < 720


def test_the_fleet_sums_its_workers_and_scales_them_alike():
    windows = [Window(key, 2 * i, 2 * i + 2, 1) for i, key in enumerate("abacba")]
    fleet = replay_fleet(
        {"w1": (windows, WorkerCapacity(gpu_slots=2)), "w2": (windows, WorkerCapacity(gpu_slots=3))},
        {},
        {},
        hours=1,
    )
    assert fleet.requests_seen == fleet.requests_replayed == 12 and not fleet.scaled
    assert fleet.workers["w1"]["lru"].gpu_hits == 1 and fleet.workers["w2"]["lru"].gpu_hits == 3
    assert fleet.policies["lru"].gpu_hits == 4 and fleet.policies["lru"].hourly_hits == [4]
    small = replay_fleet({"w1": (windows, WorkerCapacity(gpu_slots=2))}, {}, {}, hours=1, max_requests=3)
    assert small.scaled and small.scale == 0.5 and small.requests_replayed == 3


def test_it_refuses_an_unknown_policy():
    with pytest.raises(ValueError, match="policy must be one of"):
        replay_trace(trace_of([Window("a", 0, 1, 1)]), WorkerCapacity(gpu_slots=1), "belady")
