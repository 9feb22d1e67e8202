"""Every refusal code at push, certificate chains, attach, policy changes and the registry's keys.

Adapters are real peft adapters from the session zoo, signed in the test with
model_signing and keys or a CA chain made with cryptography.
"""

import hashlib
import io
import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from registry.models import AdapterVersion, RegistryKey, Signature, SignatureVerification
from registry.services.signatures import version_countersign, version_verify
from tests.helpers import directory_files, leftovers, upload
from tests.signing_helpers import (
    key_policy,
    make_ca_chain,
    make_key,
    resign_statement,
    sign_with_certificate,
    sign_with_key,
)

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture
def adapter(zoo, tmp_path):
    return zoo.copy("adapter-attention", tmp_path / "adapter")


@pytest.fixture
def key(tmp_path):
    return make_key(tmp_path / "keys", "ci")


def push(client, directory, signature=None, name="acme/bot"):
    files = directory_files(directory)
    return upload(client, "/api/v1/adapters/", {"name": name, "base": "acme/llama:v1"}, files, signature)


def put_policy(client, document, namespace="acme"):
    return client.put(f"/api/v1/namespaces/{namespace}/signing-policy", document, format="json")


def refused_with(response, code):
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == code, response.json()
    return response.json()["error"]["message"]


# --- Each refusal code ----------------------------------------------------------------------


