"""The worker's resident cache (workers/runtime/resident.py) on real peft adapters: adapters of the
same shape are hot-swapped into the slot the shared LRU policy gives up and compute exactly what a
fresh load computes; other shapes, modules_to_save and a hot-swap that raises take the load path;
bases are evicted by bytes and the active adapter never. Versions are plain directories, as in
benchmarks/gpu_runtime.py (cache.ResidentCache adds only the registry's files and configs)."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from registry.demo import build
from registry.residency.snapshot import ResidentSnapshot
from workers.runtime.resident import DirectoryCache

INPUTS = torch.tensor([[1, 5, 9, 3, 7, 2]])


@dataclass(frozen=True)
class Version:
    id: str
    directory: Path
    total_bytes: int = 0

    @property
    def ref(self) -> str:
        return f"test/{self.id}:v1"


class DirectoryVersions(DirectoryCache):
    seed = 1234

    def version_directory(self, version: Version) -> Path:
        return version.directory

    def adapter_config(self, adapter: Version, directory: Path):
        from peft import PeftConfig

        config = PeftConfig.from_pretrained(directory)
        config.inference_mode = True
        return config


@pytest.fixture
def versions(zoo):
    return {
        "base": Version("llama", zoo.llama, 10**6),
        "attention": Version("attention", zoo.adapters["attention"]),
        "child": Version("child", zoo.child_adapter),  # the same shape as attention, other weights
        "rslora": Version("rslora", zoo.adapters["rslora"]),
        "all_linear": Version("all_linear", zoo.adapters["all_linear"]),
        "modules_to_save": Version("modules_to_save", zoo.adapters["modules_to_save"]),
    }


def cache_with(tmp_path, slots: int) -> DirectoryVersions:
    return DirectoryVersions("cpu", 10**10, slots, tmp_path)


def logits(model) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=INPUTS).logits


def fresh_logits(base: Path, adapter: Path) -> torch.Tensor:
    """The adapter loaded on its own onto a freshly loaded base, peft's plain way."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval())


def paths(cache) -> dict:
    return {
        key: cache.stats[key] for key in ("switches", "loads", "hotswaps", "hotswap_fallbacks", "adapter_evictions")
    }


def test_it_hot_swaps_a_same_shape_adapter_into_the_lru_slot_with_a_fresh_loads_outputs(tmp_path, versions, zoo):
    cache = cache_with(tmp_path, slots=2)
    resident, _ = cache.acquire(versions["base"], "causal_lm", 0)
    cache.activate(resident, versions["attention"])
    attention_slot = resident.adapters["attention"].slot
    cache.activate(resident, versions["rslora"])
    cache.activate(resident, versions["child"])  # slots full: attention (LRU, same shape) gives up its slot

    assert paths(cache) == {"switches": 0, "loads": 2, "hotswaps": 1, "hotswap_fallbacks": 0, "adapter_evictions": 1}
    assert set(resident.adapters) == {"rslora", "child"}
    assert resident.adapters["child"].slot == attention_slot == resident.active  # the slot kept its name
    assert set(resident.model.peft_config) == {attention_slot, resident.adapters["rslora"].slot}
    assert torch.equal(logits(resident.model), fresh_logits(zoo.llama, zoo.child_adapter))

    # The slot name maps to the right weights after switching away and back.
    cache.activate(resident, versions["rslora"])
    assert torch.equal(logits(resident.model), fresh_logits(zoo.llama, zoo.adapters["rslora"]))
    cache.activate(resident, versions["child"])
    assert torch.equal(logits(resident.model), fresh_logits(zoo.llama, zoo.child_adapter))
    assert cache.stats["switches"] == 2

    reported = cache.snapshot()
    assert ResidentSnapshot.from_dict(reported.to_dict()) == reported
    assert {(a.id, a.slot) for a in reported.adapters} == {(k, a.slot) for k, a in resident.adapters.items()}
    assert reported.stats.hotswaps == 1 and reported.stats.attach_count == 5


def test_another_shape_gives_up_the_slot_and_loads_new_layers(tmp_path, versions, zoo):
    cache = cache_with(tmp_path, slots=1)
    resident, _ = cache.acquire(versions["base"], "causal_lm", 0)
    cache.activate(resident, versions["attention"])
    cache.activate(resident, versions["rslora"])  # r=8 on q_proj only: not the same shape

    assert paths(cache) == {"switches": 0, "loads": 2, "hotswaps": 0, "hotswap_fallbacks": 0, "adapter_evictions": 1}
    assert set(resident.adapters) == {"rslora"} and list(resident.model.peft_config) == [resident.active]
    assert torch.equal(logits(resident.model), fresh_logits(zoo.llama, zoo.adapters["rslora"]))


