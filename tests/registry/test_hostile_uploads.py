"""A corpus of malformed and hostile uploads: each refused with its own error code,
and none leaves a row, a blob or a temporary file behind."""

import io
import json
import pickle
import struct
import zipfile

import pytest

from tests.helpers import directory_files, leftovers, upload

TENSOR = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"


def safetensors_bytes(header, data: bytes = b"", *, raw: bytes | None = None) -> bytes:
    encoded = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def one_tensor(**overrides) -> dict:
    entry = {"dtype": "F32", "shape": [4, 32], "data_offsets": [0, 512]}
    entry.update(overrides)
    return {TENSOR: entry}


def torch_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": [1.0]}))
    return buffer.getvalue()


def adapter_config(**overrides) -> bytes:
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    config.update(overrides)
    return json.dumps(config).encode()


# Each case: (expected code, expected HTTP status, how to change the valid adapter's files)
def replace(name, data):
    return lambda files: [(n, data if n == name else d) for n, d in files]


def add(name, data):
    return lambda files: files + [(name, data)]


def put(name, data):
    """Replace the file if the layout has it, else add it."""
    return lambda files: [(n, d) for n, d in files if n != name] + [(name, data)]


def drop(name):
    return lambda files: [(n, d) for n, d in files if n != name]


ST = "adapter_model.safetensors"
CFG = "adapter_config.json"
CASES = {
    "pickle by name": ("pickle_refused", 400, add("adapter_model.bin", pickle.dumps({"a": 1}))),
    "pickle by content": ("pickle_refused", 422, replace(ST, pickle.dumps({"weights": [1, 2, 3]}))),
    "protocol-0 pickle as text": ("pickle_refused", 422, put("README.md", pickle.dumps({"a": 1}, protocol=0))),
    "torch.save zip": ("zip_refused", 422, replace(ST, torch_zip())),
    "unknown file name": ("file_not_allowed", 400, add("train.py", b"print('hi')")),
    "path traversal": ("path_traversal", 400, add("../adapter_config.json", adapter_config())),
    "absolute path": ("absolute_path", 400, add("/etc/passwd", b"root:x:0:0")),
    "nested path": ("nested_path", 400, add("sub/README.md", b"hello")),
    "duplicate name": ("duplicate_file", 400, add(CFG, adapter_config())),
    "header too large": ("safetensors_header_too_large", 422, replace(ST, struct.pack("<Q", 9 * 1024 * 1024) + b"{}")),
    "truncated": ("safetensors_truncated", 422, replace(ST, b"\x10\x00")),
    "header past end": ("safetensors_truncated", 422, replace(ST, struct.pack("<Q", 4096) + b"{}")),
    "header not an object": ("safetensors_header_not_json", 422, replace(ST, safetensors_bytes(None, raw=b"[1, 2]  "))),
    "header not utf-8": ("safetensors_header_not_utf8", 422, replace(ST, safetensors_bytes(None, raw=b'{"\xff": 1}'))),
    "duplicate header key": (
        "safetensors_duplicate_key",
        422,
        replace(ST, safetensors_bytes(None, raw=f'{{"{TENSOR}": {{}}, "{TENSOR}": {{}}}}'.encode())),
    ),
    "NaN in header": (
        "safetensors_nonfinite_number",
        422,
        replace(ST, safetensors_bytes(None, raw=b'{"x": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 0]}}')),
    ),
    "extra tensor key": (
        "safetensors_bad_tensor_entry",
        422,
        replace(ST, safetensors_bytes(one_tensor(extra=1), bytes(512))),
    ),
    "unknown dtype": (
        "safetensors_bad_dtype",
        422,
        replace(ST, safetensors_bytes(one_tensor(dtype="C64"), bytes(512))),
    ),
    "rank too high": (
        "safetensors_bad_shape",
        422,
        replace(ST, safetensors_bytes(one_tensor(shape=[1] * 9), bytes(4))),
    ),
    "negative dim": (
        "safetensors_bad_shape",
        422,
        replace(ST, safetensors_bytes(one_tensor(shape=[-4, 32]), bytes(512))),
    ),
    "offsets disagree with shape": (
        "safetensors_bad_offsets",
        422,
        replace(ST, safetensors_bytes(one_tensor(data_offsets=[0, 256]), bytes(256))),
    ),
    "gap before a tensor": (
        "safetensors_bad_offsets",
        422,
        replace(ST, safetensors_bytes(one_tensor(data_offsets=[8, 520]), bytes(520))),
    ),
    "trailing bytes": ("safetensors_size_mismatch", 422, replace(ST, safetensors_bytes(one_tensor(), bytes(600)))),
    "hostile tensor name": (
        "safetensors_bad_tensor_name",
        422,
        replace(
            ST,
            safetensors_bytes(
                {"../../etc/passwd lora_A": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x00"
            ),
        ),
    ),
    "metadata not strings": (
        "safetensors_bad_metadata",
        422,
        replace(ST, safetensors_bytes({"__metadata__": {"a": 1}})),
    ),
    "config not json": ("json_invalid", 422, replace(CFG, b"peft_type: LORA")),
    "config duplicate key": ("json_duplicate_key", 422, replace(CFG, b'{"r": 4, "r": 8}')),
    "config too large": ("json_too_large", 422, replace(CFG, adapter_config(padding="x" * 70_000))),
    "peft type not allowed": ("peft_type_not_allowed", 422, replace(CFG, adapter_config(peft_type="EVIL"))),
    "rank zero": ("adapter_config_invalid", 422, replace(CFG, adapter_config(r=0))),
    "rank disagrees with tensors": ("lora_shape_mismatch", 422, replace(CFG, adapter_config(r=8))),
    "module not targeted": ("lora_target_mismatch", 422, replace(CFG, adapter_config(target_modules=["k_proj"]))),
    "lora_B missing": (
        "lora_tensor_missing",
        422,
        replace(ST, safetensors_bytes(one_tensor(), bytes(512))),
    ),
    "tensor outside the config": (
        "adapter_unexpected_tensor",
        422,
        replace(
            ST,
            safetensors_bytes(
                {
                    TENSOR: {"dtype": "F32", "shape": [4, 32], "data_offsets": [0, 512]},
                    TENSOR.replace("lora_A", "lora_B"): {"dtype": "F32", "shape": [32, 4], "data_offsets": [512, 1024]},
                    "base_model.model.lm_head.weight": {"dtype": "F32", "shape": [2], "data_offsets": [1024, 1032]},
                },
                bytes(1032),
            ),
        ),
    ),
    "weights missing": ("adapter_model_missing", 422, drop(ST)),
    "config missing": ("adapter_config_missing", 422, drop(CFG)),
    "README not utf-8": ("text_invalid", 422, put("README.md", b"\xff\xfe\x00bad")),
}


@pytest.fixture
def base_ref(alice_client, zoo):
    response = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama-tiny"}, directory_files(zoo.llama))
    return response.json()["ref"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_it_refuses_hostile_adapter_files_and_keeps_nothing(alice_client, zoo, base_ref, case):
    code, status, mutate = CASES[case]
    files = mutate(directory_files(zoo.adapters["attention"]))
    before = leftovers()
    response = upload(alice_client, "/api/v1/adapters/", {"name": "acme/hostile", "base": base_ref}, files)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert leftovers() == before


def test_the_corpus_is_large_and_varied():
    assert len(CASES) >= 25
    assert len({code for code, _, _ in CASES.values()}) >= 25


@pytest.mark.parametrize(
    "fields,code",
    [
        ({"name": "acme/x", "base": "acme/missing:v1"}, "base_not_found"),
        ({"name": "acme/x", "base": "not a ref"}, "base_not_found"),
        ({"name": "no-namespace", "base": "acme/llama-tiny:v1"}, "invalid_name"),
        ({"name": "acme/x", "base": "acme/llama-tiny:v1", "parent": "acme/nope:v3"}, "parent_not_found"),
        ({"name": "acme/x", "base": "acme/llama-tiny:v1", "provenance": '{"secret": 1}'}, "provenance_invalid"),
        ({"name": "acme/x", "base": "acme/llama-tiny:v1", "provenance": "[1]"}, "validation_error"),
    ],
)
def test_it_refuses_bad_references_and_fields(alice_client, zoo, base_ref, fields, code):
    before = leftovers()
    response = upload(alice_client, "/api/v1/adapters/", fields, directory_files(zoo.adapters["attention"]))
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] == code
    assert leftovers() == before


def test_it_refuses_files_over_the_size_limit(alice_client, zoo, base_ref, settings):
    settings.MAX_FILE_BYTES = 1024
    before = leftovers()
    response = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/big", "base": base_ref},
        directory_files(zoo.adapters["attention"]),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert leftovers() == before


BASE_CASES = {
    "no config": ("config_missing", lambda files: [(n, d) for n, d in files if n != "config.json"]),
    "no weights": ("weights_missing", lambda files: [(n, d) for n, d in files if not n.endswith(".safetensors")]),
    "shard missing": (
        "shard_missing",
        lambda files: [(n, d) for n, d in files if n != "model-00002-of-00003.safetensors"],
    ),
    "index lies": (
        "shard_index_mismatch",
        lambda files: [
            (
                n,
                d.replace(b"model-00001-of-00003", b"model-00002-of-00003", 1)
                if n == "model.safetensors.index.json"
                else d,
            )
            for n, d in files
        ],
    ),
    "single and shards": ("weights_ambiguous", lambda files: files + [("model.safetensors", safetensors_bytes({}))]),
    "config without model_type": (
        "config_invalid",
        lambda files: [(n, b"{}" if n == "config.json" else d) for n, d in files],
    ),
}


@pytest.mark.parametrize("case", sorted(BASE_CASES))
def test_it_refuses_broken_base_layouts(alice_client, zoo, case):
    code, mutate = BASE_CASES[case]
    before = leftovers()
    files = mutate(directory_files(zoo.llama_sharded))
    response = upload(alice_client, "/api/v1/bases/", {"name": "acme/broken"}, files)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == code
    assert leftovers() == before
