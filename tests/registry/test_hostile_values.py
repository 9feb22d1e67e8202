"""Hostile values, not just hostile files: nesting that overflows Python's parser,
regexes that do not compile or backtrack forever, numbers and strings that Python
or PostgreSQL cannot hold, wrong JSON types, too many file parts. Each is refused
with its own code in the JSON error shape, fast, and leaves nothing behind."""

import json
import time

import pytest

from tests.helpers import directory_files, leftovers, upload
from tests.registry.test_hostile_uploads import CFG, ST, add, put, replace, safetensors_bytes

DEEP = 30_000  # fits in the 64 KiB cap of adapter_config.json
INDEX = "model.safetensors.index.json"


def adapter_config(**overrides) -> bytes:
    """The config of the zoo's `attention` adapter (r=4, alpha 8, q_proj and v_proj), changed."""
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    config.update(overrides)
    return json.dumps(config).encode()


def raw_config(text: str) -> bytes:
    """A config written by hand, for values json.dumps would not write (1e999, 10**400)."""
    return ('{"peft_type": "LORA", "r": 4, "target_modules": ["q_proj", "v_proj"], ' + text + "}").encode()


def deep_header() -> bytes:
    return safetensors_bytes(None, raw=b'{"__metadata__": ' + b"[" * DEEP + b"]" * DEEP + b"}")


# (expected code, HTTP status, how to change the zoo's valid adapter; provenance field or None)
ADAPTER_CASES = {
    # Deep nesting, everywhere JSON is read
    "deep adapter_config.json": ("json_too_deep", 422, replace(CFG, b"[" * DEEP + b"]" * DEEP), None),
    "deep tokenizer.json": ("json_too_deep", 422, add("tokenizer.json", b'{"a":' * DEEP + b"1" + b"}" * DEEP), None),
    "deep safetensors header": ("json_too_deep", 422, replace(ST, deep_header()), None),
    "deep provenance": ("json_too_deep", 422, None, '{"params": ' + "[" * DEEP + "]" * DEEP + "}"),
    # User regexes that do not compile, in Python's re or in RE2
    "target_modules does not compile": ("pattern_invalid", 422, replace(CFG, adapter_config(target_modules="(")), None),
    "rank_pattern key does not compile": (
        "pattern_invalid",
        422,
        replace(CFG, adapter_config(rank_pattern={"q_proj[": 4})),
        None,
    ),
    "alpha_pattern key with a backreference": (
        "pattern_invalid",
        422,
        replace(CFG, adapter_config(alpha_pattern={r"(q)\1_proj": 8})),
        None,
    ),
    "modules_to_save as a regex": (
        "adapter_config_invalid",
        422,
        replace(CFG, adapter_config(modules_to_save=["(lm_head)+"])),
        None,
    ),
    # Numbers Python or PostgreSQL cannot hold
    "lora_alpha 1e999": ("json_number_out_of_range", 422, replace(CFG, raw_config('"lora_alpha": 1e999')), None),
    "lora_alpha 10**400": (
        "json_number_out_of_range",
        422,
        replace(CFG, raw_config('"lora_alpha": 1' + "0" * 400)),
        None,
    ),
    "lora_alpha 10**30": ("adapter_config_invalid", 422, replace(CFG, adapter_config(lora_alpha=10**30)), None),
    "r 10**30": ("adapter_config_invalid", 422, replace(CFG, adapter_config(r=10**30)), None),
    "-Infinity": ("json_invalid", 422, replace(CFG, raw_config('"lora_alpha": -Infinity')), None),
    "rank_pattern value past the column": (
        "adapter_config_invalid",
        422,
        replace(CFG, adapter_config(rank_pattern={"q_proj": 2**40})),
        None,
    ),
    # Strings PostgreSQL cannot store
    "NUL in adapter_config.json": (
        "json_string_invalid",
        422,
        replace(CFG, adapter_config(base_model_name_or_path="llama\u0000")),
        None,
    ),
    "NUL in provenance": ("json_string_invalid", 422, None, '{"dataset_name": "tickets\\u0000"}'),
    "lone surrogate in provenance params": ("json_string_invalid", 422, None, '{"params": {"note": "\\ud800"}}'),
    "1e999 in provenance params": ("json_number_out_of_range", 422, None, '{"params": {"lr": 1e999}}'),
    # Wrong JSON types
    "peft_type an object": ("peft_type_not_allowed", 422, replace(CFG, adapter_config(peft_type={"a": 1})), None),
    "rank_pattern a list": ("adapter_config_invalid", 422, replace(CFG, adapter_config(rank_pattern=["q_proj"])), None),
    "target_modules a list of objects": (
        "adapter_config_invalid",
        422,
        replace(CFG, adapter_config(target_modules=[{"q": 1}])),
        None,
    ),
    "provenance field an object": ("provenance_invalid", 422, None, '{"dataset_name": {"a": 1}}'),
}


