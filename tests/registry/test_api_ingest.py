"""Pushing real base models and peft-made adapters through the REST API."""

import json

import pytest

from registry.models import AdapterVersion, BaseModelVersion, Blob, Status
from registry.storage import get_blob_store
from tests.conftest import LORA_CONFIGS
from tests.helpers import directory_files, leftovers, upload

BASES = "/api/v1/bases/"
ADAPTERS = "/api/v1/adapters/"


def push_base(client, directory, name="acme/llama-tiny"):
    return upload(client, BASES, {"name": name}, directory_files(directory))


def push_adapter(client, directory, base, name="acme/support-bot", **fields):
    return upload(client, ADAPTERS, {"name": name, "base": base, **fields}, directory_files(directory))


@pytest.fixture
def llama_ref(alice_client, zoo):
    response = push_base(alice_client, zoo.llama)
    assert response.status_code == 201, response.content
    return response.json()["ref"]


def test_it_ingests_a_single_file_base_with_derived_metadata(alice_client, zoo):
    response = push_base(alice_client, zoo.llama)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["ref"] == "acme/llama-tiny:v1"
    assert body["architecture"] == "LlamaForCausalLM"
    assert body["model_type"] == "llama"
    assert body["hidden_size"] == 32 and body["num_layers"] == 2
    assert body["dtype"] == "F32"
    assert body["status"] == Status.READY
    expected_params = sum(p.numel() for p in _load_llama(zoo.llama).parameters())
    assert body["parameter_count"] == expected_params
    assert {f["path"] for f in body["files"]} == {p.name for p in zoo.llama.iterdir()}


def _load_llama(directory):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(directory)


def test_it_ingests_a_sharded_base(alice_client, zoo):
    response = push_base(alice_client, zoo.llama_sharded, name="acme/llama-sharded")
    assert response.status_code == 201, response.content
    paths = [f["path"] for f in response.json()["files"]]
    assert "model.safetensors.index.json" in paths
    assert sum(p.startswith("model-") for p in paths) >= 2


@pytest.mark.parametrize("key", sorted(LORA_CONFIGS))
def test_it_ingests_peft_adapters_of_each_config(alice_client, zoo, llama_ref, key):
    response = push_adapter(alice_client, zoo.adapters[key], llama_ref, name=f"acme/{key.replace('_', '-')}")
    assert response.status_code == 201, response.content
    body = response.json()
    config = json.loads((zoo.adapters[key] / "adapter_config.json").read_text())
    assert body["peft_type"] == "LORA"
    assert body["r"] == config["r"] and body["lora_alpha"] == config["lora_alpha"]
    assert body["use_dora"] == config["use_dora"] and body["use_rslora"] == config["use_rslora"]
    assert body["modules_to_save"] == (config["modules_to_save"] or [])
    assert body["base"]["ref"] == llama_ref
    assert body["status"] == Status.CHECKING  # the static check passed; the dynamic one is queued
    from safetensors import safe_open

    with safe_open(str(zoo.adapters[key] / "adapter_model.safetensors"), "np") as handle:
        keys = list(handle.keys())
        params = sum(
            handle.get_slice(k).get_shape().numel()
            if hasattr(handle.get_slice(k).get_shape(), "numel")
            else _prod(handle.get_slice(k).get_shape())
            for k in keys
        )
    assert body["tensor_count"] == len(keys)
    assert body["parameter_count"] == params


def _prod(shape):
    total = 1
    for dim in shape:
        total *= dim
    return total


def test_it_returns_the_existing_version_when_the_same_files_are_pushed_again(alice_client, zoo, llama_ref):
    first = push_adapter(alice_client, zoo.adapters["attention"], llama_ref)
    before = leftovers()
    second = push_adapter(alice_client, zoo.adapters["attention"], llama_ref)
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert AdapterVersion.objects.count() == 1
    assert leftovers() == before


def test_it_numbers_new_content_as_the_next_version(alice_client, zoo, llama_ref):
    push_adapter(alice_client, zoo.adapters["attention"], llama_ref)
    response = push_adapter(alice_client, zoo.child_adapter, llama_ref)
    assert response.json()["ref"] == "acme/support-bot:v2"


def test_it_stores_identical_bytes_once(alice_client, zoo):
    push_base(alice_client, zoo.llama, name="acme/one")
    push_base(alice_client, zoo.llama, name="acme/two")
    assert BaseModelVersion.objects.count() == 2
    assert Blob.objects.count() == len(list(zoo.llama.iterdir()))
    for blob in Blob.objects.all():
        assert get_blob_store().exists(blob.sha256)


def test_it_records_parent_and_provenance(alice_client, zoo, llama_ref):
    parent = push_adapter(alice_client, zoo.adapters["attention"], llama_ref).json()
    provenance = {
        "mlflow_run_id": "0123abcd",
        "mlflow_run_uri": "runs:/0123abcd/adapter",
        "dataset_name": "support-tickets",
        "dataset_digest": "sha256:" + "ab" * 32,
        "code_commit": "9f1c2e3",
        "params": {"lr": 0.0005, "epochs": 3},
    }
    child = push_adapter(
        alice_client,
        zoo.child_adapter,
        llama_ref,
        name="acme/support-bot-child",
        parent=parent["ref"],
        provenance=json.dumps(provenance),
    )
    assert child.status_code == 201, child.content
    body = child.json()
    assert body["parent"]["id"] == parent["id"]
    assert body["provenance"]["dataset_name"] == "support-tickets"
    assert body["provenance"]["params"] == {"lr": 0.0005, "epochs": 3}


def test_it_refuses_the_same_content_with_another_base(alice_client, zoo, llama_ref):
    push_adapter(alice_client, zoo.adapters["attention"], llama_ref)
    other = push_base(alice_client, zoo.llama_sharded, name="acme/other-base").json()["ref"]
    response = push_adapter(alice_client, zoo.adapters["attention"], other)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "adapter_lineage_conflict"


def test_it_refuses_pushes_from_readers(bob_client, zoo):
    response = push_base(bob_client, zoo.llama)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert BaseModelVersion.objects.count() == 0


def test_an_interrupted_upload_leaves_nothing_behind(live_server, alice, zoo):
    """The client announces a whole adapter, sends half of it and stops sending."""
    import socket
    from urllib.parse import urlparse

    from rest_framework.authtoken.models import Token

    from tests.helpers import multipart

    token = Token.objects.create(user=alice).key
    upload(_client_with(token), BASES, {"name": "acme/llama"}, directory_files(zoo.llama))
    body, content_type = multipart(
        {"name": "acme/cut", "base": "acme/llama:v1"}, directory_files(zoo.adapters["all_linear"])
    )
    before = leftovers()
    address = urlparse(live_server.url)
    with socket.create_connection((address.hostname, address.port)) as sock:
        head = (
            f"POST /api/v1/adapters/ HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Token {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) * 3 // 4])
        sock.shutdown(socket.SHUT_WR)
        response = sock.makefile("rb").read().decode(errors="replace")
    assert response.startswith("HTTP/1.1 400")
    assert "upload_incomplete" in response
    assert leftovers() == before


def _client_with(token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client
