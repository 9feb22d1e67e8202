"""The offline verifier against real signatures that nobody on this project made.

The bundles come from sigstore/model-transparency and sigstore-python (see
../shared/fixtures/sigstore/README.md): a keyless model-signing signature with a
production Rekor entry, the same files signed with an elliptic key and with a
certificate chain, and a GitHub Actions keyless bundle over a wheel. No Django and
no database: registry.signing is called directly. Every test runs with sockets
limited to loopback, and one runs the verifier in a network namespace with no
network at all.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from registry.signing.policy import DEFAULT_POLICY, parse_policy
from registry.signing.verify import (
    SignatureRefused,
    hash_files,
    load_trusted_root,
    match_files,
    verify_artifact,
    verify_bundle,
    verify_directory,
)
from tests.signing_helpers import SHARED_FIXTURES, make_ca_chain, make_key, resign_statement, sign_with_key

pytestmark = [
    pytest.mark.skipif(
        not SHARED_FIXTURES.is_dir(),
        reason=f"the third-party Sigstore fixtures are not at {SHARED_FIXTURES} (a clone without ../shared)",
    ),
    pytest.mark.usefixtures("no_network"),
]

ROOT = Path(__file__).resolve().parents[2]
MODEL_TRANSPARENCY = SHARED_FIXTURES / "model-transparency"
KEYLESS = MODEL_TRANSPARENCY / "v1.1.0-sigstore"
ELLIPTIC_KEY = MODEL_TRANSPARENCY / "v1.1.0-elliptic-key"
CERTIFICATE = MODEL_TRANSPARENCY / "v1.1.0-certificate"
KEYS = MODEL_TRANSPARENCY / "keys"
WHEEL = SHARED_FIXTURES / "sigstore-python" / "bundle_v3_github.whl"
FIXTURE_ROOT = SHARED_FIXTURES / "trusted_root.production.json"

IBM_IDENTITY = "stefanb@us.ibm.com"
IBM_ISSUER = "https://sigstore.verify.ibm.com/oauth2"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
RFC8785_WORKFLOW = r"^https://github\.com/trailofbits/rfc8785\.py/\.github/workflows/release\.yml@refs/tags/.*$"
# The signer excluded ignore-me (and model.sig); leaving it out is the verifier's choice here.
VERIFIER_IGNORES = ("model.sig", "ignore-me")


def signature(directory: Path) -> bytes:
    return (directory / "model.sig").read_bytes()


def keyless_policy(**rule) -> object:
    return parse_policy({"keyless": [rule or {"issuer": IBM_ISSUER, "identity": IBM_IDENTITY}]})


def elliptic_key_policy(revoked_at: str | None = None):
    pem = (KEYS / "signing-key-pub.pem").read_text()
    return parse_policy(
        {"trusted_keys": [{"id": "model-transparency", "public_key_pem": pem, "revoked_at": revoked_at}]}
    )


def certificate_policy(ca_chain_pem: str | None = None):
    pem = ca_chain_pem or (KEYS / "int-ca-cert.pem").read_text() + (KEYS / "ca-cert.pem").read_text()
    return parse_policy({"certificate": {"ca_chain_pem": pem}})


def github_policy(ref: str = "refs/tags/v0.1.2"):
    rule = {
        "issuer": GITHUB_ISSUER,
        "identity_regex": RFC8785_WORKFLOW,
        "claims": {"github_workflow_repository": "trailofbits/rfc8785.py", "github_workflow_ref": ref},
    }
    return parse_policy({"keyless": [rule]})


def refused(call, *args, **kwargs) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.fixture(scope="module")
def trusted_root():
    return load_trusted_root(str(FIXTURE_ROOT))


@pytest.fixture
def keyless_copy(tmp_path) -> Path:
    """A writable copy of the keyless fixture, for tests that tamper with its files."""
    return Path(shutil.copytree(KEYLESS, tmp_path / "model"))


# --- Keyless: the model-transparency bundle with a production Rekor entry --------------------


@pytest.mark.parametrize("root_path", [str(FIXTURE_ROOT), None], ids=["fixture-root", "packaged-root"])
def test_it_verifies_the_keyless_bundle_offline_and_records_the_log_entry(root_path):
    verified = verify_directory(
        KEYLESS, signature(KEYLESS), keyless_policy(), load_trusted_root(root_path), ignore=VERIFIER_IGNORES
    )
    assert (verified.method, verified.trusted) == ("keyless", True)
    assert (verified.signer.identity, verified.signer.issuer) == (IBM_IDENTITY, IBM_ISSUER)
    assert verified.matched_rule == f"{IBM_IDENTITY} via {IBM_ISSUER}"
    assert sorted(verified.resources) == ["signme-1", "signme-2"]

    # What the verifier records must be what the bundle holds, read here independently.
    material = json.loads(signature(KEYLESS))["verificationMaterial"]
    entry = material["tlogEntries"][0]
    certificate = base64.b64decode(material["certificate"]["rawBytes"])
    assert verified.signer.rekor_log_index == int(entry["logIndex"]) == 598151086
    assert (
        verified.signer.rekor_integrated_time == datetime.fromtimestamp(int(entry["integratedTime"]), UTC).isoformat()
    )
    assert verified.signer.certificate_fingerprint == hashlib.sha256(certificate).hexdigest()
    leaf = x509.load_der_x509_certificate(certificate)
    assert verified.signer.certificate_fingerprint == leaf.fingerprint(hashes.SHA256()).hex()


def test_it_accepts_a_matching_identity_regex(trusted_root):
    policy = keyless_policy(issuer=IBM_ISSUER, identity_regex=r"[a-z]+@us\.ibm\.com")
    verified = verify_directory(KEYLESS, signature(KEYLESS), policy, trusted_root, ignore=VERIFIER_IGNORES)
    assert verified.trusted and verified.signer.identity == IBM_IDENTITY


def test_it_refuses_the_signers_own_ignore_paths(trusted_root):
    """The signer left ignore-me out; a verifier that does not choose to ignore it must refuse."""
    error = refused(verify_directory, KEYLESS, signature(KEYLESS), keyless_policy(), trusted_root)
    assert error.code == "signature_files_mismatch"
    assert "'ignore-me'" in error.message and "ignore_paths" in error.message


@pytest.mark.parametrize(
    "rule, says",
    [
        ({"issuer": IBM_ISSUER, "identity": "someone.else@us.ibm.com"}, "identity 'stefanb@us.ibm.com' is not"),
        ({"issuer": "https://accounts.google.com", "identity": IBM_IDENTITY}, "issuer"),
        ({"issuer": IBM_ISSUER, "identity_regex": r".*@example\.com"}, "does not match"),
        ({"issuer": IBM_ISSUER, "identity_regex": "stefanb"}, "does not match"),  # whole value, not a search
    ],
    ids=["wrong-identity", "wrong-issuer", "regex-other-domain", "regex-partial"],
)
def test_it_refuses_a_signer_the_policy_does_not_name(trusted_root, rule, says):
    error = refused(verify_bundle, signature(KEYLESS), keyless_policy(**rule), trusted_root)
    assert error.code == "signature_identity_mismatch"
    assert says in error.message
    assert error.details["identity"] == IBM_IDENTITY  # who tried is known even when refused


def test_it_verifies_a_keyless_bundle_untrusted_when_the_policy_names_nobody(trusted_root):
    verified = verify_bundle(signature(KEYLESS), DEFAULT_POLICY, trusted_root)
    assert (verified.trusted, verified.matched_rule) == (False, None)


def test_it_refuses_a_keyless_bundle_under_a_root_with_another_fulcio(tmp_path):
    """The pinned root is what makes a keyless signature genuine: swap its Fulcio CA and it fails."""
    other = make_ca_chain(tmp_path / "other-ca", root_name="Not Fulcio")
    other_der = x509.load_pem_x509_certificate(other.chain[1].read_bytes()).public_bytes(serialization.Encoding.DER)
    document = json.loads(FIXTURE_ROOT.read_text())
    for authority in document["certificateAuthorities"]:
        authority["certChain"]["certificates"] = [{"rawBytes": base64.b64encode(other_der).decode()}]
    other_root = tmp_path / "trusted_root.json"
    other_root.write_text(json.dumps(document))
    error = refused(verify_bundle, signature(KEYLESS), keyless_policy(), load_trusted_root(str(other_root)))
    assert error.code == "signature_invalid"


def test_it_refuses_a_modified_file(keyless_copy, trusted_root):
    (keyless_copy / "signme-1").write_bytes(b"changed after signing\n")
    error = refused(
        verify_directory, keyless_copy, signature(keyless_copy), keyless_policy(), trusted_root, ignore=VERIFIER_IGNORES
    )
    assert error.code == "signature_files_mismatch"
    assert "'signme-1'" in error.message and "modified after signing" in error.message


def test_it_refuses_an_added_file(keyless_copy, trusted_root):
    (keyless_copy / "extra.bin").write_bytes(b"not signed")
    error = refused(
        verify_directory, keyless_copy, signature(keyless_copy), keyless_policy(), trusted_root, ignore=VERIFIER_IGNORES
    )
    assert error.code == "signature_files_mismatch"
    assert "'extra.bin'" in error.message and "not signed" in error.message


def test_it_refuses_a_missing_file(keyless_copy, trusted_root):
    (keyless_copy / "signme-2").unlink()
    error = refused(
        verify_directory, keyless_copy, signature(keyless_copy), keyless_policy(), trusted_root, ignore=VERIFIER_IGNORES
    )
    assert error.code == "signature_files_mismatch"
    assert "'signme-2' is signed but missing" in error.message


def test_it_refuses_a_symlink_in_the_directory(keyless_copy, trusted_root):
    target = keyless_copy / "signme-1"
    moved = keyless_copy.parent / "outside"
    target.rename(moved)
    target.symlink_to(moved)  # same bytes, but through a link
    error = refused(
        verify_directory, keyless_copy, signature(keyless_copy), keyless_policy(), trusted_root, ignore=VERIFIER_IGNORES
    )
    assert error.code == "signature_files_mismatch"
    assert "symbolic link" in error.message


def test_it_refuses_a_tampered_dsse_payload(trusted_root):
    document = json.loads(signature(KEYLESS))
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    error = refused(verify_bundle, json.dumps(document).encode(), keyless_policy(), trusted_root)
    assert error.code == "signature_invalid"


# --- Key and certificate bundles over the same files -----------------------------------------


def test_it_verifies_the_elliptic_key_bundle(trusted_root):
    verified = verify_directory(
        ELLIPTIC_KEY, signature(ELLIPTIC_KEY), elliptic_key_policy(), trusted_root, ignore=VERIFIER_IGNORES
    )
    assert (verified.method, verified.signer.key_id, verified.trusted) == ("key", "model-transparency", True)
    assert sorted(verified.resources) == ["signme-1", "signme-2"]


def test_it_refuses_the_elliptic_key_bundle_with_another_key(trusted_root, tmp_path):
    other = make_key(tmp_path / "keys")
    policy = parse_policy({"trusted_keys": [{"id": "ours", "public_key_pem": other.public_pem}]})
    error = refused(verify_bundle, signature(ELLIPTIC_KEY), policy, trusted_root)
    assert error.code == "signature_identity_mismatch"


def test_it_refuses_the_elliptic_key_bundle_once_the_key_is_revoked(trusted_root):
    policy = elliptic_key_policy(revoked_at="2026-01-01T00:00:00Z")
    error = refused(verify_bundle, signature(ELLIPTIC_KEY), policy, trusted_root)
    assert error.code == "signature_key_revoked"
    assert error.details["key_id"] == "model-transparency"
    # Revocation takes effect at its time, not before.
    before = datetime(2025, 12, 31, tzinfo=UTC)
    assert verify_bundle(signature(ELLIPTIC_KEY), policy, trusted_root, now=before).trusted


def test_it_refuses_a_tampered_key_bundle(trusted_root):
    document = json.loads(signature(ELLIPTIC_KEY))
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["subject"][0]["name"] = "someone-elses-model"
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    error = refused(verify_bundle, json.dumps(document).encode(), elliptic_key_policy(), trusted_root)
    assert error.code == "signature_invalid"


def test_it_verifies_the_certificate_bundle(trusted_root):
    verified = verify_directory(
        CERTIFICATE, signature(CERTIFICATE), certificate_policy(), trusted_root, ignore=VERIFIER_IGNORES
    )
    assert (verified.method, verified.trusted, verified.matched_rule) == ("certificate", True, "CA chain")
    assert verified.signer.certificate_subject == "CN=intermediate-ca"


def test_it_refuses_the_certificate_bundle_under_another_ca(trusted_root, tmp_path):
    other = make_ca_chain(tmp_path / "other-ca", root_name="Other Root CA")
    error = refused(verify_bundle, signature(CERTIFICATE), certificate_policy(other.ca_chain_pem), trusted_root)
    assert error.code == "signature_identity_mismatch"
    assert "does not chain" in error.message


def test_it_refuses_a_method_the_policy_does_not_allow(trusted_root):
    policy = parse_policy({"methods": ["key"], "keyless": [{"issuer": IBM_ISSUER, "identity": IBM_IDENTITY}]})
    error = refused(verify_bundle, signature(KEYLESS), policy, trusted_root)
    assert error.code == "signature_identity_mismatch"
    assert "keyless method" in error.message


# --- GitHub Actions: a keyless bundle over a wheel --------------------------------------------


def test_it_verifies_the_github_actions_bundle_with_its_claims(trusted_root):
    signer = verify_artifact(
        WHEEL, WHEEL.with_name(WHEEL.name + ".sigstore").read_bytes(), github_policy(), trusted_root
    )
    assert signer.issuer == GITHUB_ISSUER
    assert signer.identity == "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    assert signer.claims["github_workflow_repository"] == "trailofbits/rfc8785.py"
    assert signer.rekor_log_index is not None


def test_it_refuses_the_github_actions_bundle_for_another_tag(trusted_root):
    raw = WHEEL.with_name(WHEEL.name + ".sigstore").read_bytes()
    error = refused(verify_artifact, WHEEL, raw, github_policy("refs/tags/v0.1.3"), trusted_root)
    assert error.code == "signature_identity_mismatch"
    assert "github_workflow_ref is 'refs/tags/v0.1.2'" in error.message


def test_it_refuses_the_github_actions_bundle_over_other_bytes(trusted_root, tmp_path):
    altered = tmp_path / WHEEL.name
    altered.write_bytes(WHEEL.read_bytes() + b"\0")
    raw = WHEEL.with_name(WHEEL.name + ".sigstore").read_bytes()
    assert refused(verify_artifact, altered, raw, github_policy(), trusted_root).code == "signature_invalid"


# --- A genuinely signed statement whose subject does not match its resources ----------------


def test_it_refuses_a_statement_whose_subject_digest_does_not_cover_its_resources(trusted_root, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (model / "adapter_model.safetensors").write_bytes(b"\x08" + b"\0" * 15)
    key = make_key(tmp_path / "keys")
    policy = parse_policy({"trusted_keys": [{"id": "ci", "public_key_pem": key.public_pem}]})
    bundle = sign_with_key(model, key)
    assert verify_directory(model, bundle, policy, trusted_root).trusted  # the honest bundle passes

    def forge_subject(statement):
        statement["subject"][0]["digest"]["sha256"] = "ab" * 32

    forged = resign_statement(bundle, key, forge_subject)
    error = refused(verify_bundle, forged, policy, trusted_root)
    assert error.code == "signature_subject_mismatch"


def test_it_refuses_a_subject_that_is_not_the_versions_digest(trusted_root):
    verified = verify_bundle(signature(KEYLESS), keyless_policy(), trusted_root)
    files = hash_files(KEYLESS, ignore=VERIFIER_IGNORES)
    match_files(verified, files, expected_digest=verified.subject_digest)
    error = refused(match_files, verified, files, expected_digest="cd" * 32)
    assert error.code == "signature_subject_mismatch"
    assert "the version's digest" in error.message


# --- No network at all --------------------------------------------------------------------------

OFFLINE_SCRIPT = """
import socket, sys
from pathlib import Path
from registry.signing.policy import parse_policy
from registry.signing.verify import load_trusted_root, verify_artifact, verify_directory

