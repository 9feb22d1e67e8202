"""Base models kept loaded within a memory budget (LRU by bytes), with PEFT adapters
attached in a bounded number of slots per base and switched per job without reloading the base.

Both orders are registry/residency/eviction.py's LRUPolicy, the code the residency simulator
measures as the engines' LRU: bases are evicted by bytes (`make_room` against the budget),
adapter slots by count (`WORKER_MAX_ADAPTERS_PER_BASE`), never the adapter a job is using.

Attaching an adapter that is not resident takes one of three paths (counted in `stats`, logged):
- load: peft builds new LoRA layers for it (`PeftModel.from_pretrained`, `load_adapter`) in a new
  slot, while the base has a free slot;
- hotswap: the base's slots are full and the slot the policy gives up holds an adapter of the same
  shape (LoRA rank, alpha, target modules, dtype; no rank or alpha patterns, no modules_to_save):
  its weights are replaced in place with peft's hot-swap (peft.utils.hotswap), several times
  cheaper than building layers (BENCHMARKS.md);
- load + evict: the slot given up holds another shape (or the hot-swap raised): the adapter is
  loaded into a new slot and the old slot deleted.
A slot keeps its peft adapter name across hot-swaps, so each attached adapter records its slot,
and set_adapter is always called with the slot.

Needs only torch, transformers and peft. Where a version's files are and how its adapter
config is read are the subclass's: workers/runtime/cache.ResidentCache asks the registry
(materialized blobs, RE2-resolved patterns); benchmarks/gpu_runtime.py reads plain
directories on a machine without Django. Versions are duck-typed: a base has `id`, `ref`
and `total_bytes`, an adapter `id` and `ref`.
"""

import functools
import itertools
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from registry.residency.eviction import LRUPolicy, make_room
from registry.residency.snapshot import CacheStats, ResidentAdapterEntry, ResidentBaseEntry, ResidentSnapshot

logger = logging.getLogger(__name__)

# Config fields that fix what a LoRA slot's layers look like and compute: equal values (and equal
# weight dtypes) make two adapters hot-swappable. peft's own check_hotswap_configs_compatible runs too.
SHAPE_FIELDS = (
    "r",
    "lora_alpha",
    "target_modules",
    "exclude_modules",
    "layers_to_transform",
    "layers_pattern",
    "use_rslora",
    "lora_dropout",
    "fan_in_fan_out",
)
# Fields that only label an adapter or say how it was initialised for training.
UNRELATED_FIELDS = {
    "rank_pattern",  # must be empty: see adapter_shape
    "alpha_pattern",
    "task_type",
    "peft_type",
    "auto_mapping",
    "peft_version",
    "base_model_name_or_path",
    "revision",
    "inference_mode",
    "init_lora_weights",
    "loftq_config",
    "eva_config",
    "corda_config",
    "lora_ga_config",
    "runtime_config",
    "megatron_core",
    "qalora_group_size",
    "ensure_weight_tying",
}
# Every other field must keep LoraConfig's default: peft's hot-swap copies lora_A/lora_B matrices
# only (a modules_to_save classifier made it raise KeyError), so anything more (modules_to_save,
# DoRA, bias, trainable tokens, a newer peft's variants) always gets new layers.


@dataclass
class AttachedAdapter:
    id: str
    ref: str
    slot: str  # the peft adapter name whose layers hold this adapter's weights
    shape: tuple | None  # None: never hot-swapped (see NOT_SWAPPABLE)


@dataclass
class ResidentBase:
    version_id: str
    ref: str
    head: str
    model: object
    tokenizer: object
    bytes: int
    adapters: dict = field(default_factory=dict)  # adapter id -> AttachedAdapter
    active: str | None = None  # the active slot (peft adapter name)
    order: LRUPolicy = field(default_factory=LRUPolicy)  # adapter ids, the slot to give up first

    def slot_names(self) -> set[str]:
        return {attached.slot for attached in self.adapters.values()}


