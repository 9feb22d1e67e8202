"""Eviction policies: which resident entry a cache gives up next.

One module for every cache that keeps adapters or bases warm: the residency simulator's GPU and
host tiers (engine-cache baselines and the clairvoyant reference) and our own workers' resident
cache (workers/runtime/resident.py: bases by bytes, adapter slots per base), so what the benchmarks
measure is the code the workers run.

A policy orders the entries of one cache. The cache calls `touch` when an entry is used or enters,
`remove` when it leaves, and `victim` for the entry to evict next (then removes it). `victim`
takes the keys that must stay (`skip`, e.g. the adapter a job is using) and answers None when
every entry is to stay. `make_room` evicts in a policy's order until a capacity, counted in
bytes or in slots, has room.
"""

import heapq
from collections import OrderedDict
from collections.abc import Collection, MutableMapping


class LRUPolicy:
    def __init__(self):
        self.order = OrderedDict()

    def touch(self, key, index=None):
        self.order[key] = None
        self.order.move_to_end(key)

    def remove(self, key):
        del self.order[key]

    def victim(self, skip: Collection = ()):
        for key in self.order:
            if key not in skip:
                return key
        return None

    def __len__(self):
        return len(self.order)


class LFUPolicy:
    """Heap of (uses, last use, key) with lazy deletion: stale heap entries are skipped at `victim`."""

    def __init__(self):
        self.state = {}  # key -> (uses, last index)
        self.heap = []

    def touch(self, key, index):
        uses = self.state.get(key, (0, 0))[0] + 1
        self.state[key] = (uses, index)
        heapq.heappush(self.heap, (uses, index, key))

    def remove(self, key):
        del self.state[key]

    def victim(self, skip: Collection = ()):
        if skip:  # rare (worker caches hold a few entries): a scan keeps the heap's lazy invariant simple
            return _smallest(self.state, skip)
        while self.heap:
            uses, index, key = self.heap[0]
            if self.state.get(key) == (uses, index):
                return key
            heapq.heappop(self.heap)
        return None

    def __len__(self):
        return len(self.state)


class BeladyPolicy:
    """Max-heap on next use (lazy deletion); `next_use` is precomputed over the whole trace."""

    def __init__(self, next_use: list):
        self.next_use = next_use
        self.state = {}  # key -> next use index
        self.heap = []

    def touch(self, key, index):
        upcoming = self.next_use[index]
        self.state[key] = upcoming
        heapq.heappush(self.heap, (-upcoming, key))

    def remove(self, key):
        del self.state[key]

    def victim(self, skip: Collection = ()):
        if skip:
            return _smallest({key: -upcoming for key, upcoming in self.state.items()}, skip)
        while self.heap:
            negative, key = self.heap[0]
            if self.state.get(key) == -negative:
                return key
            heapq.heappop(self.heap)
        return None

    def __len__(self):
        return len(self.state)


def _smallest(ranks: dict, skip: Collection):
    candidates = [(rank, key) for key, rank in ranks.items() if key not in skip]
    return min(candidates, key=lambda pair: pair[0])[1] if candidates else None


def make_room(policy, sizes: MutableMapping, needed: int, capacity: int, *, keep: Collection = ()) -> list:
    """Evict entries in the policy's order until `needed` more fits in `capacity`; the evicted keys.

    `sizes` maps every entry to what it takes (bytes, or 1 for a slot); evicted keys leave both it
    and the policy. Entries in `keep` stay even when that leaves too little room: the caller then
    goes over capacity (a base larger than the whole budget still loads, alone) rather than fail.
    """
    evicted = []
    used = sum(sizes.values())
    while used + needed > capacity:
        key = policy.victim(skip=keep)
        if key is None:
            break
        policy.remove(key)
        used -= sizes.pop(key)
        evicted.append(key)
    return evicted