def test_adapters_with_modules_to_save_are_never_hot_swapped(tmp_path, versions, zoo):
    cache = cache_with(tmp_path, slots=1)
    resident, _ = cache.acquire(versions["base"], "causal_lm", 0)
    cache.activate(resident, versions["modules_to_save"])
    again = Version("modules_to_save-copy", zoo.adapters["modules_to_save"])  # identical config and shape
    cache.activate(resident, again)

    assert paths(cache) == {"switches": 0, "loads": 2, "hotswaps": 0, "hotswap_fallbacks": 0, "adapter_evictions": 1}
    assert torch.equal(logits(resident.model), fresh_logits(zoo.llama, zoo.adapters["modules_to_save"]))


def test_adapters_with_rank_or_alpha_patterns_are_never_hot_swapped(tmp_path, versions, zoo):
    """peft's hot-swap rescales every layer by r and lora_alpha alone: a pattern's module would be wrong."""
    options = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], alpha_pattern={"v_proj": 32})
    first = build.build_lora_adapter(zoo.llama, tmp_path / "first", train_steps=1, seed=1, **options)
    second = build.build_lora_adapter(zoo.llama, tmp_path / "second", train_steps=1, seed=2, **options)
    cache = cache_with(tmp_path, slots=1)
    resident, _ = cache.acquire(versions["base"], "causal_lm", 0)
    cache.activate(resident, Version("first", first))
    cache.activate(resident, Version("second", second))

    assert paths(cache) == {"switches": 0, "loads": 2, "hotswaps": 0, "hotswap_fallbacks": 0, "adapter_evictions": 1}
    assert torch.equal(logits(resident.model), fresh_logits(zoo.llama, second))


def test_a_hot_swap_that_raises_falls_back_to_loading(tmp_path, versions, zoo):
    # Its config says q_proj and v_proj like `attention`, but its weights also hold k_proj, which the
    # slot has no layers for: peft's hot-swap refuses it ("unexpected keys") before writing anything.
    lying = build.build_lora_adapter(
        zoo.llama, tmp_path / "lying", r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], seed=3
    )
    config = json.loads((lying / "adapter_config.json").read_text())
    (lying / "adapter_config.json").write_text(json.dumps({**config, "target_modules": ["q_proj", "v_proj"]}))
    expected = fresh_logits(zoo.llama, lying)

    cache = cache_with(tmp_path, slots=1)
    resident, _ = cache.acquire(versions["base"], "causal_lm", 0)
    cache.activate(resident, versions["attention"])
    cache.activate(resident, Version("lying", lying))

    assert paths(cache) == {"switches": 0, "loads": 2, "hotswaps": 0, "hotswap_fallbacks": 1, "adapter_evictions": 1}
    assert set(resident.adapters) == {"lying"} and list(resident.model.peft_config) == [resident.active]
    assert torch.equal(logits(resident.model), expected)


def test_slots_go_in_lru_order_and_the_active_adapter_never(tmp_path, versions):
    cache = cache_with(tmp_path, slots=2)
    resident, _ = cache.acquire(versions["base"], "causal_lm", 0)
    cache.activate(resident, versions["attention"])
    cache.activate(resident, versions["rslora"])
    cache.activate(resident, versions["attention"])  # a switch: rslora is now the least recent
    cache.activate(resident, versions["all_linear"])
    assert set(resident.adapters) == {"attention", "all_linear"} and cache.stats["switches"] == 1

    cache.max_adapters = 1  # fewer slots: the next activation trims, keeping the adapter it activates
    cache.activate(resident, versions["all_linear"])
    assert set(resident.adapters) == {"all_linear"} and resident.active == resident.adapters["all_linear"].slot


def test_bases_are_evicted_least_recent_first_by_bytes(tmp_path, zoo):
    cache = cache_with(tmp_path, slots=2)
    llama, sharded = Version("llama", zoo.llama, 10), Version("sharded", zoo.llama_sharded, 10)
    first, _ = cache.acquire(llama, "causal_lm", 0)
    cache.budget_bytes = first.bytes + 5  # room for one base only (each says it needs 10 more)
    cache.acquire(sharded, "causal_lm", 0)
    assert [base.id for base in cache.snapshot().bases] == ["sharded"] and cache.stats["evictions"] == 1
    cache.budget_bytes = 10**10
    cache.acquire(llama, "causal_lm", 0)
    cache.acquire(sharded, "causal_lm", 0)  # a hit: sharded becomes the most recent
    cache.budget_bytes = first.bytes + 5
    cache.acquire(Version("llama-again", zoo.llama, 10), "causal_lm", 0)
    assert [base.id for base in cache.snapshot().bases] == ["llama-again"]
    assert cache.stats["evictions"] == 3 and cache.stats["hits"] == 1


def test_a_directory_copy_is_the_same_shape(tmp_path, versions, zoo):
    """Shape is config and dtypes, not identity: a copy of an adapter swaps into its original's slot."""
    copy = Path(shutil.copytree(zoo.child_adapter, tmp_path / "copy"))
    cache = cache_with(tmp_path, slots=1)
    resident, _ = cache.acquire(versions["base"], "causal_lm", 0)
    cache.activate(resident, versions["child"])
    cache.activate(resident, Version("copy", copy))
    assert cache.stats["hotswaps"] == 1
