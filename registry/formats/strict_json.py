"""The one JSON loader for everything a user sends: config files, tokenizer files,
shard indexes, safetensors headers, provenance and suite lines.

Python's `json` recurses once per nesting level, so 30,000 brackets (which fit in
a 64 KiB config) raise RecursionError deep inside the parser. The depth is bounded
by a linear scan of the text *before* the recursive parser runs, so a hostile
document is refused without ever descending into it. The loader also refuses what
JSON allows but Python or PostgreSQL cannot hold: NaN, Infinity, numbers that
overflow a float (`1e999`), integers of absurd length, and (for JSON that is
stored in the database) strings holding NUL or unpaired surrogates.

Refusals are `InvalidArtifact`s with stable codes; a caller that has its own
vocabulary (the safetensors header) renames them through `codes`.
"""

import json
import math
import re

import numpy

from registry.errors import InvalidArtifact

MAX_DEPTH = 64
MAX_INTEGER_DIGITS = 64  # far past any real count or size; keeps int() and PostgreSQL's numeric happy

# A JSON string: quote, then runs of ordinary bytes and escapes, then quote.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Opening brackets step the depth up, closing ones down (UTF-8 never hides these bytes in a character).
_BRACKET_STEP = numpy.zeros(256, dtype=numpy.int32)
_BRACKET_STEP[list(b"[{")] = 1
_BRACKET_STEP[list(b"]}")] = -1
_CHUNK = 4 * 1024 * 1024
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL text and JSON hold neither

DEFAULT_CODES = {
    "invalid": "json_invalid",
    "duplicate_key": "json_duplicate_key",
    "nonfinite": "json_invalid",
    "too_deep": "json_too_deep",
    "number_out_of_range": "json_number_out_of_range",
    "string_invalid": "json_string_invalid",
}


class _Refusal(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def nesting_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text `data`, without building anything.

    Strings are cut out first (a bracket inside a string is not structure); what is
    left is a running sum over the brackets, in C and in bounded chunks, so 64 MiB of
    brackets cost a fraction of a second. For invalid JSON the answer may be too
    high, never too low for text that `json` accepts.
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):
        chunk = numpy.frombuffer(brackets, dtype=numpy.uint8, count=min(_CHUNK, len(brackets) - start), offset=start)
        running = numpy.cumsum(_BRACKET_STEP[chunk]) + depth
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def _refuse_duplicates(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _Refusal("duplicate_key", f"repeats the key {duplicate[:80]!r} in one object")
    return value


def _refuse_constant(name):
    raise _Refusal("nonfinite", f"contains {name}, which is not JSON")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _Refusal("number_out_of_range", f"contains an integer of {len(digits)} digits")
    return int(digits)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refusal("number_out_of_range", f"contains {literal[:40]}, which overflows a 64-bit float")
    return value


def _check_storable(value) -> None:
    """Strings PostgreSQL cannot store: NUL anywhere, or halves of a surrogate pair."""
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            raise _Refusal("string_invalid", "contains \\u0000 or an unpaired surrogate in a string")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key)
            _check_storable(item)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item)


def _parse(data: bytes, text: str, max_depth: int, storable: bool):
    # Counting brackets is cheap; only text that could nest too deeply is scanned.
    if data.count(b"[") + data.count(b"{") > max_depth and nesting_depth(data) > max_depth:
        raise _Refusal("too_deep", f"nests arrays or objects more than {max_depth} levels deep")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise _Refusal("invalid", f"is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if storable:
        _check_storable(value)
    return value


def load_json(
    data: bytes | str,
    label: str,
    *,
    max_depth: int = MAX_DEPTH,
    storable: bool = False,
    codes: dict[str, str] | None = None,
    prefix: str | None = None,
):
    """Parse strict UTF-8 JSON or refuse it with a stable code.

    `storable` also refuses strings PostgreSQL cannot hold (use it for JSON that is
    written to a JSONField). `codes` renames refusal codes; `prefix` starts the
    message (default: the label, quoted).
    """
    codes = {**DEFAULT_CODES, **(codes or {})}
    lead = prefix if prefix is not None else f"{label!r}"
    if isinstance(data, str):
        text, data = data, data.encode("utf-8", errors="surrogatepass")
    else:
        try:
            text = data.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise InvalidArtifact(codes["invalid"], f"{lead} is not valid UTF-8", file=label) from None
    try:
        return _parse(data, text, max_depth, storable)
    except _Refusal as refusal:
        raise InvalidArtifact(codes[refusal.reason], f"{lead} {refusal.message}", file=label) from None


def check_storable(value, label: str) -> None:
    """Refuse a value built elsewhere (not parsed here) that PostgreSQL's JSON could not hold."""
    try:
        _check_storable(value)
        json.dumps(value, allow_nan=False)
    except _Refusal as refusal:
        raise InvalidArtifact(DEFAULT_CODES[refusal.reason], f"{label} {refusal.message}") from None
    except (TypeError, ValueError, RecursionError):
        raise InvalidArtifact("json_invalid", f"{label} holds values JSON cannot represent") from None
