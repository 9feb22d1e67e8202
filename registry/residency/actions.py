"""A worker's desired residency compiled into the calls its serving engine accepts (issue 12, item 4).

Plain Python, no Django: the API compiles against a worker's previous plan, `adapterctl residency
apply` against what the engine holds now, and both must give the same calls for the same input.

The desired state is the planner's per-worker output with paths added:
    {"gpu": [entry, ...], "host": [...], "disk": [...]}, each list hottest first, where an entry is
    {"ref": "ns/name@sha256:<hex>", "path": "ns/name/<hex>", "bytes": int, "rank": int, ...}.
The engine name of an adapter (`lora_name`) is its immutable ref, so a name always means the same
bytes and a load is never needed to "refresh" one.

The engines' runtime LoRA APIs, as their sources define them:
- vLLM (vllm/entrypoints/openai/models/serving.py, OpenAIServingModels; the routes exist only with
  VLLM_ALLOW_RUNTIME_LORA_UPDATING=True): `POST /v1/load_lora_adapter {"lora_name","lora_path"}`
  answers 200 "Success: LoRA adapter '<name>' added successfully." and 400 when the name is already
  loaded; `POST /v1/unload_lora_adapter {"lora_name"}` answers 404 when it is not. `GET /v1/models`
  lists each loaded LoRA as a card with `id` = lora_name, `root` = lora_path and `parent` = the
  base model (base cards have no parent). vLLM alone decides which loaded adapters sit in its
  `--max-loras` GPU slots (LRU over its `--max-cpu-loras` cache), so GPU and host entries are both
  simply loaded, and evicting means unloading.
- SGLang (python/sglang/srt/entrypoints/http_server.py, io_struct.LoadLoRAAdapterReqInput):
  `POST /load_lora_adapter {"lora_name","lora_path","pinned"}` and `POST /unload_lora_adapter
  {"lora_name"}` answer `{"success", "error_message", "loaded_adapters": {name: path}}`, 400 when
  success is false. A pinned adapter keeps a GPU slot (`--max-loras-per-batch`; SGLang allows at
  most max-loras-per-batch - 1 pinned) until unloaded, so GPU entries load pinned and host entries
  unpinned, except a GPU entry the planner marked `"pinned": false` (it keeps only the hottest part
  of each worker's GPU capacity pinned and leaves the rest to SGLang's LRU, registry/residency/
  planner.py). Pinning cannot be changed in place: a change is an unload followed by a load.
  Its `/v1/models` lists only the base model, so the caller must remember what it loaded.

Order: every unload comes first, so that the engine's capacity is free before anything loads; then
loads, GPU entries before host entries, each hottest first, so that an interrupted run has put the
most valuable adapters in place. Adapters the engine holds under names that are not registry refs
were loaded by someone else and are left alone.
"""

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ENGINES = ("vllm", "sglang")
LOADED_TIERS = ("gpu", "host")  # disk entries are only fetched to local disk, never sent to the engine
TIERS = (*LOADED_TIERS, "disk")
REF_PATTERN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)@sha256:(?P<hex>[0-9a-f]{64})$"
)

ENDPOINTS = {
    "vllm": {"load": "/v1/load_lora_adapter", "unload": "/v1/unload_lora_adapter"},
    "sglang": {"load": "/load_lora_adapter", "unload": "/unload_lora_adapter"},
}


class DesiredStateError(ValueError):
    """A desired state that cannot be compiled (an entry without a ref, an unsafe path)."""


@dataclass(frozen=True)
class Held:
    """An adapter the engine holds now, by its engine name; `pinned` matters to SGLang only."""

    ref: str
    path: str = ""
    pinned: bool = False


@dataclass(frozen=True)
class Action:
    """One engine call: `op` load or unload of `ref`, POSTed to `path` with `body`; `why` for people."""

    op: str
    ref: str
    path: str
    body: dict = field(hash=False)
    why: str

    def as_dict(self) -> dict:
        return {"op": self.op, "ref": self.ref, "method": "POST", "path": self.path, "body": self.body, "why": self.why}


@dataclass(frozen=True)
class Wanted:
    """A desired adapter the engine should hold: from which tier, at which path, pinned or not."""

    ref: str
    tier: str
    path: str
    pinned: bool = False


def is_registry_ref(name: str) -> bool:
    """Whether an engine-side name is one of ours (an immutable ref) rather than someone else's adapter."""
    return bool(REF_PATTERN.match(name or ""))