@pytest.fixture
def base_ref(alice_client, zoo):
    response = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama-tiny"}, directory_files(zoo.llama))
    return response.json()["ref"]


def refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json", response.content[:200]
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]


@pytest.mark.parametrize("case", sorted(ADAPTER_CASES))
def test_it_refuses_hostile_adapter_values_fast_and_keeps_nothing(alice_client, zoo, base_ref, case):
    code, status, mutate, provenance = ADAPTER_CASES[case]
    files = directory_files(zoo.adapters["attention"])
    files = mutate(files) if mutate else files
    fields = {"name": "acme/hostile", "base": base_ref}
    if provenance is not None:
        fields["provenance"] = provenance
    before = leftovers()
    started = time.perf_counter()
    response = upload(alice_client, "/api/v1/adapters/", fields, files)
    elapsed = time.perf_counter() - started
    refused(response, status, code)
    assert leftovers() == before
    assert elapsed < 1.0, f"{case} took {elapsed:.2f} s"


def _config_json(files, **changes) -> list:
    config = json.loads(dict(files)["config.json"])
    config.update(changes)
    return put("config.json", json.dumps(config).encode())(files)


def _index(files, weight_map_change) -> list:
    index = json.loads(dict(files)[INDEX])
    weight_map_change(index["weight_map"])
    return put(INDEX, json.dumps(index).encode())(files)


def _first_tensor_as_list(weight_map: dict) -> None:
    first = next(iter(weight_map))
    weight_map[first] = [weight_map[first]]


BASE_CASES = {
    "architectures[0] of 200 characters": (
        "config_value_out_of_range",
        lambda files: _config_json(files, architectures=["L" * 200]),
    ),
    "hidden_size 2**31": ("config_value_out_of_range", lambda files: _config_json(files, hidden_size=2**31)),
    "num_hidden_layers 10**30": (
        "config_value_out_of_range",
        lambda files: _config_json(files, num_hidden_layers=10**30),
    ),
    "NUL in config.json": ("json_string_invalid", lambda files: _config_json(files, torch_dtype="float32\u0000")),
    "1e999 in config.json": (
        "json_number_out_of_range",
        lambda files: put("config.json", dict(files)["config.json"].replace(b"{", b'{"rope_theta": 1e999,', 1))(files),
    ),
    "deep config.json": ("json_too_deep", lambda files: put("config.json", b"[" * DEEP + b"]" * DEEP)(files)),
    "deep shard index": (
        "json_too_deep",
        lambda files: put(INDEX, b'{"weight_map": ' + b"[" * DEEP + b"]" * DEEP + b"}")(files),
    ),
    "a list as a weight_map value": ("shard_index_invalid", lambda files: _index(files, _first_tensor_as_list)),
}


