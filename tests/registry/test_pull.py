"""adapterctl pull against a live server: real HTTP, real files, verified bytes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from registry.storage import blob_name
from tests.helpers import directory_files, upload  # noqa: F401


@pytest.fixture
def run(live_server, alice, alice_client):
    token = Token.objects.get_or_create(user=alice)[0].key

    def run_cli(*args, cwd=None):
        env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=cwd,
        )

    return run_cli


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_pull_writes_the_registered_bytes_into_name_vN(run, api_pushed, zoo, tmp_path):
    _base, adapter = api_pushed
    result = run("--json", "pull", "acme/bot:v1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["digest"] == adapter["digest"] and written["ref"] == "acme/bot:v1"
    assert _tree(tmp_path / "bot-v1") == _tree(zoo.adapters["attention"])
    assert {(f["path"], f["size"], f["sha256"]) for f in written["files"]} == {
        (f["path"], f["size"], f["sha256"]) for f in adapter["files"]
    }
    assert all(f["written"] for f in written["files"])

    again = run("pull", f"acme/bot@sha256:{adapter['digest']}", str(tmp_path / "bot-v1"))
    assert again.returncode == 0, again.stderr
    assert "verified: " in again.stdout and "(0 downloaded)" in again.stdout


def test_pull_a_base_into_a_given_directory(run, api_pushed, zoo, tmp_path):
    base, _adapter = api_pushed
    result = run("pull", "--base", base["id"], str(tmp_path / "llama"))
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path / "llama") == _tree(zoo.llama)


def test_pull_resumes_a_part_file_with_a_range(run, api_pushed, zoo, tmp_path):
    weights = (zoo.adapters["attention"] / "adapter_model.safetensors").read_bytes()
    target = tmp_path / "out"
    target.mkdir()
    # A first pull interrupted half-way through the weights. That the rest is fetched with a
    # Range, not the whole file again, the next test shows: a wrong head is kept and fails.
    (target / "adapter_model.safetensors.part").write_bytes(weights[: len(weights) // 2])
    result = run("--json", "pull", "acme/bot:v1", str(target))
    assert result.returncode == 0, result.stderr
    assert (target / "adapter_model.safetensors").read_bytes() == weights
    assert not list(target.glob("*.part"))


def test_a_resumed_part_with_wrong_bytes_is_refused_and_removed(run, api_pushed, zoo, tmp_path):
    weights = (zoo.adapters["attention"] / "adapter_model.safetensors").read_bytes()
    target = tmp_path / "out"
    target.mkdir()
    # Resumed (206 from the byte after it), so the stale head makes the whole file hash wrong.
    (target / "adapter_model.safetensors.part").write_bytes(b"\x00" * (len(weights) // 2))
    result = run("pull", "acme/bot:v1", str(target))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "sha256 mismatch" in result.stderr
    assert not (target / "adapter_model.safetensors").exists()
    assert not (target / "adapter_model.safetensors.part").exists()


def test_an_altered_blob_fails_the_pull_and_writes_nothing_under_final_names(run, api_pushed, tmp_path):
    _base, adapter = api_pushed
    weights = next(f for f in adapter["files"] if f["path"] == "adapter_model.safetensors")
    stored = Path(settings.BLOB_ROOT) / blob_name(weights["sha256"])
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF  # one bit-flipped byte, same size
    stored.write_bytes(bytes(data))

    result = run("--json", "pull", "acme/bot:v1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "sha256 mismatch for adapter_model.safetensors" in result.stderr
    assert result.stdout == ""
    # Neither the bad file nor any good one appears under its final name.
    names = {p.name for p in (tmp_path / "bot-v1").rglob("*")} if (tmp_path / "bot-v1").exists() else set()
    assert not {f["path"] for f in adapter["files"]} & names
    assert "adapter_model.safetensors.part" not in names


def test_pull_of_an_unknown_version_is_one_line(run, api_pushed, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = run("pull", "acme/bot:v7", cwd=work)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "not_found" in result.stderr
    assert not list(work.iterdir())
