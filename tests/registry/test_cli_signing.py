"""adapterctl sign, push with a signature, sign-attach and verify, against a live server.

Real peft adapters, keys and a CA made in the test, real HTTP and real exit codes. The
registry counter-signs a version when its worker checks pass; running a worker (which
loads the model) would add minutes without testing the CLI more, so these tests call
version_countersign, the service the check pipeline calls, directly.
"""

import json
import os
import subprocess
import sys

import pytest
from rest_framework.authtoken.models import Token

from registry.models import AdapterVersion, RegistryKey
from registry.services.signatures import version_countersign
from tests.signing_helpers import SHARED_FIXTURES, key_policy, make_ca_chain, make_key


@pytest.fixture
def run(live_server, alice):
    token = Token.objects.create(user=alice).key

    def run_cli(*args, token=token):
        env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    return run_cli


@pytest.fixture
def set_policy(carol):
    from tests.conftest import _client_for

    admin = _client_for(carol)

    def put(namespace: str, document: dict) -> dict:
        response = admin.put(f"/api/v1/namespaces/{namespace}/signing-policy", document, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    put.client = admin  # carol reads with it too
    return put


@pytest.fixture
def base(run, zoo):
    pushed = run("push-base", zoo.llama, "--name", "acme/llama")
    assert pushed.returncode == 0, pushed.stderr


def one_line(result) -> str:
    """The failure line: exit 1, exactly one line on stderr, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def signed_push(run, set_policy, zoo, tmp_path):
    """`adapterctl sign` then `adapterctl push`, which sends DIR/model.sig by default; returns the key."""
    key = make_key(tmp_path / "keys", "ci")
    set_policy("acme", key_policy(key))
    adapter = zoo.copy("adapter-attention", tmp_path / "adapter")
    signed = run("sign", adapter, "--key", key.private_path, token="")  # offline: no token needed
    assert signed.returncode == 0, signed.stderr
    assert (adapter / "model.sig").is_file() and "key signature over" in signed.stdout

    pushed = run("--json", "push", adapter, "--name", "acme/bot", "--base", "acme/llama:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert f"signature: {adapter / 'model.sig'}" in pushed.stderr
    body = json.loads(pushed.stdout)
    assert body["signed"] is True
    assert "model.sig" not in {f["path"] for f in body["files"]}
    return key


def test_it_signs_pushes_pulls_and_verifies_offline(run, set_policy, base, zoo, tmp_path):
    signed_push(run, set_policy, zoo, tmp_path)
    pulled = tmp_path / "pulled"
    assert run("pull", "acme/bot:v1", pulled).returncode == 0
    assert not (pulled / "model.sig").exists()

    uncountersigned = one_line(run("verify", "acme/bot:v1", pulled))
    assert "countersignature_missing: no counter-signature from the registry on acme/bot:v1" in uncountersigned

    version_countersign(AdapterVersion.objects.get())
    verified = run("verify", "acme/bot:v1", pulled)
    assert verified.returncode == 0, verified.stderr
    lines = verified.stdout.splitlines()
    assert lines[1].split()[:4] == ["signature", "key", "ci", "passed"]
    assert lines[2].split()[:3] == ["registry", "key", "the"] and lines[2].endswith("passed")
    assert lines[-1].startswith("verified: the files are acme/bot:v1, signed by ci and counter-signed")

    as_json = json.loads(run("--json", "verify", "acme/bot:v1", pulled).stdout)
    assert as_json["verified"] is True and [s["result"] for s in as_json["signatures"]] == ["passed", "passed"]

    registry_key = tmp_path / "registry.pub.pem"
    registry_key.write_text(RegistryKey.objects.get().public_key_pem)
    assert run("verify", "acme/bot:v1", pulled, "--public-key", registry_key).returncode == 0


def test_it_names_the_altered_file(run, set_policy, base, zoo, tmp_path):
    signed_push(run, set_policy, zoo, tmp_path)
    version_countersign(AdapterVersion.objects.get())
    pulled = tmp_path / "pulled"
    assert run("pull", "acme/bot:v1", pulled).returncode == 0
    weights = pulled / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))

    result = run("verify", "acme/bot:v1", pulled)
    line = one_line(result)
    assert line.startswith("adapterctl: signature_files_mismatch: 'adapter_model.safetensors' has sha256 ")
    assert "but the signature says" in line
    assert "FAILED signature_files_mismatch" in result.stdout


def test_it_trusts_only_the_given_public_key_for_the_counter_signature(run, set_policy, base, zoo, tmp_path):
    signed_push(run, set_policy, zoo, tmp_path)
    version_countersign(AdapterVersion.objects.get())
    pulled = tmp_path / "pulled"
    assert run("pull", "acme/bot:v1", pulled).returncode == 0
    wrong = tmp_path / "wrong.pub.pem"
    wrong.write_text(make_key(tmp_path / "other", "wrong").public_pem)

    line = one_line(run("verify", "acme/bot:v1", pulled, "--public-key", wrong))
    assert "signature_identity_mismatch: the counter-signature is by the registry (key" in line
    assert f"which is not the key in --public-key {wrong}" in line

    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello")
    assert f"--public-key {not_a_key} is not a PEM public key" in one_line(
        run("verify", "acme/bot:v1", pulled, "--public-key", not_a_key)
    )
    assert "cannot load the trusted root" in one_line(run("verify", "acme/bot:v1", pulled, "--trusted-root", not_a_key))
    if (SHARED_FIXTURES / "trusted_root.production.json").is_file():  # the root pinned for keyless signatures
        pinned = run(
            "verify", "acme/bot:v1", pulled, "--trusted-root", SHARED_FIXTURES / "trusted_root.production.json"
        )
        assert pinned.returncode == 0, pinned.stderr


def test_a_second_party_attaches_a_certificate_signature(run, set_policy, base, zoo, tmp_path):
    key = signed_push(run, set_policy, zoo, tmp_path)
    version_countersign(AdapterVersion.objects.get())
    chain = make_ca_chain(tmp_path / "ca", email="review@acme.example")
    set_policy("acme", {**key_policy(key), "certificate": {"ca_chain_pem": chain.ca_chain_pem}})

    pulled = tmp_path / "pulled"
    assert run("pull", "acme/bot:v1", pulled).returncode == 0
    review = tmp_path / "review.sig"
    signed = run(
        "sign", pulled, "--key", chain.key, "--certificate", chain.leaf, "--chain", *chain.chain, "--output", review
    )
    assert signed.returncode == 0, signed.stderr
    assert not (pulled / "model.sig").exists()

    attached = run("sign-attach", "acme/bot:v1", review)
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.startswith("acme/bot:v1: attached certificate signature by review@acme.example: passed")
    again = run("sign-attach", "acme/bot:v1", review)
    assert again.returncode == 0 and "already attached" in again.stdout

    listed = set_policy.client.get("/api/v1/adapters/acme/bot:v1/signatures").json()
    assert [(s["method"], s["is_registry"], s["result"]) for s in listed] == [
        ("key", False, "passed"),
        ("key", True, "passed"),
        ("certificate", False, "passed"),
    ]
    assert listed[2]["signer_identity"] == "review@acme.example"
    verified = run("--json", "verify", "acme/bot:v1", pulled)
    assert verified.returncode == 0, verified.stderr
    outcomes = json.loads(verified.stdout)["signatures"]
    assert [(o["method"], o["signer"], o["result"]) for o in outcomes if not o["is_registry"]] == [
        ("key", "ci", "passed"),
        ("certificate", "review@acme.example", "passed"),
    ]


def test_a_bad_bundle_is_refused_with_its_code(run, set_policy, base, zoo, tmp_path):
    signed_push(run, set_policy, zoo, tmp_path)
    garbage = tmp_path / "garbage.sig"
    garbage.write_text('{"not": "a bundle"}')
    line = one_line(run("sign-attach", "acme/bot:v1", garbage))
    assert line.startswith("adapterctl: signature_invalid: ") and "(HTTP 422)" in line

    stranger = make_key(tmp_path / "stranger", "stranger")
    other = tmp_path / "other.sig"
    assert run("sign", zoo.adapters["attention"], "--key", stranger.private_path, "--output", other).returncode == 0
    assert "signature_identity_mismatch" in one_line(run("sign-attach", "acme/bot:v1", other))


def test_push_takes_a_signature_from_elsewhere_and_base_pushes_refuse_one(run, set_policy, base, zoo, tmp_path):
    key = make_key(tmp_path / "keys", "ci")
    set_policy("acme", key_policy(key))
    bundle = tmp_path / "bot.sig"
    assert run("sign", zoo.adapters["attention"], "--key", key.private_path, "--output", bundle).returncode == 0
    pushed = run(
        "push", zoo.adapters["attention"], "--name", "acme/bot", "--base", "acme/llama:v1", "--signature", bundle
    )
    assert pushed.returncode == 0, pushed.stderr
    assert f"signature: {bundle}" in pushed.stdout and "signed:  yes" in pushed.stdout

    unsigned = one_line(run("push", zoo.adapters["dora"], "--name", "acme/dora", "--base", "acme/llama:v1"))
    assert "signature_required" in unsigned
    missing = one_line(run("push", zoo.adapters["dora"], "--name", "acme/dora", "--base", "acme/llama:v1",
                           "--signature", tmp_path / "nope.sig"))  # fmt: skip
    assert "--signature" in missing and "no such file" in missing
    base_signed = one_line(run("push-base", zoo.llama, "--name", "acme/llama", "--signature", bundle))
    assert "--signature is for adapter pushes" in base_signed


def test_the_cli_names_the_signature_file_as_the_verifier_does():
    from registry import cli
    from registry.signing import verify

    assert cli.SIGNATURE_FILE == verify.SIGNATURE_FILE


def test_sign_says_what_is_wrong_in_one_line(run, zoo, tmp_path):
    key = make_key(tmp_path / "keys")
    assert "is not a directory" in one_line(run("sign", tmp_path / "nowhere", "--key", key.private_path, token=""))
    adapter = zoo.copy("adapter-attention", tmp_path / "adapter")
    assert "no such file" in one_line(run("sign", adapter, "--key", tmp_path / "missing.pem", token=""))
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("not a key")
    assert "is not a PEM private key" in one_line(run("sign", adapter, "--key", not_a_key, token=""))
    public_only = tmp_path / "public.pem"
    public_only.write_text(key.public_pem)
    assert "is not a PEM private key" in one_line(run("sign", adapter, "--key", public_only, token=""))
    inside = one_line(run("sign", adapter, "--key", key.private_path, "--output", adapter / "extra.sig", token=""))
    assert "where a push would send it as a model file" in inside
    assert not (adapter / "model.sig").exists() and not (adapter / "extra.sig").exists()
