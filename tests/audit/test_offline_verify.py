"""Offline verification: an export verifies; every kind of tampering fails with one line naming the file
or the first broken event; --public-key decides whose export it is; no Django is needed."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from registry.audit.verify import VerificationFailed, run, verify_export
from registry.signing.keys import active_key
from tests.audit.export_helpers import export_zip, member, record_events, rewrite

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def export(bob, tmp_path) -> Path:
    record_events(bob, count=6)
    return export_zip(bob, tmp_path)


@pytest.fixture
def registry_pem(tmp_path) -> Path:
    path = tmp_path / "registry.pem"
    path.write_text(active_key().public_key_pem)
    return path


def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def failure(path: Path, public_key_pem: bytes | None = None) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as caught:
        verify_export(path, public_key_pem=public_key_pem)
    assert "\n" not in str(caught.value)
    return caught.value


def lines_of(path: Path) -> list[bytes]:
    return member(path, "events.jsonl").splitlines(keepends=True)


def seq_of(line: bytes) -> int:
    return json.loads(line)["seq"]


def test_an_untouched_export_verifies(export, registry_pem, capsys):
    assert run(export, str(registry_pem)) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: audit export") and "made by the given public key" in out
    assert run(export) == 0
    assert "from INSIDE the ZIP: this proves the export is intact and self-consistent, NOT who made it" in (
        capsys.readouterr().out
    )


def test_changing_any_single_byte_of_the_events_names_its_line(bob, tmp_path):
    record_events(bob, count=2)
    export = export_zip(bob, tmp_path)
    events = member(export, "events.jsonl")
    tampered = tmp_path / "tampered.zip"
    for position in range(len(events)):  # every byte of every line, newlines included
        changed = bytearray(events)
        changed[position] ^= 0x01
        rewrite(export, tampered, {"events.jsonl": bytes(changed)})
        problem = failure(tampered)
        line = events.count(b"\n", 0, position) + 1
        assert problem.where == "events.jsonl" and "the file was changed after the export" in problem.message
        assert f"line {line})" in problem.message or f"line {line}:" in problem.message, (position, str(problem))


def test_removing_a_line_names_the_gap(export, tmp_path):
    lines = lines_of(export)
    removed = seq_of(lines[3])
    problem = failure(rewrite(export, tmp_path / "t.zip", {"events.jsonl": b"".join(lines[:3] + lines[4:])}))
    assert f"events.jsonl event {removed + 1} (line 4): sequence gap: expected {removed}" in str(problem)


def test_reordering_two_lines_names_the_first_out_of_place(export, tmp_path):
    lines = lines_of(export)
    lines[2], lines[3] = lines[3], lines[2]
    problem = failure(rewrite(export, tmp_path / "t.zip", {"events.jsonl": b"".join(lines)}))
    assert f"event {seq_of(lines[2])} (line 3)" in str(problem)


@pytest.mark.parametrize("cut", ["mid-line", "whole lines"])
def test_truncating_the_events_is_named(export, tmp_path, cut):
    lines = lines_of(export)
    data = b"".join(lines)
    truncated = data[: len(data) - len(lines[-1]) // 2] if cut == "mid-line" else b"".join(lines[:-2])
    problem = str(failure(rewrite(export, tmp_path / "t.zip", {"events.jsonl": truncated})))
    if cut == "mid-line":
        assert f"events.jsonl line {len(lines)}: not valid JSON" in problem
    else:
        assert f"event(s) {seq_of(lines[-2])} to {seq_of(lines[-1])} removed or the file truncated" in problem


def test_a_replaced_signature_is_named(export, tmp_path, registry_pem):
    manifest = member(export, "manifest.json")
    forged = other_key().sign(manifest, ec.ECDSA(hashes.SHA256()))
    for signature in (forged, b"not a signature"):
        path = rewrite(export, tmp_path / "t.zip", {"manifest.sig": signature})
        assert failure(path).where == "manifest.sig"
        assert failure(path, registry_pem.read_bytes()).where == "manifest.sig"


def test_a_replaced_public_key_is_named(export, tmp_path):
    key_id = json.loads(member(export, "manifest.json"))["key_id"]
    path = rewrite(export, tmp_path / "t.zip", {f"keys/{key_id}.pem": public_pem(other_key())})
    problem = failure(path)
    assert problem.where == f"keys/{key_id}.pem" and "not the key" in problem.message


def test_a_whole_export_forged_with_another_key_fails_only_against_the_registry_key(export, tmp_path, registry_pem):
    """Integrity is not origin: re-signed with the forger's key (shipped in keys/), the export is
    consistent, so only a key obtained separately tells it is not the registry's."""
    forger = other_key()
    forger_id = hashlib.sha256(public_pem(forger)).hexdigest()
    manifest = json.loads(member(export, "manifest.json"))
    manifest["key_id"] = forger_id
    manifest["files"][f"keys/{forger_id}.pem"] = {
        "sha256": hashlib.sha256(public_pem(forger)).hexdigest(),
        "size": len(public_pem(forger)),
    }
    manifest_bytes = json.dumps(manifest).encode()
    path = rewrite(
        export,
        tmp_path / "forged.zip",
        {
            "manifest.json": manifest_bytes,
            "manifest.sig": forger.sign(manifest_bytes, ec.ECDSA(hashes.SHA256())),
            f"keys/{forger_id}.pem": public_pem(forger),
        },
    )
    assert verify_export(path).key_source == "zip"
    problem = failure(path, registry_pem.read_bytes())
    assert problem.where == "manifest.sig" and "by the given public key" in problem.message


