"""Hot-swapping adapters on a resident base versus loading base + adapter from disk,
through the worker's own code path (ResidentCache), plus evaluation throughput.

Targets (issue 4): switching at least 20x faster than a cold load, for the MiniLM
base and a Llama-style base of at least 100M parameters.
Run: .venv/bin/python benchmarks/worker_runtime.py
"""

import json
import statistics
import time

from _common import OUT, machine_description, setup_django

REPEATS = 5


def build_models():
    from registry.demo import build

    root = OUT / "runtime-models"
    minilm = root / "minilm"
    if not (minilm / "model.safetensors").exists():
        build.export_minilm_base(minilm)
    llama = root / "llama-110m"
    if not (llama / "config.json").exists():
        build.build_llama_base(
            llama,
            hidden_size=768,
            num_layers=12,
            intermediate_size=2048,
            num_heads=12,
            num_kv_heads=12,
            vocab_size=32000,
            tokenizer_from=None,
        )
    adapters = {}
    for key, base, options in [
        ("minilm-a", minilm, {"task": "sequence-classification", "seed": 1}),
        ("minilm-b", minilm, {"task": "sequence-classification", "seed": 2}),
        ("llama-a", llama, {"seed": 1}),
        ("llama-b", llama, {"seed": 2}),
        ("llama-c", llama, {"seed": 3}),
    ]:
        directory = root / key
        if not (directory / "adapter_model.safetensors").exists():
            targets = ["query", "value"] if base == minilm else ["q_proj", "v_proj"]
            extra = {"modules_to_save": ["classifier"]} if base == minilm else {}
            build.build_lora_adapter(
                base, directory, r=16, lora_alpha=32, target_modules=targets, train_steps=1, **extra, **options
            )
        adapters[key] = directory
    return minilm, llama, adapters


def register(minilm, llama, adapters):
    from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
    from registry.uploads import incoming_from_directory

    versions = {}
    with incoming_from_directory(minilm) as files:
        versions["minilm"] = base_model_version_ingest(name="bench/minilm", files=files, user=None).version
    with incoming_from_directory(llama) as files:
        versions["llama"] = base_model_version_ingest(name="bench/llama-110m", files=files, user=None).version
    for key, directory in adapters.items():
        base = versions["minilm" if key.startswith("minilm") else "llama"]
        with incoming_from_directory(directory) as files:
            versions[key] = adapter_version_ingest(
                name=f"bench/{key}", files=files, base_ref=str(base.id), user=None
            ).version
    return versions


def new_cache():
    from django.conf import settings

    from workers.runtime.cache import ResidentCache

    return ResidentCache("cpu", 16 * 1024**3, 8, settings.WORKER_CACHE_DIR)


def cold_load(adapter) -> float:
    """A fresh cache: load the base from disk, attach the adapter."""
    from workers.runtime.cache import head_for

    cache = new_cache()
    started = time.perf_counter()
    resident, _ = cache.acquire(adapter.base_version, *head_for(adapter))
    cache.activate(resident, adapter)
    return time.perf_counter() - started


def switches(first, second, third=None) -> dict:
    from workers.runtime.cache import head_for

    cache = new_cache()
    resident, _ = cache.acquire(first.base_version, *head_for(first))
    cache.activate(resident, first)
    attach_new = []
    if third is not None:
        started = time.perf_counter()
        cache.activate(resident, third)
        attach_new.append(time.perf_counter() - started)
    cache.activate(resident, second)
    timings = []
    for index in range(20):
        target = first if index % 2 == 0 else second
        started = time.perf_counter()
        cache.activate(resident, target)
        timings.append(time.perf_counter() - started)
    return {
        "switch_s": statistics.median(timings),
        "attach_new_s": attach_new[0] if attach_new else None,
        "resident": resident,
    }


def throughput(resident, task_type, rows) -> float:
    from workers.runtime import runners

    return runners.measure(resident, task_type, rows)["examples_per_second"]


def main() -> None:
    setup_django("runtime")
    minilm, llama, adapters = build_models()
    versions = register(minilm, llama, adapters)
    report = {"machine": machine_description(), "device": "cpu", "results": {}}
    from registry.demo.build import DEMO_DIR

    corpus = [{"text": line} for line in (DEMO_DIR / "corpus.txt").read_text().splitlines()] * 10
    sentiment = [json.loads(line) for line in (DEMO_DIR / "sentiment.jsonl").read_text().splitlines()] * 10
    for name, first, second, third, task, rows in [
        ("MiniLM (22.7M)", versions["minilm-a"], versions["minilm-b"], None, "classification", sentiment),
        ("Llama-style (110M)", versions["llama-a"], versions["llama-b"], versions["llama-c"], "causal_lm", corpus),
    ]:
        cold = statistics.median(cold_load(first) for _ in range(REPEATS))
        swap = switches(first, second, third)
        report["results"][name] = {
            "parameters": first.base_version.parameter_count,
            "cold_load_base_plus_adapter_s": round(cold, 4),
            "switch_resident_adapter_ms": round(swap["switch_s"] * 1000, 3),
            "attach_new_adapter_to_resident_base_ms": round(swap["attach_new_s"] * 1000, 2)
            if swap["attach_new_s"]
            else None,
            "speedup_switch_vs_cold": round(cold / swap["switch_s"], 1),
            "speedup_attach_new_vs_cold": round(cold / swap["attach_new_s"], 1) if swap["attach_new_s"] else None,
            "eval_examples_per_second": throughput(swap["resident"], task, rows),
        }
    print(json.dumps(report, indent=2))
    (OUT / "worker_runtime.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
