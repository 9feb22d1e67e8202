"""Base models kept loaded within a memory budget (LRU by bytes), with PEFT adapters
attached and switched per job without reloading the base.

Needs only torch, transformers and peft. Where a version's files are and how its adapter
config is read are the subclass's: workers/runtime/cache.ResidentCache asks the registry
(materialized blobs, RE2-resolved patterns); benchmarks/gpu_runtime.py reads plain
directories on a machine without Django. Versions are duck-typed: a base has `id`, `ref`
and `total_bytes`, an adapter `id` and `ref`.
"""

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class ResidentBase:
    version_id: str
    ref: str
    head: str
    model: object
    tokenizer: object
    bytes: int
    adapters: OrderedDict = field(default_factory=OrderedDict)  # adapter id -> ref
    active: str | None = None


class DirectoryCache:
    """The cache itself; subclasses answer `version_directory`, `adapter_config` and `seed`."""

    def __init__(self, device: str, budget_bytes: int, max_adapters: int, root: Path):
        self.device = device
        self.budget_bytes = budget_bytes
        self.max_adapters = max_adapters
        self.root = root
        self.bases: OrderedDict[tuple, ResidentBase] = OrderedDict()
        self.lock = threading.Lock()  # the heartbeat thread reads snapshots
        self.stats = {"hits": 0, "misses": 0, "evictions": 0, "attach_count": 0, "attach_seconds_total": 0.0}

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
                self.bases.move_to_end(key)
                self.stats["hits"] += 1
                return self.bases[key], True
            self.stats["misses"] += 1
        self._make_room(base.total_bytes)
        resident = self._load(base, head, labels)
        with self.lock:
            self.bases[key] = resident
        return resident, False

    def discard(self, resident: ResidentBase) -> None:
        with self.lock:
            for key, held in list(self.bases.items()):
                if held is resident:
                    del self.bases[key]

    def _make_room(self, needed: int) -> None:
        with self.lock:
            while self.bases and sum(b.bytes for b in self.bases.values()) + needed > self.budget_bytes:
                key, evicted = self.bases.popitem(last=False)
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
        from peft import PeftModel

        started = time.perf_counter()
        name = str(adapter.id)
        if name not in resident.adapters:
            directory = self.version_directory(adapter)
            config = self.adapter_config(adapter, directory)
            if not isinstance(resident.model, PeftModel):
                resident.model = PeftModel.from_pretrained(resident.model, directory, adapter_name=name, config=config)
            else:
                # Registering the config first makes load_adapter use it instead of re-reading the file.
                resident.model.add_adapter(name, config)
                resident.model.load_adapter(directory, adapter_name=name)
            resident.model.to(self.device).eval()
            resident.adapters[name] = adapter.ref
        resident.model.set_adapter(name)
        resident.active = name
        resident.adapters.move_to_end(name)
        self._trim_adapters(resident)
        elapsed = time.perf_counter() - started
        with self.lock:
            self.stats["attach_count"] += 1
            self.stats["attach_seconds_total"] += elapsed
        return elapsed

    def _trim_adapters(self, resident: ResidentBase) -> None:
        while len(resident.adapters) > self.max_adapters:
            oldest = next(name for name in resident.adapters if name != resident.active)
            resident.model.delete_adapter(oldest)
            del resident.adapters[oldest]

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "bases": [
                    {"id": b.version_id, "ref": b.ref, "head": b.head, "bytes": b.bytes} for b in self.bases.values()
                ],
                "adapters": [
                    {"id": a, "ref": ref, "base": b.version_id}
                    for b in self.bases.values()
                    for a, ref in b.adapters.items()
                ],
                "budget_bytes": self.budget_bytes,
                "stats": dict(self.stats),
            }


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
