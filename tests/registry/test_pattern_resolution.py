"""User regexes are resolved once, at ingest, to the explicit module names they match;
workers hand peft those names, so peft's Python `re` never runs a user pattern."""

import json
import re

import pytest
import torch
from peft.utils.other import get_pattern_key

from registry.formats.patterns import first_pattern_key
from registry.formats.peft_config import adapted_modules, resolve_patterns
from registry.models import AdapterVersion
from registry.services.jobs import version_tensor_headers
from tests.helpers import directory_files, upload
from tests.registry.test_hostile_uploads import CFG, replace
from workers.runtime.cache import ResidentCache, materialize, peft_config_for

NAMES = [f"model.layers.{i}.self_attn.{p}_proj" for i in (0, 1) for p in "qkvo"] + ["lm_head", "model.embed_tokens"]
KEYS = ["q_proj", r"layers\.1\.self_attn\.v_proj", "self_attn.o_proj", "proj", "(k|v)_proj", r".*\.0\..*", "lm_head"]
PATTERNED = {
    "target_modules": r".*\.(q_proj|v_proj)",
    "rank_pattern": {r"self_attn\.q_.*": 4},
    "alpha_pattern": {"v_proj": 16},
}


@pytest.mark.parametrize("name", NAMES)
def test_pattern_keys_follow_peft_s_own_rule(name):
    for keys in (KEYS, list(reversed(KEYS))):
        expected = get_pattern_key(keys, name)
        assert first_pattern_key(keys, name) == (expected if expected in keys else None)


@pytest.fixture
def patterned_version(alice_client, zoo) -> AdapterVersion:
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).json()
    config = json.loads((zoo.adapters["attention"] / CFG).read_text())
    files = replace(CFG, json.dumps({**config, **PATTERNED}).encode())(directory_files(zoo.adapters["attention"]))
    response = upload(alice_client, "/api/v1/adapters/", {"name": "acme/patterned", "base": base["ref"]}, files)
    assert response.status_code == 201, response.content
    return AdapterVersion.objects.get(id=response.json()["id"])


def _modules(projection: str) -> list[str]:
    return [f"model.layers.{i}.self_attn.{projection}" for i in (0, 1)]


def test_ingest_stores_the_modules_each_pattern_matches(patterned_version):
    assert patterned_version.resolved_patterns == {
        "target_modules": sorted(_modules("q_proj") + _modules("v_proj")),
        "exclude_modules": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": dict.fromkeys(_modules("q_proj"), 4),
        "alpha_pattern": dict.fromkeys(_modules("v_proj"), 16),
    }


def test_plain_lists_need_no_resolution(alice_client, zoo):
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).json()
    response = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/plain", "base": base["ref"]},
        directory_files(zoo.adapters["attention"]),
    )
    assert AdapterVersion.objects.get(id=response.json()["id"]).resolved_patterns == {}


def test_the_worker_hands_peft_explicit_names_only(patterned_version, tmp_path):
    config = peft_config_for(patterned_version, materialize(patterned_version, tmp_path))
    assert config.target_modules == set(_modules("q_proj") + _modules("v_proj"))
    assert config.rank_pattern == {re.escape(name): 4 for name in _modules("q_proj")}
    assert config.alpha_pattern == {re.escape(name): 16 for name in _modules("v_proj")}
    # Each key peft will wrap in its own regex matches exactly one module name, itself.
    for key in [*config.rank_pattern, *config.alpha_pattern]:
        assert [name for name in NAMES if re.fullmatch(key, name)] == [key.replace("\\", "")]


def test_an_older_version_without_resolution_is_resolved_the_same_way_on_the_worker(patterned_version, tmp_path):
    expected = peft_config_for(patterned_version, materialize(patterned_version, tmp_path))
    AdapterVersion.objects.filter(id=patterned_version.id).update(resolved_patterns=None)
    older = AdapterVersion.objects.get(id=patterned_version.id)
    config = peft_config_for(older, materialize(older, tmp_path))
    # The database does not keep a JSON object's key order, but each module matches one key here.
    assert (config.target_modules, config.rank_pattern, config.alpha_pattern) == (
        expected.target_modules,
        expected.rank_pattern,
        expected.alpha_pattern,
    )


def test_the_resident_cache_attaches_the_resolved_adapter_as_peft_would(patterned_version, zoo, alice_client, tmp_path):
    """The worker's own path (acquire, activate, hot-swap) with the explicit config gives the
    scalings the patterns ask for and the same outputs as peft's regex path."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cache = ResidentCache("cpu", 10**10, 4, tmp_path)
    resident, _ = cache.acquire(patterned_version.base_version, "causal_lm", 0)
    cache.activate(resident, patterned_version)
    layer = resident.model.base_model.model.model.layers[1].self_attn
    name = resident.adapters[str(patterned_version.id)].slot  # the peft adapter name holding it
    assert layer.q_proj.scaling[name] == 8 / 4 and layer.v_proj.scaling[name] == 16 / 4
    assert not hasattr(layer.k_proj, "lora_A")

    # Hot-swap a second adapter onto the same resident base (add_adapter + load_adapter).
    plain = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/child", "base": patterned_version.base_version.ref},
        directory_files(zoo.child_adapter),
    ).json()
    cache.activate(resident, AdapterVersion.objects.get(id=plain["id"]))
    assert len(resident.adapters) == 2

    # peft's own regex path, once, on the trusted fixture: same outputs as the explicit one.
    cache.activate(resident, patterned_version)
    directory = materialize(patterned_version, tmp_path / "versions")
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(zoo.llama), directory).eval()
    inputs = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.inference_mode():
        assert torch.allclose(resident.model(input_ids=inputs).logits, reference(input_ids=inputs).logits)


def test_resolution_reads_module_names_from_the_adapter_tensors(patterned_version):
    modules = adapted_modules(version_tensor_headers(patterned_version))
    assert modules == sorted(_modules("q_proj") + _modules("v_proj"))
    assert resolve_patterns({"target_modules": r".*\.0\..*", "exclude_modules": ["v_proj"]}, modules)[
        "target_modules"
    ] == ["model.layers.0.self_attn.q_proj"]