# Prove the namespace really has no network before proving verification does not need one.
try:
    socket.create_connection(("1.1.1.1", 443), timeout=2)
except OSError:
    pass
else:
    sys.exit("the network namespace can reach 1.1.1.1")

fixtures = Path(sys.argv[1])
mt = fixtures / "model-transparency"
root = load_trusted_root(None)
ignore = ("model.sig", "ignore-me")
cases = [
    ("v1.1.0-sigstore", {"keyless": [{"issuer": "https://sigstore.verify.ibm.com/oauth2",
                                      "identity": "stefanb@us.ibm.com"}]}),
    ("v1.1.0-elliptic-key", {"trusted_keys": [{"id": "mt",
                                               "public_key_pem": (mt / "keys/signing-key-pub.pem").read_text()}]}),
    ("v1.1.0-certificate", {"certificate": {"ca_chain_pem": (mt / "keys/int-ca-cert.pem").read_text()
                                                           + (mt / "keys/ca-cert.pem").read_text()}}),
]
for name, document in cases:
    directory = mt / name
    verified = verify_directory(directory, (directory / "model.sig").read_bytes(), parse_policy(document), root,
                                ignore=ignore)
    assert verified.trusted, name
    print(name, verified.method, "ok")
wheel = fixtures / "sigstore-python" / "bundle_v3_github.whl"
policy = parse_policy({"keyless": [{
    "issuer": "https://token.actions.githubusercontent.com",
    "identity_regex": "^https://github[.]com/trailofbits/rfc8785[.]py/.*$",
    "claims": {"github_workflow_repository": "trailofbits/rfc8785.py", "github_workflow_ref": "refs/tags/v0.1.2"},
}]})
verify_artifact(wheel, wheel.with_name(wheel.name + ".sigstore").read_bytes(), policy, root)
print("github ok")
"""


def _unshare_prefix() -> list[str] | None:
    """`unshare -n` as root; `unshare -rn` (a user namespace) otherwise; None where neither works."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-n"], ["unshare", "-r", "-n"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return None


def test_it_verifies_every_fixture_with_networking_disabled(tmp_path):
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("unshare -n (a network namespace) is not permitted here; the socket guard still applies")
    script = tmp_path / "offline_verify.py"
    script.write_text(textwrap.dedent(OFFLINE_SCRIPT))
    done = subprocess.run(
        [*prefix, sys.executable, str(script), str(SHARED_FIXTURES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split("\n")[:4] == [
        "v1.1.0-sigstore keyless ok",
        "v1.1.0-elliptic-key key ok",
        "v1.1.0-certificate certificate ok",
        "github ok",
    ]


# --- The guard itself -------------------------------------------------------------------------


def test_the_socket_guard_refuses_other_hosts_and_allows_loopback():
    import socket

    from tests.no_network import network_blocked

    with network_blocked() as attempts:
        with pytest.raises(pytest.fail.Exception):
            socket.getaddrinfo("tuf-repo-cdn.sigstore.dev", 443)
        with pytest.raises(pytest.fail.Exception):
            socket.create_connection(("192.0.2.1", 443), timeout=0.1)
        with pytest.raises(pytest.fail.Exception), socket.socket() as sock:
            sock.connect(("192.0.2.1", 443))
        assert socket.getaddrinfo("localhost", 80)
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            with socket.create_connection(server.getsockname(), timeout=1):
                pass
    assert len(attempts) == 3
