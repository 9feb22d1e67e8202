"""Eviction policies: which resident entry a cache gives up next.

One module for every cache that keeps adapters or bases warm: the residency simulator's GPU and
host tiers (engine-cache baselines and the clairvoyant reference) and our own workers' resident
cache (workers/runtime/resident.py), so what the benchmarks measure is the code the workers run.

A policy orders the entries of one cache. The cache calls `touch` when an entry is used or enters,
`remove` when it leaves, and `victim` for the entry to evict next (then removes it).
"""

import heapq
from collections import OrderedDict


class LRUPolicy:
    def __init__(self):
        self.order = OrderedDict()

    def touch(self, key, index):
        self.order[key] = None
        self.order.move_to_end(key)

    def remove(self, key):
        del self.order[key]

    def victim(self):
        return next(iter(self.order))


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

    def victim(self):
        while True:
            uses, index, key = self.heap[0]
            if self.state.get(key) == (uses, index):
                return key
            heapq.heappop(self.heap)


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

    def victim(self):
        while True:
            negative, key = self.heap[0]
            if self.state.get(key) == -negative:
                return key
            heapq.heappop(self.heap)
