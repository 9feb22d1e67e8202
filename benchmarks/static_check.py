"""Static compatibility check of an adapter with 1,000+ tensors against its base,
reading safetensors headers only (what the pushing request does).

Target (issue 4): under 20 ms. Run: .venv/bin/python benchmarks/static_check.py
"""

import json
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.compat import static_compatibility  # noqa: E402
from registry.formats.safetensors_header import read_header  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "static-check"
HIDDEN, INTERMEDIATE, LAYERS, RANK = 64, 128, 72, 8
MODULES = {
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (HIDDEN, HIDDEN),
    "self_attn.v_proj": (HIDDEN, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (HIDDEN, INTERMEDIATE),
    "mlp.up_proj": (HIDDEN, INTERMEDIATE),
    "mlp.down_proj": (INTERMEDIATE, HIDDEN),
}


def write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = shape[0] * shape[1] * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        handle.truncate(8 + len(encoded) + offset)  # sparse data: only headers are ever read


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    base_shapes, adapter_shapes = {}, {}
    for layer in range(LAYERS):
        for module, (fan_in, fan_out) in MODULES.items():
            base_shapes[f"model.layers.{layer}.{module}.weight"] = [fan_out, fan_in]
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            adapter_shapes[f"{prefix}.lora_A.weight"] = [RANK, fan_in]
            adapter_shapes[f"{prefix}.lora_B.weight"] = [fan_out, RANK]
    write_safetensors(OUT / "model.safetensors", base_shapes)
    write_safetensors(OUT / "adapter_model.safetensors", adapter_shapes)
    config = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": 16,
        "target_modules": sorted(m.split(".")[1] for m in MODULES),
    }
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        result = static_compatibility(
            read_header(OUT / "adapter_model.safetensors").tensors,
            config,
            read_header(OUT / "model.safetensors").tensors,
        )
        samples.append((time.perf_counter() - started) * 1000)
        assert result.verdict == "pass", result.reasons
    samples.sort()
    report = {
        "adapter_tensors": len(adapter_shapes),
        "base_tensors": len(base_shapes),
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[189], 2),
        "target_met": samples[189] < 20,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
