"""What a worker holds resident, as its heartbeat reports it: typed, validated, Django-free.

The worker's cache (workers/runtime/resident.py) builds a `ResidentSnapshot`; the heartbeat stores
`to_dict()` in `Worker.resident` (JSON); routing, metrics, the Workers page and `adapterctl workers`
read it back with `from_dict`. The JSON shape is the one workers reported before this class
existed, plus each adapter's `slot` (the peft adapter name holding its weights) and more counters
in `stats`; a snapshot from an older worker (no `slot`) reads with `slot` equal to the adapter id,
which is what those workers named their slots.

Readers of stored rows use `from_dict(data, strict=False)`: an entry that does not validate is left
out and described in `problems`, so one bad heartbeat cannot break a page, a scrape or routing.
`strict=True` raises `SnapshotError` naming the first bad field.
"""

import math
from dataclasses import asdict, dataclass, field, fields

MAX_ENTRIES = 10_000  # far above any worker's cache; bounds what a bad heartbeat makes readers walk
MAX_TEXT = 1_000


class SnapshotError(ValueError):
    pass


class _Bad(Exception):
    """One entry's field that does not validate: where (".bytes") and what is wrong."""

    def __init__(self, where: str, what: str):
        super().__init__(where, what)
        self.where, self.what = where, what


@dataclass(frozen=True)
class ResidentBaseEntry:
    id: str  # base model version id
    ref: str
    head: str  # causal_lm | classification | encoder: the model class the base is loaded as
    bytes: int  # parameters and buffers as resident on the device


@dataclass(frozen=True)
class ResidentAdapterEntry:
    id: str  # adapter version id
    ref: str
    base: str  # the id of the resident base it is attached to
    slot: str  # the peft adapter name holding its weights (kept across in-place hot-swaps)


@dataclass(frozen=True)
class CacheStats:
    hits: int = 0  # jobs whose base was resident
    misses: int = 0  # jobs that loaded their base
    evictions: int = 0  # bases evicted to make room
    attach_count: int = 0  # every activate(): switches, loads and hot-swaps
    attach_seconds_total: float = 0.0
    switches: int = 0  # the adapter was attached already: set_adapter only
    loads: int = 0  # new LoRA layers built (PeftModel.from_pretrained or load_adapter)
    hotswaps: int = 0  # weights copied in place into a same-shape slot (peft hotswap)
    hotswap_fallbacks: int = 0  # a same-shape slot was offered but the hot-swap raised: loaded instead
    adapter_evictions: int = 0  # slots given up (deleted, or hot-swapped over)


@dataclass(frozen=True)
class ResidentSnapshot:
    bases: tuple[ResidentBaseEntry, ...] = ()
    adapters: tuple[ResidentAdapterEntry, ...] = ()
    budget_bytes: int | None = None
    stats: CacheStats = field(default_factory=CacheStats)
    problems: tuple[str, ...] = field(default=(), compare=False)  # what a lenient read left out

    # --- questions the readers ask ------------------------------------------------------------
    def holds_base(self, base_id) -> bool:
        return any(base.id == str(base_id) for base in self.bases)

    def holds_adapter(self, adapter_id) -> bool:
        return any(adapter.id == str(adapter_id) for adapter in self.adapters)

    def base(self, base_id) -> ResidentBaseEntry | None:
        return next((base for base in self.bases if base.id == str(base_id)), None)

    @property
    def resident_bytes(self) -> int:
        return sum(base.bytes for base in self.bases)

    # --- the wire ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "bases": [asdict(base) for base in self.bases],
            "adapters": [asdict(adapter) for adapter in self.adapters],
            "budget_bytes": self.budget_bytes,
            "stats": asdict(self.stats),
        }

    @classmethod
    def from_dict(cls, data, *, strict: bool = True) -> "ResidentSnapshot":
        """A snapshot from its JSON form; None or {} (a worker that holds nothing yet) is empty."""
        reader = _Reader(strict)
        if data is None or data == {}:
            return cls()
        if not isinstance(data, dict):
            reader.problem("snapshot", f"expected an object, got {_kind(data)}")
            return cls(problems=tuple(reader.problems))
        bases = [base for _, base in reader.indexed(data, "bases", _base)]
        known = {base.id for base in bases}
        adapters = []
        for index, adapter in reader.indexed(data, "adapters", _adapter):
            if adapter.base in known:
                adapters.append(adapter)
            else:
                reader.problem(f"adapters[{index}].base", f"{adapter.base!r} is no base of this snapshot")
        return cls(
            bases=tuple(bases),
            adapters=tuple(adapters),
            budget_bytes=reader.optional_count(data, "budget_bytes"),
            stats=reader.stats(data.get("stats")),
            problems=tuple(reader.problems),
        )