def adapter_shape(config, directory: Path) -> tuple | None:
    """What must match for a hot-swap; None when the adapter is more than plain LoRA matrices."""
    from peft import LoraConfig

    if type(config) is not LoraConfig:
        return None
    if config.rank_pattern or config.alpha_pattern:
        # peft's hot-swap recomputes each layer's scaling from r and lora_alpha alone (its pattern
        # lookup never matches a full weight key), so per-module ranks or alphas would come out wrong.
        return None
    defaults = _lora_defaults()
    for name in vars(defaults):
        if (
            name not in SHAPE_FIELDS
            and name not in UNRELATED_FIELDS
            and getattr(config, name, None) != getattr(defaults, name)
        ):
            return None
    values = tuple((name, _canonical(getattr(config, name, None))) for name in SHAPE_FIELDS)
    return (*values, ("dtypes", _weight_dtypes(directory)))


@functools.cache
def _lora_defaults():
    from peft import LoraConfig

    return LoraConfig()


def _canonical(value):
    if isinstance(value, (set, frozenset, list, tuple)):
        return tuple(sorted(map(str, value)))
    if isinstance(value, dict):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    return str(value) if value is not None and not isinstance(value, (int, float, bool, str)) else value


def _weight_dtypes(directory: Path) -> tuple:
    """The dtypes stored in the adapter's safetensors file, read from its header only."""
    from safetensors import safe_open

    with safe_open(directory / "adapter_model.safetensors", framework="pt") as weights:
        return tuple(sorted({weights.get_slice(name).get_dtype() for name in weights.keys()}))


