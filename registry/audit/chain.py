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
import re
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


def _hash_matches(prev_hash_hex: str, event: dict, expected: str, raw_body: bytes | None = None) -> bool:
    """Whether `expected` is the entry hash of `event` after `prev_hash_hex`.

    Shortcuts first: the bytes of the line the event was read from, less its entry_hash member
    (`raw_body`), then json's encoder. If either hash matches, those bytes are the canonical bytes
    the writer hashed (SHA-256 is collision resistant) and they parse to `event`, so the event is
    the one written. Only a mismatch is decided by rfc8785 itself, which is exact.
    """
    if raw_body is not None and body_hash(prev_hash_hex, raw_body) == expected:
        return True
    body = {key: value for key, value in event.items() if key != ENTRY_HASH}
    try:
        if body_hash(prev_hash_hex, _fast_encoder.encode(body).encode()) == expected:
            return True
    except (ValueError, TypeError, UnicodeEncodeError):
        pass  # NaN, a lone surrogate, a type json does not know: rfc8785 decides
    return body_hash(prev_hash_hex, rfc8785.dumps(body)) == expected


_HEX_HASH = re.compile(r"[0-9a-f]{64}")


def verify_chain(events: Iterable[dict], *, start_prev_hash: str = GENESIS_HASH, start_seq: int = 1) -> str:
    """Check a run of consecutive events; return the last entry_hash (the head) or raise ChainBroken.

    `start_prev_hash` and `start_seq` say where the run begins: the genesis for a whole chain, or
    the entry_hash and seq that precede a slice. Checks, per event in order: seq is the next
    number (a gap, duplicate or reorder is named as such), prev_hash links to the previous event,
    and entry_hash is the hash of the event's canonical JSON.
    """
    return _verify(((event, None) for event in events), start_prev_hash, start_seq)


def verify_lines(lines: Iterable[bytes | str], *, start_prev_hash: str = GENESIS_HASH, start_seq: int = 1) -> str:
    """verify_chain over JSON Lines, one event (with its entry_hash) a line, as an export holds them.

    Where a line is the event's canonical JSON, its bytes less the entry_hash member are hashed as
    they are, without serialising the event again (three times faster); any other spelling of the
    same event still verifies, through verify_chain's own path.
    """
    pairs = (_parse_line(number, start_seq + number - 1, line) for number, line in enumerate(lines, start=1))
    return _verify(pairs, start_prev_hash, start_seq)


def _parse_line(number: int, expected_seq: int, line: bytes | str) -> tuple[dict, bytes | None]:
    raw = line.encode() if isinstance(line, str) else line
    raw = raw.rstrip(b"\r\n")
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChainBroken(expected_seq, f"line {number} is not JSON: {exc}") from None
    claimed = event.get(ENTRY_HASH) if isinstance(event, dict) else None
    if not isinstance(claimed, str):
        return event, None
    member = f'"{ENTRY_HASH}":"{claimed}"'.encode()
    for cut in (member + b",", b"," + member):
        if cut in raw:
            return event, raw.replace(cut, b"", 1)
    return event, None


def _verify(pairs: Iterable[tuple[dict, bytes | None]], prev_hash: str, expected_seq: int) -> str:
    for event, raw_body in pairs:
        if not isinstance(event, dict):
            raise ChainBroken(expected_seq, f"event {expected_seq} is not a JSON object")
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ChainBroken(expected_seq, f"seq is {seq!r}, not an integer")
        if seq != expected_seq:
            raise ChainBroken(seq, _sequence_problem(seq, expected_seq))
        if event.get("prev_hash") != prev_hash:
            raise ChainBroken(seq, f"prev_hash {event.get('prev_hash')!r} does not link to the previous {prev_hash}")
        claimed = event.get(ENTRY_HASH)
        if not isinstance(claimed, str) or not _HEX_HASH.fullmatch(claimed):
            raise ChainBroken(seq, f"entry_hash {claimed!r} is not a lowercase SHA-256 hex digest")
        try:
            matches = _hash_matches(prev_hash, event, claimed, raw_body)
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