def test_another_public_key_fails(export, registry_pem):
    assert verify_export(export, public_key_pem=registry_pem.read_bytes()).key_source == "given"
    problem = failure(export, public_pem(other_key()))
    assert problem.where == "manifest.sig" and "not a signature of manifest.json by the given public key" in str(
        problem
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"summary.pdf": None}, "summary.pdf: listed in the manifest but missing from the ZIP"),
        ({"notes.txt": b"added later"}, "notes.txt: in the ZIP but not listed in the manifest"),
        ({"events.csv": b"seq\n1\n"}, "events.csv: SHA-256"),
        ({"README.txt": b"trust me"}, "README.txt: SHA-256"),
    ],
)
def test_missing_extra_and_changed_files_are_named(export, tmp_path, change, named):
    assert str(failure(rewrite(export, tmp_path / "t.zip", change))).startswith(named)


def _resigned(export: Path, target: Path, events: bytes | None = None, edit=None) -> Path:
    """The export as a registry holding its key would make it from a tampered database: every hash
    in the manifest recomputed and the manifest signed again with the registry's own key."""
    manifest = json.loads(member(export, "manifest.json"))
    replacements = {}
    if events is not None:
        replacements["events.jsonl"] = events
        manifest["files"]["events.jsonl"] = {"sha256": hashlib.sha256(events).hexdigest(), "size": len(events)}
    if edit is not None:
        edit(manifest)
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    key = serialization.load_pem_private_key(Path(settings.REGISTRY_SIGNING_KEY_FILE).read_bytes(), password=None)
    replacements["manifest.json"] = manifest_bytes
    replacements["manifest.sig"] = key.sign(manifest_bytes, ec.ECDSA(hashes.SHA256()))
    return rewrite(export, target, replacements)


def test_the_chain_catches_an_edit_even_when_the_files_match_their_hashes(export, tmp_path, registry_pem):
    lines = lines_of(export)
    event = json.loads(lines[2])
    event["reason"] = "nothing to see here"
    lines[2] = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    path = _resigned(export, tmp_path / "t.zip", b"".join(lines))
    problem = failure(path, registry_pem.read_bytes())
    assert str(problem) == (
        f"events.jsonl event {event['seq']} (line 3): entry_hash does not match the event's content: the event was changed"
    )


def test_a_filtered_export_verifies_and_a_wrong_omitted_hash_is_named(bob, tmp_path, registry_pem):
    record_events(bob, count=8)
    path = export_zip(bob, tmp_path, namespace="globex")
    report = verify_export(path, public_key_pem=registry_pem.read_bytes())
    assert report.omitted > 0 and report.filters == {"namespace": "globex"}
    omitted_seq = json.loads(member(path, "manifest.json"))["omitted"][0][0]

    def break_first_omitted(manifest):
        manifest["omitted"][0][1] = "0" * 64

    problem = failure(_resigned(path, tmp_path / "t.zip", edit=break_first_omitted), registry_pem.read_bytes())
    assert f"event {omitted_seq + 1}" in str(problem)
    assert f"the entry_hash the manifest lists for omitted event {omitted_seq}" in str(problem)


def test_a_forged_checkpoint_is_named(export, tmp_path, registry_pem):
    def move_the_checkpoint(manifest):
        manifest["checkpoint"]["evidence"]["payload"]["seq"] += 1

    problem = failure(_resigned(export, tmp_path / "t.zip", edit=move_the_checkpoint), registry_pem.read_bytes())
    assert problem.where == "manifest.json checkpoint"


BLOCK_DJANGO = """
import runpy, sys
sys.path.insert(0, {root!r})
sys.modules["django"] = None  # "import django" raises ImportError: as if it were not installed
sys.argv = ["python -m registry.audit.verify", *sys.argv[1:]]
try:
    runpy.run_module("registry.audit.verify", run_name="__main__")
except SystemExit as done:
    assert not any(name.startswith("django") and sys.modules[name] for name in sys.modules), "django was imported"
    raise
"""


def test_the_verifier_runs_without_django(export, tmp_path, registry_pem):
    command = [sys.executable, "-I", "-c", BLOCK_DJANGO.format(root=str(ROOT))]
    ok = subprocess.run([*command, str(export), "--public-key", str(registry_pem)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: audit export")
    lines = lines_of(export)
    broken = rewrite(export, tmp_path / "t.zip", {"events.jsonl": b"".join(lines[:2] + lines[3:])})
    failed = subprocess.run([*command, str(broken)], capture_output=True, text=True)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("FAILED: events.jsonl")


def test_adapterctl_audit_verify_is_the_same_check(export, tmp_path, registry_pem):
    def adapterctl(*args):
        env = {key: value for key, value in os.environ.items() if not key.startswith("ADAPTER_REGISTRY")}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", "audit", "verify", *args], capture_output=True, text=True, env=env
        )

    ok = adapterctl(str(export), "--public-key", str(registry_pem))  # no token, no registry: offline
    assert ok.returncode == 0, ok.stderr
    assert "made by the given public key" in ok.stdout
    refused = adapterctl(str(export), "--public-key", str(tmp_path / "missing.pem"))
    assert refused.returncode == 1 and "cannot read" in refused.stderr
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(other_key()))
    failed = adapterctl(str(export), "--public-key", str(other))
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
    assert failed.stderr.startswith("adapterctl: verification failed: manifest.sig: not a signature")