@pytest.mark.parametrize("case", sorted(BASE_CASES))
def test_it_refuses_hostile_base_values_fast_and_keeps_nothing(alice_client, zoo, case):
    code, mutate = BASE_CASES[case]
    files = mutate(directory_files(zoo.llama_sharded))
    before = leftovers()
    started = time.perf_counter()
    response = upload(alice_client, "/api/v1/bases/", {"name": "acme/hostile-base"}, files)
    elapsed = time.perf_counter() - started
    refused(response, 422, code)
    assert leftovers() == before
    assert elapsed < 1.0, f"{case} took {elapsed:.2f} s"


def test_the_value_corpus_covers_every_category():
    assert len(ADAPTER_CASES) + len(BASE_CASES) >= 30
    codes = {code for code, *_ in ADAPTER_CASES.values()} | {code for code, _ in BASE_CASES.values()}
    for code in ("json_too_deep", "pattern_invalid", "json_number_out_of_range", "json_string_invalid"):
        assert code in codes


def test_a_backtracking_target_pattern_is_answered_fast(alice_client, zoo, base_ref):
    """`([a-z_.0-9]+)+\\.zz` takes Python's re about a minute against a 31-character module
    name (4x per character pair); RE2 answers at once, and the pattern matches no module."""
    files = replace(CFG, adapter_config(target_modules=r"([a-z_.0-9]+)+\.zz"))(
        directory_files(zoo.adapters["attention"])
    )
    before = leftovers()
    started = time.perf_counter()
    response = upload(alice_client, "/api/v1/adapters/", {"name": "acme/slow", "base": base_ref}, files)
    elapsed = time.perf_counter() - started
    refused(response, 422, "lora_target_mismatch")
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert leftovers() == before


def test_a_backtracking_rank_pattern_key_is_answered_fast(alice_client, zoo, base_ref):
    # peft wraps a key as (.*\.)?(key)$; a nested quantifier inside is the same trap.
    files = replace(CFG, adapter_config(rank_pattern={r"([a-z_0-9]+)+zz": 8}))(
        directory_files(zoo.adapters["attention"])
    )
    started = time.perf_counter()
    response = upload(alice_client, "/api/v1/adapters/", {"name": "acme/slow-rank", "base": base_ref}, files)
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 201, response.content  # matches nothing, so r=4 holds everywhere


# --- More file parts than Django's default of 100 ---------------------------------------------


def test_it_answers_too_many_files_in_json(alice_client, settings):
    files = [(f"notes-{i}.md", b"x") for i in range(settings.MAX_FILES_PER_UPLOAD + 1)]
    before = leftovers()
    response = upload(alice_client, "/api/v1/adapters/", {"name": "acme/many", "base": "acme/x:v1"}, files)
    refused(response, 400, "too_many_files")
    assert leftovers() == before


def test_more_than_100_files_reach_the_registrys_own_rules(alice_client):
    # 101 parts used to meet Django's default DATA_UPLOAD_MAX_NUMBER_FILES (an HTML 400).
    files = [(f"notes-{i}.md", b"x") for i in range(101)]
    before = leftovers()
    response = upload(alice_client, "/api/v1/bases/", {"name": "acme/many"}, files)
    refused(response, 400, "file_not_allowed")
    assert leftovers() == before


# --- Suites -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line,code",
    [
        ('{"text": ' + "[" * DEEP + "]" * DEEP + "}", "json_too_deep"),
        ('{"text": "x", "weight": 1e999}', "json_number_out_of_range"),
        ('{"text": "x", "weight": NaN}', "suite_invalid"),
    ],
)
def test_it_refuses_hostile_suite_lines(alice_client, line, code):
    before = leftovers()
    response = upload(
        alice_client,
        "/api/v1/suites/",
        {"name": "acme/hostile-suite", "task_type": "causal_lm"},
        [("suite.jsonl", b'{"text": "fine"}\n' + line.encode() + b"\n")],
    )
    refused(response, 422, code)
    assert leftovers() == before