def adapter_path(ref: str) -> str:
    """The relative directory a version is kept in: `ns/name/<digest hex>`, one per immutable ref."""
    match = REF_PATTERN.match(ref or "")
    if match is None:
        raise DesiredStateError(f"{ref!r} is not an immutable reference (namespace/name@sha256:<hex>)")
    return f"{match['name']}/{match['hex']}"


def safe_relative_path(path: str) -> str:
    """`path` if it stays inside the directory it is joined to; a plan is input, not trusted to be tidy."""
    parts = path.split("/") if isinstance(path, str) else []
    if not parts or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise DesiredStateError(f"the desired state names an unsafe adapter path {path!r}")
    return path


def wanted_adapters(desired: Mapping, tiers: Iterable[str] = LOADED_TIERS) -> list[Wanted]:
    """The desired adapters of `tiers` in load order (GPU then host, hottest first); a ref listed in two
    tiers counts once, in the first."""
    seen, wanted = set(), []
    for tier in tiers:
        for entry in desired.get(tier) or []:
            ref = entry.get("ref") if isinstance(entry, Mapping) else None
            if not is_registry_ref(ref):
                raise DesiredStateError(f"a {tier} entry of the desired state has no immutable ref: {entry!r}")
            if ref in seen:
                continue
            seen.add(ref)
            path = safe_relative_path(entry.get("path") or adapter_path(ref))
            wanted.append(Wanted(ref, tier, path, pinned=tier == "gpu" and entry.get("pinned", True) is not False))
    return wanted


def compile_actions(engine: str, desired: Mapping, held: Iterable[Held], directory: str = "") -> list[Action]:
    """The calls that take an engine holding `held` to `desired`; none when it is there already.

    `directory` prefixes each entry's relative path in `lora_path` (where the worker keeps its copies).
    """
    if engine not in ENGINES:
        raise DesiredStateError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    ours = {h.ref: h for h in held if is_registry_ref(h.ref)}
    wanted = wanted_adapters(desired)
    wanted_refs = {w.ref for w in wanted}
    unloads = [(ref, "evict") for ref in sorted(ours) if ref not in wanted_refs]
    loads = [w for w in wanted if w.ref not in ours]
    if engine == "sglang":
        repinned = [w for w in wanted if w.ref in ours and ours[w.ref].pinned != w.pinned]
        unloads += [(w.ref, "pin" if w.pinned else "unpin") for w in repinned]
        changed = {w.ref for w in repinned}
        loads = [w for w in wanted if w.ref not in ours or w.ref in changed]
    return [_unload(engine, ref, why) for ref, why in unloads] + [_load(engine, w, directory) for w in loads]


def _unload(engine: str, ref: str, why: str) -> Action:
    return Action("unload", ref, ENDPOINTS[engine]["unload"], {"lora_name": ref}, why)


def _load(engine: str, wanted: Wanted, directory: str) -> Action:
    lora_path = posixpath.join(directory, wanted.path) if directory else wanted.path
    body = {"lora_name": wanted.ref, "lora_path": lora_path}
    if engine == "sglang":
        body["pinned"] = wanted.pinned
    return Action("load", wanted.ref, ENDPOINTS[engine]["load"], body, wanted.tier)


def held_after(held: Iterable[Held], actions: Iterable[Action]) -> list[Held]:
    """What the engine holds once `actions` succeeded, so that a caller can record it."""
    state = {h.ref: h for h in held}
    for action in actions:
        if action.op == "unload":
            state.pop(action.ref, None)
        else:
            state[action.ref] = Held(action.ref, action.body["lora_path"], bool(action.body.get("pinned", False)))
    return list(state.values())


def held_from_desired(desired: Mapping | None, directory: str = "") -> list[Held]:
    """What an engine holds after applying `desired` (a previous plan): the API compiles against it."""
    if not desired:
        return []
    return [
        Held(w.ref, posixpath.join(directory, w.path) if directory else w.path, w.pinned)
        for w in wanted_adapters(desired)
    ]


def action_line(action: Action) -> str:
    """One line for a person: `load    ns/a@sha256:0123456789ab…  gpu, pinned`."""
    ref = action.ref
    match = REF_PATTERN.match(ref)
    short = f"{match['name']}@sha256:{match['hex'][:12]}…" if match else ref
    detail = action.why
    if action.op == "load" and action.body.get("pinned"):
        detail += ", pinned"
    return f"{action.op:<7} {short}  {detail}"
