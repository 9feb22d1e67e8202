"""Base models kept loaded within a memory budget (LRU by bytes), with PEFT adapters
attached and switched per job without reloading the base.

One cache per worker process (GPU workers run a solo pool, so tasks share it).
"""

import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from registry.formats.peft_config import adapted_modules, peft_overrides, resolve_patterns
from registry.models import AdapterVersion, BaseModelVersion
from registry.services.jobs import version_tensor_headers
from registry.services.suites import CLASSIFICATION_HEADS, version_head
from registry.storage import get_blob_store

logger = logging.getLogger(__name__)


def materialize(version, root: Path) -> Path:
    """A directory holding the version's files under their names (links into the blob store)."""
    directory = root / str(version.id)
    if directory.exists():
        return directory
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{version.id}.", dir=root))
    store = get_blob_store()
    for file in version.files.all():
        store.materialize(file.blob_id, partial / file.path)
    try:
        partial.rename(directory)
    except OSError:  # another worker on this host finished first: same content
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def head_for(adapter: AdapterVersion) -> tuple[str, int]:
    """Which model class the base is loaded as for this adapter: ("causal_lm"|"classification"|"encoder", labels)."""
    head = version_head(adapter)  # the registry's rule, so its up-front suite check cannot drift
    if head == "classification":
        saved = set(adapter.modules_to_save or [])
        module = next(h for h in CLASSIFICATION_HEADS if h in saved)
        tensors = version_tensor_headers(adapter)
        weight = next(
            (
                t
                for name, t in tensors.items()
                if name.endswith(f"{module}.weight") or name.endswith(f"{module}.out_proj.weight")
            ),
            None,
        )
        return head, weight.shape[0] if weight is not None else 2
    return head, 0


def peft_config_for(adapter: AdapterVersion, directory: Path):
    """The adapter's peft config with every user regex replaced by explicit module names.

    The names were resolved with RE2 at ingest (`resolve_patterns`); handed to peft as
    lists, they are matched by name, so peft's Python `re` never runs a user pattern here.
    """
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(directory)
    resolved = adapter.resolved_patterns
    if resolved is None:  # ingested before patterns were resolved: the same rule, now
        resolved = resolve_patterns(adapter.config, adapted_modules(version_tensor_headers(adapter)))
    for key, value in peft_overrides(resolved).items():
        setattr(config, key, set(value) if isinstance(value, list) else value)
    config.inference_mode = True
    return config


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


class ResidentCache:
    def __init__(self, device: str, budget_bytes: int, max_adapters: int, root: Path):
        self.device = device
        self.budget_bytes = budget_bytes
        self.max_adapters = max_adapters
        self.root = root
        self.bases: OrderedDict[tuple, ResidentBase] = OrderedDict()
        self.lock = threading.Lock()  # the heartbeat thread reads snapshots
        self.stats = {"hits": 0, "misses": 0, "evictions": 0, "attach_count": 0, "attach_seconds_total": 0.0}

    # --- bases -----------------------------------------------------------------------
    def acquire(self, base: BaseModelVersion, head: str, labels: int) -> tuple[ResidentBase, bool]:
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

    def _load(self, base: BaseModelVersion, head: str, labels: int) -> ResidentBase:
        import torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

        directory = materialize(base, self.root / "versions")
        torch.manual_seed(settings.EVALUATION_SEED)  # a fresh task head starts the same everywhere
        # On a GPU keep the checkpoint's own precision (bf16/fp16); CPUs compute in float32.
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
    def activate(self, resident: ResidentBase, adapter: AdapterVersion) -> float:
        """Make `adapter` the active adapter on the resident base; returns seconds spent."""
        from peft import PeftModel

        started = time.perf_counter()
        name = str(adapter.id)
        if name not in resident.adapters:
            directory = materialize(adapter, self.root / "versions")
            config = peft_config_for(adapter, directory)
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
