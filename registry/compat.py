"""Static compatibility of an adapter with its base, from safetensors headers only.

Every LoRA pair must sit on a module that exists in the base, with shapes that
agree with the module's in/out features and the adapter's rank; dtypes must be
floating point on both sides; `modules_to_save` must exist in the base unless
they are a task head the adapter adds (a classifier on an encoder, say).
"""

from dataclasses import dataclass, field

from registry.formats.peft_config import PEFT_PREFIX, lora_pairs, rank_for
from registry.formats.safetensors_header import FLOAT_DTYPES, TensorInfo

# Heads that task models add on top of a bare base; an adapter may train them from scratch.
TASK_HEADS = {"classifier", "score", "qa_outputs", "lm_head", "pooler"}
MAX_REASONS = 20


@dataclass
class StaticResult:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


class _BaseIndex:
    """Looks modules up in the base, tolerating the task wrapper's prefix (`bert.`, `model.`)."""

    def __init__(self, base_tensors: dict[str, TensorInfo]):
        self.tensors = base_tensors
        self.prefixes = [""] + sorted({name.split(".", 1)[0] + "." for name in base_tensors if "." in name})

    def weight(self, module: str) -> TensorInfo | None:
        candidates = [module]
        if "." in module:
            candidates.append(module.split(".", 1)[1])  # adapter saved on a wrapper: "bert.encoder..."
        for candidate in candidates:
            for prefix in self.prefixes:  # base saved with a wrapper prefix the adapter lacks
                found = self.tensors.get(f"{prefix}{candidate}.weight")
                if found is not None:
                    return found
        return None


def _expected_shapes(part_a: str, weight: TensorInfo, rank: int) -> tuple[tuple, tuple] | None:
    if len(weight.shape) != 2:
        return None  # convolutions and fused layouts: checked dynamically
    rows, columns = weight.shape
    if part_a == "lora_embedding_A":
        return (rank, rows), (columns, rank)  # embedding weight is [num_embeddings, dim]
    return (rank, columns), (rows, rank)  # linear weight is [out_features, in_features]


def _check_pair(module: str, parts: dict, rank: int, base: _BaseIndex, reasons: list[str]) -> None:
    weight = base.weight(module)
    if weight is None:
        reasons.append(f"target module {module!r} does not exist in the base")
        return
    a_name = "lora_embedding_A" if "lora_embedding_A" in parts else "lora_A"
    b_name = "lora_embedding_B" if a_name == "lora_embedding_A" else "lora_B"
    a, b = parts.get(a_name), parts.get(b_name)
    if a is None or b is None:
        reasons.append(f"module {module!r} has an incomplete LoRA pair")
        return
    expected = _expected_shapes(a_name, weight, rank)
    if expected and (a.shape, b.shape) != expected:
        reasons.append(
            f"module {module!r}: {a_name} {list(a.shape)} / {b_name} {list(b.shape)} do not fit the base weight "
            f"{list(weight.shape)} at rank {rank} (expected {list(expected[0])} / {list(expected[1])})"
        )
    if weight.dtype not in FLOAT_DTYPES or a.dtype not in FLOAT_DTYPES or b.dtype not in FLOAT_DTYPES:
        reasons.append(
            f"module {module!r}: dtypes {a.dtype}/{b.dtype} on base {weight.dtype} are not all floating point"
        )


def _check_saved_modules(others: list[str], base: _BaseIndex, reasons: list[str], notes: list[str]) -> None:
    for name in others:
        module = name.removeprefix(PEFT_PREFIX).rsplit(".", 1)[0]
        if base.weight(module) is not None or base.tensors.get(name.removeprefix(PEFT_PREFIX)) is not None:
            continue
        if module.rsplit(".", 1)[-1] in TASK_HEADS or module in TASK_HEADS:
            notes.append(f"{module!r} is a task head the adapter adds to the base")
        else:
            reasons.append(f"saved module tensor {name!r} has no counterpart in the base")


def static_compatibility(
    adapter_tensors: dict[str, TensorInfo], adapter_config: dict, base_tensors: dict[str, TensorInfo]
) -> StaticResult:
    """Compare an adapter's tensor headers with its base's; headers only, no weights read."""
    if adapter_config.get("peft_type") != "LORA":
        return StaticResult(
            "pass", details={"note": f"{adapter_config.get('peft_type')} adapters are checked dynamically only"}
        )
    base = _BaseIndex(base_tensors)
    pairs, others = lora_pairs(adapter_tensors)
    reasons: list[str] = []
    notes: list[str] = []
    for module, parts in sorted(pairs.items()):
        rank = rank_for(module, adapter_config["r"], adapter_config.get("rank_pattern"))
        _check_pair(module, parts, rank, base, reasons)
    _check_saved_modules(others, base, reasons, notes)
    details = {"lora_modules": len(pairs), "saved_tensors": len(others), "notes": notes}
    if len(reasons) > MAX_REASONS:
        details["more_reasons"] = len(reasons) - MAX_REASONS
        reasons = reasons[:MAX_REASONS]
    return StaticResult("fail" if reasons else "pass", reasons, details)
