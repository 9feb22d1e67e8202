"""The eviction code the worker's resident cache shares with the residency simulator
(registry/residency/eviction.py): victims that skip what must stay, and room made by bytes or slots."""

from registry.residency.eviction import BeladyPolicy, LFUPolicy, LRUPolicy, make_room


def lru(*keys) -> LRUPolicy:
    policy = LRUPolicy()
    for index, key in enumerate(keys):
        policy.touch(key, index)
    return policy


def test_lru_victim_is_the_least_recent_and_skips_what_must_stay():
    policy = lru("a", "b", "c")
    policy.touch("a", 3)
    assert policy.victim() == "b"
    assert policy.victim(skip={"b"}) == "c"
    assert policy.victim(skip={"a", "b", "c"}) is None
    assert LRUPolicy().victim() is None


def test_lfu_and_belady_skip_too_and_keep_their_order():
    lfu = LFUPolicy()
    for index, key in enumerate(["a", "a", "b", "c", "c", "c"]):
        lfu.touch(key, index)
    assert lfu.victim() == "b" and lfu.victim(skip={"b"}) == "a" and lfu.victim(skip={"a", "b", "c"}) is None
    belady = BeladyPolicy(next_use=[5, 9, 7])  # a is used again at 5, b at 9, c at 7
    for index, key in enumerate(["a", "b", "c"]):
        belady.touch(key, index)
    assert belady.victim() == "b" and belady.victim(skip={"b"}) == "c"


def test_make_room_by_bytes_evicts_in_lru_order_until_it_fits():
    policy = lru("a", "b", "c")
    sizes = {"a": 40, "b": 30, "c": 20}
    assert make_room(policy, sizes, needed=30, capacity=100) == ["a"]
    assert sizes == {"b": 30, "c": 20} and len(policy) == 2
    assert make_room(policy, sizes, needed=10, capacity=100) == []


def test_make_room_by_slots_never_evicts_what_is_kept_even_over_capacity():
    policy = lru("a", "b")
    slots = {"a": 1, "b": 1}
    assert make_room(policy, slots, needed=1, capacity=1, keep={"a"}) == ["b"]
    assert make_room(policy, slots, needed=1, capacity=1, keep={"a"}) == []  # a stays; the caller goes over
    assert slots == {"a": 1}


def test_a_base_larger_than_the_budget_still_empties_the_cache_for_itself():
    policy = lru("a", "b")
    sizes = {"a": 10, "b": 10}
    assert make_room(policy, sizes, needed=500, capacity=100) == ["a", "b"] and sizes == {}