class DirectoryCache:
    """The cache itself; subclasses answer `version_directory`, `adapter_config` and `seed`."""

    def __init__(self, device: str, budget_bytes: int, max_adapters: int, root: Path, *, hotswap: bool = True):
        self.device = device
        self.budget_bytes = budget_bytes
        self.max_adapters = max(1, max_adapters)
        self.root = root
        self.hotswap = hotswap  # False: always build new layers (the benchmark's load_adapter path)
        self.bases: dict[tuple, ResidentBase] = {}
        self.base_order = LRUPolicy()
        self.clock = itertools.count()  # the policies' use index
        self.lock = threading.Lock()  # the heartbeat thread reads snapshots
        self.stats = asdict(CacheStats())

    # --- what a subclass says about its versions ----------------------------------------
    @property
    def seed(self) -> int:
        """Seeds torch before a base loads, so a fresh task head starts the same everywhere."""
        raise NotImplementedError

    def version_directory(self, version) -> Path:
        """A directory holding the version's files under their names."""
        raise NotImplementedError

    def adapter_config(self, adapter, directory: Path):
        """The peft config the adapter is attached with."""
        raise NotImplementedError

    # --- bases -----------------------------------------------------------------------
    def acquire(self, base, head: str, labels: int) -> tuple[ResidentBase, bool]:
        key = (str(base.id), head, labels)
        with self.lock:
            if key in self.bases:
                self.base_order.touch(key, next(self.clock))
                self.stats["hits"] += 1
                return self.bases[key], True
            self.stats["misses"] += 1
        self._make_room(base.total_bytes)
        resident = self._load(base, head, labels)
        with self.lock:
            self.bases[key] = resident
            self.base_order.touch(key, next(self.clock))
        return resident, False

    def discard(self, resident: ResidentBase) -> None:
        with self.lock:
            for key, held in list(self.bases.items()):
                if held is resident:
                    del self.bases[key]
                    self.base_order.remove(key)

    def _make_room(self, needed: int) -> None:
        with self.lock:
            sizes = {key: resident.bytes for key, resident in self.bases.items()}
            for key in make_room(self.base_order, sizes, needed, self.budget_bytes):
                evicted = self.bases.pop(key)
                self.stats["evictions"] += 1
                logger.info("evicting %s to make room", evicted.ref)
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _load(self, base, head: str, labels: int) -> ResidentBase:
        import torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

        directory = self.version_directory(base)
        torch.manual_seed(self.seed)  # a fresh task head starts the same everywhere
        # The checkpoint's own precision is kept on every device: on the GPU "auto" says so, and
        # transformers 5 also defaults to "auto" when no dtype is given, so a bf16 checkpoint stays bf16
        # on the CPU too (not upcast to float32).
        precision = {"dtype": "auto"} if self.device == "cuda" else {}
        if head == "classification":
            model = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=labels, **precision)
        elif head == "causal_lm":
            model = AutoModelForCausalLM.from_pretrained(directory, **precision)
        else:
            model = AutoModel.from_pretrained(directory, **precision)
        model.to(self.device).eval()
        size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
        return ResidentBase(str(base.id), base.ref, head, model, _tokenizer(directory, model.config.vocab_size), size)

    # --- adapters ------------------------------------------------------------------------
    def activate(self, resident: ResidentBase, adapter) -> float:
        """Make `adapter` the active adapter on the resident base; returns seconds spent."""
        started = time.perf_counter()
        attached = resident.adapters.get(str(adapter.id))
        path = "switches"
        if attached is None:
            attached, path = self._attach(resident, adapter)
        if resident.model.active_adapter != attached.slot:
            resident.model.set_adapter(attached.slot)
        resident.active = attached.slot
        resident.order.touch(attached.id, next(self.clock))
        self._trim_adapters(resident)
        elapsed = time.perf_counter() - started
        with self.lock:
            self.stats[path] += 1
            self.stats["attach_count"] += 1
            self.stats["attach_seconds_total"] += elapsed
        if path != "switches":
            logger.info(
                "attached %s to %s by %s in slot %s (%.1f ms)",
                attached.ref,
                resident.ref,
                path.removesuffix("s"),  # the counter's name: "loads" -> "load", "hotswaps" -> "hotswap"
                attached.slot,
                elapsed * 1000,
            )
        return elapsed

    def _attach(self, resident: ResidentBase, adapter) -> tuple[AttachedAdapter, str]:
        """A slot for an adapter that is not attached: hot-swapped into a same-shape slot, else loaded."""
        directory = self.version_directory(adapter)
        config = self.adapter_config(adapter, directory)
        shape = adapter_shape(config, directory)
        given_up = self._slot_to_give_up(resident)
        if given_up is not None and self.hotswap and shape is not None and given_up.shape == shape:
            try:
                return self._hotswap(resident, given_up, adapter, directory, config, shape), "hotswaps"
            except Exception:  # the slot may be half-written: it goes, and the adapter gets new layers
                logger.warning(
                    "hot-swap of %s into slot %s failed; loading it instead", adapter.ref, given_up.slot, exc_info=True
                )
                with self.lock:
                    self.stats["hotswap_fallbacks"] += 1
        attached = self._load_adapter(resident, adapter, directory, config, shape)
        if given_up is not None:  # after the load: peft cannot add an adapter to a model left with none
            self._evict_adapter(resident, given_up)
        return attached, "loads"

    def _slot_to_give_up(self, resident: ResidentBase) -> AttachedAdapter | None:
        """The policy's victim when every slot is taken; None while a slot is free."""
        if len(resident.adapters) < self.max_adapters:
            return None
        victim = resident.order.victim()
        return resident.adapters[victim] if victim is not None else None

    def _hotswap(self, resident, given_up: AttachedAdapter, adapter, directory: Path, config, shape) -> AttachedAdapter:
        """The adapter's weights copied into `given_up`'s slot in place (same layers, same name).

        peft's hotswap_adapter would re-read adapter_config.json and match its rank and alpha
        patterns with Python's re; the worker hands peft only the config with the patterns resolved
        at ingest (see cache.peft_config_for), so it runs hotswap_adapter's steps with that config:
        peft's compatibility check, peft's weight loading and key mapping, peft's in-place swap.
        """
        from peft.mapping import PEFT_TYPE_TO_PREFIX_MAPPING
        from peft.utils.hotswap import check_hotswap_configs_compatible, hotswap_adapter_from_state_dict
        from peft.utils.save_and_load import _insert_adapter_name_into_state_dict, load_peft_weights

        model, slot = resident.model, given_up.slot
        check_hotswap_configs_compatible(model.peft_config[slot], config)
        prefix = PEFT_TYPE_TO_PREFIX_MAPPING[config.peft_type]
        weights = _insert_adapter_name_into_state_dict(
            load_peft_weights(str(directory), device=self.device), adapter_name=slot, parameter_prefix=prefix
        )
        hotswap_adapter_from_state_dict(model, weights, slot, config, parameter_prefix=prefix)
        model.peft_config[slot] = config  # the slot now computes with this adapter's config
        self._forget(resident, given_up)
        attached = AttachedAdapter(str(adapter.id), adapter.ref, slot, shape)
        with self.lock:  # the heartbeat thread reads the adapters of every base
            resident.adapters[attached.id] = attached
        return attached

    def _load_adapter(self, resident, adapter, directory: Path, config, shape) -> AttachedAdapter:
        from peft import PeftModel

        slot = self._new_slot_name(resident)
        if not isinstance(resident.model, PeftModel):
            resident.model = PeftModel.from_pretrained(resident.model, directory, adapter_name=slot, config=config)
        else:
            # Registering the config first makes load_adapter use it instead of re-reading the file.
            resident.model.add_adapter(slot, config)
            resident.model.load_adapter(directory, adapter_name=slot)
        resident.model.to(self.device).eval()
        attached = AttachedAdapter(str(adapter.id), adapter.ref, slot, shape)
        with self.lock:  # the heartbeat thread reads the adapters of every base
            resident.adapters[attached.id] = attached
        return attached

    @staticmethod
    def _new_slot_name(resident: ResidentBase) -> str:
        # Fixed length and random: peft's hot-swap finds a slot's tensors by substring, so no
        # slot name may be part of another's.
        taken = set(getattr(resident.model, "peft_config", {})) | resident.slot_names()
        while (name := f"slot-{uuid.uuid4().hex[:12]}") in taken:
            pass
        return name

    def _evict_adapter(self, resident: ResidentBase, attached: AttachedAdapter) -> None:
        resident.model.delete_adapter(attached.slot)
        self._forget(resident, attached)

    def _forget(self, resident: ResidentBase, attached: AttachedAdapter) -> None:
        with self.lock:
            del resident.adapters[attached.id]
            self.stats["adapter_evictions"] += 1
        resident.order.remove(attached.id)

    def _trim_adapters(self, resident: ResidentBase) -> None:
        """Back within max_adapters (a fallback load can go one over); never the active adapter."""
        active = {a.id for a in resident.adapters.values() if a.slot == resident.active}
        while len(resident.adapters) > self.max_adapters:
            victim = resident.order.victim(skip=active)
            if victim is None:
                break
            self._evict_adapter(resident, resident.adapters[victim])

    def snapshot(self) -> ResidentSnapshot:
        with self.lock:
            bases = list(self.bases.values())
            return ResidentSnapshot(
                bases=tuple(ResidentBaseEntry(b.version_id, b.ref, b.head, b.bytes) for b in bases),
                adapters=tuple(
                    ResidentAdapterEntry(a.id, a.ref, b.version_id, a.slot) for b in bases for a in b.adapters.values()
                ),
                budget_bytes=self.budget_bytes,
                stats=CacheStats(**self.stats),
            )


class ByteTokenizer:
    """For bases shipped without a tokenizer: bytes folded into the vocabulary."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        return [b % self.vocab_size for b in text.encode()] or [0]

    def decode(self, ids) -> str:
        return bytes(int(i) % 256 for i in ids).decode(errors="replace")


class HFTokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, truncation=True, max_length=256)["input_ids"]

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _tokenizer(directory: Path, vocab_size: int):
    if (directory / "tokenizer.json").exists() or (directory / "tokenizer.model").exists():
        from transformers import AutoTokenizer

        return HFTokenizer(AutoTokenizer.from_pretrained(directory))
    return ByteTokenizer(vocab_size)
