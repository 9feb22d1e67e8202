"""Signatures through the API: real peft adapters signed in the test with model_signing."""

import pytest

from registry.models import AdapterVersion, Signature, SignatureVerification
from tests.helpers import directory_files, leftovers, upload
from tests.signing_helpers import key_policy, make_key, sign_with_key

pytestmark = pytest.mark.usefixtures("no_network")


def push(client, directory, signature=None, name="acme/bot"):
    return upload(
        client, "/api/v1/adapters/", {"name": name, "base": "acme/llama:v1"}, directory_files(directory), signature
    )


def set_policy(client, namespace, document):
    response = client.put(f"/api/v1/namespaces/{namespace}/signing-policy", document, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_key_signed_push_is_accepted_and_listed(alice_client, carol_client, base, zoo, tmp_path):
    key = make_key(tmp_path / "keys")
    adapter = zoo.copy("adapter-attention", tmp_path / "adapter")
    bundle = sign_with_key(adapter, key)
    assert set_policy(carol_client, "acme", key_policy(key))["version"] == 1

    response = push(alice_client, adapter, bundle)
    assert response.status_code == 201, response.content
    assert response.json()["signed"] is True

    signatures = alice_client.get("/api/v1/adapters/acme/bot:v1/signatures").json()
    assert [(s["method"], s["key_id"], s["result"], s["policy_version"]) for s in signatures] == [
        ("key", "ci", "passed", 1)
    ]
    raw = alice_client.get(signatures[0]["bundle_url"])
    assert raw.content == bundle


def test_unsigned_push_refused_where_required_and_only_the_failure_is_recorded(
    alice_client, carol_client, base, zoo, tmp_path
):
    key = make_key(tmp_path / "keys")
    set_policy(carol_client, "acme", key_policy(key))
    before = leftovers()
    response = push(alice_client, zoo.adapters["attention"])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "signature_required"
    assert leftovers() == before
    failure = SignatureVerification.objects.get()
    assert (failure.result, failure.code, failure.adapter_name, failure.policy_version) == (
        "failed",
        "signature_required",
        "acme/bot",
        1,
    )


def test_tampered_blob_fails_reverification(alice_client, carol_client, base, zoo, tmp_path, settings):
    key = make_key(tmp_path / "keys")
    adapter = zoo.copy("adapter-attention", tmp_path / "adapter")
    bundle = sign_with_key(adapter, key)
    set_policy(carol_client, "acme", key_policy(key))
    assert push(alice_client, adapter, bundle).status_code == 201
    first = alice_client.post("/api/v1/adapters/acme/bot:v1/verify").json()
    assert first["satisfies_policy"] is True, first

    version = AdapterVersion.objects.get()
    blob = version.files.get(path="adapter_config.json").blob_id
    path = settings.BLOB_ROOT / blob[:2] / blob[2:4] / blob
    if not path.exists():
        path = next(p for p in settings.BLOB_ROOT.rglob(blob + "*"))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"r": 4', b'"r": 5'))
    second = alice_client.post("/api/v1/adapters/acme/bot:v1/verify").json()
    assert (second["satisfies_policy"], second["files_intact"], second["code"]) == (
        False,
        False,
        "signature_files_mismatch",
    )
    assert Signature.objects.get().result == "failed"