class _Reader:
    """Collects problems (lenient) or raises the first one (strict)."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        message = f"{where}: {what}"
        if self.strict:
            raise SnapshotError(f"resident snapshot {message}")
        self.problems.append(message)

    def indexed(self, data: dict, key: str, build) -> list:
        items = data.get(key, [])
        if not isinstance(items, list):
            self.problem(key, f"expected a list, got {_kind(items)}")
            return []
        if len(items) > MAX_ENTRIES:
            self.problem(key, f"{len(items)} entries, more than {MAX_ENTRIES}; the rest is ignored")
        built = []
        for index, item in enumerate(items[:MAX_ENTRIES]):
            try:
                built.append((index, build(item)))
            except _Bad as bad:
                self.problem(f"{key}[{index}]{bad.where}", bad.what)
        return built

    def optional_count(self, data: dict, key: str) -> int | None:
        value = data.get(key)
        if value is None or _is_count(value):
            return value
        self.problem(key, f"expected a non-negative integer or null, got {_kind(value)}")
        return None

    def stats(self, value) -> CacheStats:
        if value is None:
            return CacheStats()
        if not isinstance(value, dict):
            self.problem("stats", f"expected an object, got {_kind(value)}")
            return CacheStats()
        counters = {}
        for counter in fields(CacheStats):  # unknown keys (a newer worker's counters) are ignored
            raw = value.get(counter.name, counter.default)
            if counter.type is float and _is_number(raw):
                counters[counter.name] = float(raw)
            elif _is_count(raw):
                counters[counter.name] = raw
            else:
                self.problem(f"stats.{counter.name}", f"expected a non-negative number, got {_kind(raw)}")
        return CacheStats(**counters)


def _base(item) -> ResidentBaseEntry:
    entry = _object(item)
    return ResidentBaseEntry(
        id=_text(entry, "id", required=True),
        ref=_text(entry, "ref"),
        head=_text(entry, "head"),
        bytes=_count(entry, "bytes"),
    )


def _adapter(item) -> ResidentAdapterEntry:
    entry = _object(item)
    identifier = _text(entry, "id", required=True)
    return ResidentAdapterEntry(
        id=identifier,
        ref=_text(entry, "ref"),
        base=_text(entry, "base", required=True),
        slot=_text(entry, "slot") or identifier,  # older workers named each slot after its adapter
    )


def _object(item) -> dict:
    if not isinstance(item, dict):
        raise _Bad("", f"expected an object, got {_kind(item)}")
    return item


def _text(entry: dict, key: str, *, required: bool = False) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _Bad(f".{key}", f"expected a string of at most {MAX_TEXT} characters, got {_kind(value)}")
    if required and not value:
        raise _Bad(f".{key}", "missing")
    return value


def _count(entry: dict, key: str) -> int:
    value = entry.get(key, 0)
    if not _is_count(value):
        raise _Bad(f".{key}", f"expected a non-negative integer, got {_kind(value)}")
    return value


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _kind(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '…' if len(text) > 40 else text}"
