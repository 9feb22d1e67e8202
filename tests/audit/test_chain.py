"""The chain core, without Django: hashing is RFC 8785 over the event less its entry_hash, and
verify_chain names the first event that breaks."""

import copy
import hashlib
import json

import pytest
import rfc8785

from registry.audit.chain import GENESIS_HASH, ChainBroken, canonical, entry_hash, verify_chain, verify_lines


def make_chain(count: int, **extra) -> list[dict]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        event = {
            "id": f"id-{seq}",
            "seq": seq,
            "time": f"2026-01-01T00:00:{seq % 60:02d}.000001Z",
            "type": "version.status",
            "actor_name": "alice",
            "before": {"status": "checking"},
            "after": {"status": "ready", "note": "naïve ☃ \U0001f600"},
            "evidence": None,
            "prev_hash": prev,
            **extra,
        }
        event["entry_hash"] = entry_hash(prev, event)
        prev = event["entry_hash"]
        events.append(event)
    return events


def test_it_hashes_prev_hash_bytes_then_the_canonical_json_without_entry_hash():
    event = {"seq": 1, "b": "x", "a": [1, True, None], "prev_hash": GENESIS_HASH, "entry_hash": "ignored"}
    assert canonical(event) == b'{"a":[1,true,null],"b":"x","prev_hash":"' + GENESIS_HASH.encode() + b'","seq":1}'
    expected = hashlib.sha256(bytes(32) + rfc8785.dumps({k: v for k, v in event.items() if k != "entry_hash"}))
    assert entry_hash(GENESIS_HASH, event) == expected.hexdigest()


def test_it_accepts_an_intact_chain_and_returns_its_head():
    events = make_chain(5)
    assert verify_chain(events) == events[-1]["entry_hash"]


def test_it_verifies_a_slice_from_the_hash_before_it():
    events = make_chain(6)
    assert verify_chain(events[3:], start_prev_hash=events[2]["entry_hash"], start_seq=4) == events[-1]["entry_hash"]


@pytest.mark.parametrize(
    "field, value",
    [("actor_name", "mallory"), ("after", {"status": "rejected"}), ("time", "2026-01-02T00:00:00.000001Z")],
)
def test_it_names_the_event_whose_content_changed(field, value):
    events = make_chain(5)
    events[2][field] = value
    with pytest.raises(ChainBroken) as broken:
        verify_chain(events)
    assert broken.value.seq == 3
    assert "changed" in broken.value.message


def test_it_names_a_gap():
    events = make_chain(5)
    del events[2]
    with pytest.raises(ChainBroken) as broken:
        verify_chain(events)
    assert broken.value.seq == 4
    assert "gap" in broken.value.message and "3" in broken.value.message


def test_it_names_a_duplicate_and_a_reorder():
    events = make_chain(4)
    with pytest.raises(ChainBroken, match="duplicate or out of order") as broken:
        verify_chain(events[:3] + [events[2], events[3]])
    assert broken.value.seq == 3
    with pytest.raises(ChainBroken) as broken:
        verify_chain([events[0], events[2], events[1], events[3]])
    assert broken.value.seq == 3  # seq 3 arrives where 2 is expected


def test_it_names_a_broken_link_even_when_the_entry_hash_was_recomputed():
    events = make_chain(4)
    forged = copy.deepcopy(events[2])
    forged["prev_hash"] = "ab" * 32
    forged["entry_hash"] = entry_hash(forged["prev_hash"], forged)
    with pytest.raises(ChainBroken, match="does not link") as broken:
        verify_chain([events[0], events[1], forged, events[3]])
    assert broken.value.seq == 3


def test_it_refuses_a_first_event_that_does_not_start_at_the_genesis():
    events = make_chain(3)
    with pytest.raises(ChainBroken) as broken:
        verify_chain(events[1:])
    assert broken.value.seq == 2


def test_its_shortcut_never_accepts_what_rfc8785_would_refuse():
    # A float is spelled differently by json (1e+21 vs 1e21 here) and RFC 8785: the event the
    # writer hashed with rfc8785 still verifies, and a changed one still fails.
    events = make_chain(2, amount=1e21, ratio=0.1, astral_keys={"\U0001f600": 1, "\ufb33": 2})
    assert verify_chain(events) == events[-1]["entry_hash"]
    events[1]["ratio"] = 0.2
    with pytest.raises(ChainBroken):
        verify_chain(events)


def test_it_refuses_an_entry_hash_that_is_not_a_digest():
    events = make_chain(1)
    events[0]["entry_hash"] = events[0]["entry_hash"].upper()
    with pytest.raises(ChainBroken, match="not a lowercase SHA-256"):
        verify_chain(events)


def as_lines(events: list[dict]) -> list[bytes]:
    return [rfc8785.dumps(event) + b"\n" for event in events]


def test_it_verifies_json_lines_as_an_export_holds_them():
    events = make_chain(5)
    assert verify_lines(as_lines(events)) == events[-1]["entry_hash"]
    assert verify_lines(line.decode() for line in as_lines(events)) == events[-1]["entry_hash"]
    assert verify_lines(as_lines(events)[2:], start_prev_hash=events[1]["entry_hash"], start_seq=3)


def test_lines_in_another_spelling_of_the_same_events_still_verify():
    events = make_chain(3)
    spelled = [json.dumps(event, indent=1, ensure_ascii=True).replace("\n", "") + "\n" for event in events]
    assert verify_lines(spelled) == events[-1]["entry_hash"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda line: line.replace(b'"alice"', b'"alicf"'),
        lambda line: line.replace(b'"after":{', b'"after":{"entry_hash":"' + b"0" * 64 + b'",'),
        lambda line: line.replace(b'"checking"', b'"checking","extra":1'),
    ],
)
def test_a_changed_line_is_named(edit):
    lines = as_lines(make_chain(4))
    lines[1] = edit(lines[1])
    with pytest.raises(ChainBroken) as broken:
        verify_lines(lines)
    assert broken.value.seq == 2


def test_a_line_that_is_not_json_is_named():
    lines = as_lines(make_chain(3))
    lines[2] = lines[2][:40] + b"\n"
    with pytest.raises(ChainBroken, match="line 3 is not JSON") as broken:
        verify_lines(lines)
    assert broken.value.seq == 3
