"""The audit chain, with no Django import: the registry, its exports and the offline verifier share it.

Each event is a JSON object. Its `entry_hash` is

    SHA-256(bytes.fromhex(prev_hash) || RFC 8785 canonical JSON of the event without "entry_hash")

where `prev_hash` (inside the hashed object) is the previous event's `entry_hash`, or GENESIS_HASH
for the first event, and `seq` counts 1, 2, 3, ... without gaps. Changing, removing, inserting or
reordering any event changes every hash after it, so a verifier that trusts one later hash (a signed
checkpoint, an export's signed manifest) detects the edit and names the first event it breaks.

Hashed content holds strings, integers, booleans, null, lists and objects; the registry writes no
floats (numbers that are not integers are written as strings, see registry/audit/services.py).
"""

import hashlib
import json
from collections.abc import Iterable

import rfc8785

GENESIS_HASH = "0" * 64
ENTRY_HASH = "entry_hash"

# json's C encoder produces RFC 8785 output for the values the registry writes (no floats, ASCII
# or BMP keys, integers within 2**53) about seven times faster than rfc8785.dumps. It is only a
# shortcut: see _hash_matches for why a match through it proves the same thing.
_fast_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ChainBroken(Exception):
    """The first event at which the chain fails; `seq` is that event's position (or its claimed seq)."""

    def __init__(self, seq: int | None, message: str):
        super().__init__(f"event {seq}: {message}" if seq is not None else message)
        self.seq = seq
        self.message = message


def canonical(event: dict) -> bytes:
    """The RFC 8785 canonical JSON of `event` without its entry_hash: the bytes the chain hashes."""
    return rfc8785.dumps({key: value for key, value in event.items() if key != ENTRY_HASH})


def entry_hash(prev_hash_hex: str, event: dict) -> str:
    return body_hash(prev_hash_hex, canonical(event))


def body_hash(prev_hash_hex: str, body: bytes) -> str:
    """The entry hash of canonical `body` bytes after `prev_hash_hex`."""
    return hashlib.sha256(bytes.fromhex(prev_hash_hex) + body).hexdigest()


def _hash_matches(prev_hash_hex: str, event: dict, expected: str) -> bool:
    """Whether `expected` is the entry hash of `event` after `prev_hash_hex`.

    Tried first with json's encoder: if that hash matches, the encoder's bytes are the canonical
    bytes the writer hashed (SHA-256 is collision resistant) and they parse back to `event`, so
    the event is the one written. Only a mismatch is decided by rfc8785 itself, which is exact.
    """
    body = {key: value for key, value in event.items() if key != ENTRY_HASH}
    try:
        if body_hash(prev_hash_hex, _fast_encoder.encode(body).encode()) == expected:
            return True
    except (ValueError, TypeError, UnicodeEncodeError):
        pass  # NaN, a lone surrogate, a type json does not know: rfc8785 decides
    return body_hash(prev_hash_hex, rfc8785.dumps(body)) == expected


def _is_hex_hash(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def verify_chain(events: Iterable[dict], *, start_prev_hash: str = GENESIS_HASH, start_seq: int = 1) -> str:
    """Check a run of consecutive events; return the last entry_hash (the head) or raise ChainBroken.

    `start_prev_hash` and `start_seq` say where the run begins: the genesis for a whole chain, or
    the entry_hash and seq that precede a slice. Checks, per event in order: seq is the next
    number (a gap, duplicate or reorder is named as such), prev_hash links to the previous event,
    and entry_hash is the hash of the event's canonical JSON.
    """
    prev_hash, expected_seq = start_prev_hash, start_seq
    for event in events:
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ChainBroken(expected_seq, f"seq is {seq!r}, not an integer")
        if seq != expected_seq:
            raise ChainBroken(seq, _sequence_problem(seq, expected_seq))
        if event.get("prev_hash") != prev_hash:
            raise ChainBroken(seq, f"prev_hash {event.get('prev_hash')!r} does not link to the previous {prev_hash}")
        claimed = event.get(ENTRY_HASH)
        if not _is_hex_hash(claimed):
            raise ChainBroken(seq, f"entry_hash {claimed!r} is not a lowercase SHA-256 hex digest")
        try:
            matches = _hash_matches(prev_hash, event, claimed)
        except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
            raise ChainBroken(seq, f"the event cannot be canonicalised: {exc}") from None
        if not matches:
            raise ChainBroken(seq, "entry_hash does not match the event's content: the event was changed")
        prev_hash, expected_seq = claimed, seq + 1
    return prev_hash


def _sequence_problem(seq: int, expected: int) -> str:
    if seq > expected:
        missing = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
        return f"sequence gap: expected {expected}, so event(s) {missing} are missing"
    return f"duplicate or out of order: expected {expected} after {expected - 1}"
