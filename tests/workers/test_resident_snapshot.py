"""The resident snapshot workers report (registry/residency/snapshot.py): its JSON round trip, the
shape older workers sent, and what a malformed heartbeat turns into (strict: one error naming the
field; lenient, for the page, metrics and routing: the valid part and a list of what was left out)."""

import re

import pytest

from registry.residency.snapshot import (
    CacheStats,
    ResidentAdapterEntry,
    ResidentBaseEntry,
    ResidentSnapshot,
    SnapshotError,
)

BASE = {"id": "b1", "ref": "acme/llama:v1", "head": "causal_lm", "bytes": 4096}


def snapshot() -> ResidentSnapshot:
    return ResidentSnapshot(
        bases=(ResidentBaseEntry("b1", "acme/llama:v1", "causal_lm", 4096),),
        adapters=(
            ResidentAdapterEntry("a1", "acme/bot:v1", "b1", "slot-0123456789ab"),
            ResidentAdapterEntry("a2", "acme/bot:v2", "b1", "slot-ba9876543210"),
        ),
        budget_bytes=10**9,
        stats=CacheStats(hits=3, misses=1, attach_count=5, attach_seconds_total=0.25, hotswaps=2, loads=2, switches=1),
    )


def test_it_round_trips_through_json_shape():
    wire = snapshot().to_dict()
    assert wire["adapters"][0] == {"id": "a1", "ref": "acme/bot:v1", "base": "b1", "slot": "slot-0123456789ab"}
    assert wire["stats"]["hotswaps"] == 2 and wire["budget_bytes"] == 10**9
    assert ResidentSnapshot.from_dict(wire) == snapshot()


def test_it_reads_what_older_workers_sent():
    old = {
        "bases": [BASE],
        "adapters": [{"id": "a1", "ref": "acme/bot:v1", "base": "b1"}],  # no slot: it was named after the adapter
        "budget_bytes": 100,
        "stats": {"hits": 1, "misses": 2, "evictions": 0, "attach_count": 3, "attach_seconds_total": 0.5},
    }
    read = ResidentSnapshot.from_dict(old)
    assert read.adapters[0].slot == "a1" and read.stats.hits == 1 and read.stats.hotswaps == 0
    assert read.holds_base("b1") and read.holds_adapter("a1") and not read.holds_base("b2")
    assert ResidentSnapshot.from_dict({}) == ResidentSnapshot() == ResidentSnapshot.from_dict(None)


def test_a_newer_workers_extra_counters_are_ignored():
    wire = snapshot().to_dict()
    wire["stats"]["prefetches"] = 7
    assert ResidentSnapshot.from_dict(wire).stats == snapshot().stats


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["bases"][0].update(bytes="4 KB"), "bases[0].bytes"),
        (lambda d: d["bases"][0].update(bytes=-1), "bases[0].bytes"),
        (lambda d: d["bases"][0].pop("id"), "bases[0].id"),
        (lambda d: d["adapters"].append("a3"), "adapters[2]"),
        (lambda d: d["adapters"][1].update(base="gone"), "adapters[1].base"),
        (lambda d: d["adapters"][0].update(ref=["x"]), "adapters[0].ref"),
        (lambda d: d.update(bases={"b1": BASE}), "bases"),
        (lambda d: d.update(budget_bytes="lots"), "budget_bytes"),
        (lambda d: d["stats"].update(hits=True), "stats.hits"),
        (lambda d: d["stats"].update(attach_seconds_total=float("nan")), "stats.attach_seconds_total"),
        (lambda d: d.update(stats=[1, 2]), "stats"),
    ],
)
def test_a_malformed_snapshot_is_refused_strictly_and_read_leniently(change, field):
    wire = snapshot().to_dict()
    change(wire)
    with pytest.raises(SnapshotError, match="^resident snapshot " + re.escape(f"{field}: ")):
        ResidentSnapshot.from_dict(wire)
    lenient = ResidentSnapshot.from_dict(wire, strict=False)
    assert lenient.problems[0].startswith(f"{field}: ")
    if field.startswith("bases"):  # the base is left out, and the adapters attached to it with it
        assert lenient.bases == () and lenient.adapters == () and len(lenient.problems) == 3
    else:  # the rest of the heartbeat survives
        assert lenient.holds_base("b1") and len(lenient.problems) == 1


def test_a_snapshot_that_is_not_an_object_reads_as_empty():
    for junk in ("resident", 42, ["b1"]):
        read = ResidentSnapshot.from_dict(junk, strict=False)
        assert read.bases == () and read.adapters == () and read.problems[0].startswith("snapshot: expected an object")


def test_a_huge_list_is_cut():
    wire = snapshot().to_dict()
    wire["adapters"] = [{"id": f"a{i}", "ref": "x", "base": "b1"} for i in range(10_050)]
    read = ResidentSnapshot.from_dict(wire, strict=False)
    assert len(read.adapters) == 10_000 and "more than 10000" in read.problems[0]