def test_each_refusal_stores_nothing_but_its_failed_verification(
    alice_client, carol_client, base, adapter, key, tmp_path
):
    other = make_key(tmp_path / "keys", "intruder")
    assert put_policy(carol_client, key_policy(key)).status_code == 200
    good = sign_with_key(adapter, key)
    (adapter / "model.sig").unlink()
    cases = {
        "signature_required": None,
        "signature_invalid": good[: len(good) // 2],  # cut short: not JSON
        "signature_identity_mismatch": sign_with_key(adapter, other),
        "signature_subject_mismatch": resign_statement(
            good, key, lambda st: st["subject"][0]["digest"].update(sha256="0" * 64)
        ),
    }
    (adapter / "model.sig").unlink()
    tampered = json.loads(good)
    payload = tampered["dsseEnvelope"]["payload"]
    tampered["dsseEnvelope"]["payload"] = payload[:-8] + ("A" * 8 if not payload.endswith("A" * 8) else "B" * 8)
    cases["signature_invalid_tampered"] = json.dumps(tampered).encode()
    before = leftovers()
    for code, bundle in cases.items():
        message = refused_with(push(alice_client, adapter, bundle), code.removesuffix("_tampered"))
        assert message
    assert leftovers() == before
    recorded = SignatureVerification.objects.filter(result="failed").values_list("code", flat=True)
    assert sorted(recorded) == sorted(code.removesuffix("_tampered") for code in cases)
    # Who tried to sign is kept even though nothing was stored.
    mismatch = SignatureVerification.objects.get(code="signature_identity_mismatch")
    intruder = hashlib.sha256(other.public_pem.encode()).hexdigest()
    assert (mismatch.method, mismatch.key_fingerprint, mismatch.adapter_name) == ("key", intruder, "acme/bot")


def test_files_mismatch_for_a_file_added_after_signing(alice_client, carol_client, base, adapter, key):
    put_policy(carol_client, key_policy(key))
    bundle = sign_with_key(adapter, key)
    (adapter / "model.sig").unlink()
    (adapter / "README.md").write_text("# added after signing\n")
    message = refused_with(push(alice_client, adapter, bundle), "signature_files_mismatch")
    assert "README.md" in message


def test_files_mismatch_for_a_file_changed_after_signing(alice_client, carol_client, base, adapter, key):
    put_policy(carol_client, key_policy(key))
    bundle = sign_with_key(adapter, key)
    config = adapter / "adapter_config.json"
    document = json.loads(config.read_text())
    document["lora_dropout"] = 0.25
    config.write_text(json.dumps(document))
    message = refused_with(push(alice_client, adapter, bundle), "signature_files_mismatch")
    assert "adapter_config.json" in message and "modified after signing" in message


def test_revoked_key(alice_client, carol_client, base, adapter, key):
    put_policy(carol_client, key_policy(key, revoked_at="2026-01-01T00:00:00Z"))
    message = refused_with(push(alice_client, adapter, sign_with_key(adapter, key)), "signature_key_revoked")
    assert "ci" in message and "2026-01-01" in message


def test_key_revoked_in_the_future_still_verifies(alice_client, carol_client, base, adapter, key):
    put_policy(carol_client, key_policy(key, revoked_at="2999-01-01T00:00:00Z"))
    assert push(alice_client, adapter, sign_with_key(adapter, key)).status_code == 201


# --- Certificates ---------------------------------------------------------------------------


def test_certificate_chain_signature(alice_client, carol_client, base, adapter, tmp_path):
    chain = make_ca_chain(tmp_path / "ca", email="release@acme.example")
    policy = {
        "require_signature": True,
        "certificate": {"ca_chain_pem": chain.ca_chain_pem, "subject": "release@acme.example"},
    }
    assert put_policy(carol_client, policy).status_code == 200
    response = push(alice_client, adapter, sign_with_certificate(adapter, chain))
    assert response.status_code == 201, response.content
    signature = Signature.objects.get()
    assert (signature.method, signature.signer_identity, signature.certificate_subject) == (
        "certificate",
        "release@acme.example",
        "CN=acme release",
    )
    assert signature.certificate_fingerprint and signature.certificate_not_after


def test_certificate_from_another_ca_or_subject_is_refused(alice_client, carol_client, base, adapter, tmp_path):
    trusted = make_ca_chain(tmp_path / "trusted")
    rogue = make_ca_chain(tmp_path / "rogue", root_name="Rogue Root CA")
    put_policy(carol_client, {"certificate": {"ca_chain_pem": trusted.ca_chain_pem, "subject": None}})
    refused_with(push(alice_client, adapter, sign_with_certificate(adapter, rogue)), "signature_identity_mismatch")
    put_policy(carol_client, {"certificate": {"ca_chain_pem": trusted.ca_chain_pem, "subject": "someone@else.example"}})
    message = refused_with(
        push(alice_client, adapter, sign_with_certificate(adapter, trusted)), "signature_identity_mismatch"
    )
    assert "someone@else.example" in message


def test_method_not_allowed_by_policy(alice_client, carol_client, base, adapter, key):
    put_policy(carol_client, {**key_policy(key), "methods": ["keyless"]})
    message = refused_with(push(alice_client, adapter, sign_with_key(adapter, key)), "signature_identity_mismatch")
    assert "key method" in message


# --- Later: attach, re-verification against a tightened policy ------------------------------


def test_second_party_attaches_and_a_tightened_policy_fails_reverification(
    alice_client, carol_client, base, adapter, key, tmp_path
):
    auditor_key = make_key(tmp_path / "keys", "auditor")
    put_policy(carol_client, key_policy(key, require=False))
    assert push(alice_client, adapter, sign_with_key(adapter, key)).status_code == 201

    # A second party signs the same files and attaches; their key is not trusted yet.
    (adapter / "model.sig").unlink()
    second = sign_with_key(adapter, auditor_key)
    body = {"signature": ("model.sig", second)}
    refused = alice_client.post("/api/v1/adapters/acme/bot:v1/signatures", _multipart(body), format="multipart")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "signature_identity_mismatch"
    document = key_policy(key, require=False)
    document["trusted_keys"].append({"id": "auditor", "public_key_pem": auditor_key.public_pem, "revoked_at": None})
    assert put_policy(carol_client, document).json()["version"] == 2
    attached = alice_client.post("/api/v1/adapters/acme/bot:v1/signatures", _multipart(body), format="multipart")
    assert attached.status_code == 201, attached.content
    assert (attached.json()["key_id"], attached.json()["policy_version"]) == ("auditor", 2)
    again = alice_client.post("/api/v1/adapters/acme/bot:v1/signatures", _multipart(body), format="multipart")
    assert again.status_code == 200  # the same bundle twice is one signature

    # The CI key is revoked from now on: re-verification fails although upload passed.
    document["trusted_keys"][0]["revoked_at"] = "2026-01-01T00:00:00Z"
    assert put_policy(carol_client, document).json()["version"] == 3
    result = alice_client.post("/api/v1/adapters/acme/bot:v1/verify").json()
    assert (result["satisfies_policy"], result["code"], result["policy_version"], result["files_intact"]) == (
        False,
        "signature_key_revoked",
        3,
        True,
    )
    by_key = {v["signer_identity"]: v["result"] for v in result["verifications"]}
    assert by_key == {"ci": "failed", "auditor": "passed"}


def _multipart(files: dict) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {field: SimpleUploadedFile(name, data) for field, (name, data) in files.items()}


def test_requiring_signatures_later_fails_unsigned_versions_on_reverification(
    alice_client, carol_client, base, adapter, key
):
    assert push(alice_client, adapter).status_code == 201
    assert alice_client.post("/api/v1/adapters/acme/bot:v1/verify").json()["satisfies_policy"] is True
    put_policy(carol_client, key_policy(key))
    result = alice_client.post("/api/v1/adapters/acme/bot:v1/verify").json()
    assert (result["satisfies_policy"], result["code"]) == (False, "signature_required")


def test_repush_with_a_signature_adds_it_to_the_existing_version(alice_client, carol_client, base, adapter, key):
    put_policy(carol_client, key_policy(key, require=False))
    assert push(alice_client, adapter).status_code == 201
    response = push(alice_client, adapter, sign_with_key(adapter, key))
    assert response.status_code == 200 and response.json()["signed"] is True
    assert AdapterVersion.objects.count() == 1


# --- Policies --------------------------------------------------------------------------------


def test_policy_is_versioned_admin_only_and_validated(alice_client, carol_client, key):
    fresh = alice_client.get("/api/v1/namespaces/acme/signing-policy").json()
    assert (fresh["version"], fresh["policy"]["require_signature"], fresh["history"]) == (0, False, [])
    denied = put_policy(alice_client, key_policy(key))
    assert denied.status_code == 403
    invalid = put_policy(carol_client, {"require_signature": "yes"})
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "policy_invalid"
    assert invalid.json()["error"]["detail"]["field"] == "require_signature"
    bad_regex = put_policy(carol_client, {"keyless": [{"issuer": "https://x", "identity_regex": "^(unclosed$"}]})
    assert bad_regex.json()["error"]["detail"]["field"] == "keyless[0].identity_regex"
    assert put_policy(carol_client, key_policy(key)).status_code == 200
    current = alice_client.get("/api/v1/namespaces/acme/signing-policy").json()
    assert current["version"] == 1 and current["created_by"] == "carol"
    assert current["policy"]["trusted_keys"][0]["fingerprint"]
    assert [h["version"] for h in current["history"]] == [1]
    assert alice_client.get("/api/v1/namespaces/bad%20ns/signing-policy").status_code == 400


# --- The registry's key ----------------------------------------------------------------------


def test_keys_listed_without_authentication_and_kept_after_rotation(alice_client, base, adapter):
    anonymous = APIClient()
    first = anonymous.get("/api/v1/keys")
    assert first.status_code == 200
    [key] = first.json()
    assert key["retired_at"] is None and "BEGIN PUBLIC KEY" in key["public_key_pem"]

    assert push(alice_client, adapter).status_code == 201
    version = AdapterVersion.objects.get()
    counter = version_countersign(version)
    assert (counter.is_registry, counter.method, counter.key_fingerprint) == (True, "key", key["key_id"])
    assert version_countersign(version).pk == counter.pk  # once per key, however often it becomes ready

    call_command("signing_key", rotate=True, stdout=io.StringIO())
    keys = anonymous.get("/api/v1/keys").json()
    assert len(keys) == 2
    retired = next(k for k in keys if k["key_id"] == key["key_id"])
    assert retired["retired_at"] is not None
    # A counter-signature made with the retired key still verifies.
    result = version_verify(version)
    assert result.satisfies_policy and [v.result for v in result.verifications] == ["passed"]
    assert RegistryKey.objects.filter(retired_at=None).count() == 1


def test_countersigning_can_be_turned_off(alice_client, base, adapter, settings):
    settings.REGISTRY_COUNTERSIGN = False
    assert push(alice_client, adapter).status_code == 201
    assert version_countersign(AdapterVersion.objects.get()) is None
    assert not Signature.objects.exists()


def test_key_file_is_private(alice_client, settings):
    APIClient().get("/api/v1/keys")
    assert settings.REGISTRY_SIGNING_KEY_FILE.stat().st_mode & 0o777 == 0o600


def test_concurrent_policy_changes_get_consecutive_versions(transactional_db, carol, key):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from registry.services.signatures import signing_policy_set

    def change(_):
        try:
            return signing_policy_set(namespace="fresh", document=key_policy(key), user=carol).version
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = sorted(pool.map(change, range(8)))
    assert versions == list(range(1, 9))


def test_a_broken_trusted_root_stops_the_start_not_a_push(settings, tmp_path):
    from registry.checks import sigstore_trusted_root

    assert sigstore_trusted_root(None) == []
    broken = tmp_path / "trusted_root.json"
    broken.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}')
    settings.SIGSTORE_TRUSTED_ROOT = str(broken)
    [error] = sigstore_trusted_root(None)
    assert error.id == "registry.E001" and str(broken) in error.msg


def test_a_base_push_with_a_signature_is_refused_not_silently_dropped(alice_client, zoo):
    response = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama), b"{}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_unsupported"
