"""adapterctl against a live server: real HTTP, real processes, real exit codes."""

import json
import os
import subprocess
import sys

import pytest
from rest_framework.authtoken.models import Token


@pytest.fixture
def run(live_server, alice):
    token = Token.objects.create(user=alice).key

    def run_cli(*args, token=token):
        env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, env=env, timeout=120
        )

    return run_cli


def test_push_base_push_adapter_show_and_ls(run, zoo, tmp_path):
    base = run("--json", "push-base", str(zoo.llama), "--name", "acme/llama")
    assert base.returncode == 0, base.stderr
    base_ref = json.loads(base.stdout)["ref"]

    provenance = tmp_path / "provenance.json"
    provenance.write_text(json.dumps({"dataset_name": "tickets", "code_commit": "abc123", "params": {"lr": 0.001}}))
    pushed = run(
        "--json",
        "push",
        str(zoo.adapters["attention"]),
        "--name",
        "acme/bot",
        "--base",
        base_ref,
        "--provenance",
        str(provenance),
    )
    assert pushed.returncode == 0, pushed.stderr
    adapter = json.loads(pushed.stdout)
    assert adapter["ref"] == "acme/bot:v1" and adapter["provenance"]["dataset_name"] == "tickets"

    child = run(
        "push", str(zoo.child_adapter), "--name", "acme/bot-child", "--base", base_ref, "--parent", "acme/bot:v1"
    )
    assert child.returncode == 0, child.stderr
    assert "acme/bot-child:v1" in child.stdout and "parent:  acme/bot:v1" in child.stdout

    shown = run("show", f"acme/bot@sha256:{adapter['digest']}")
    assert shown.returncode == 0 and "acme/bot:v1" in shown.stdout
    shown_base = run("--json", "show", base_ref)
    assert json.loads(shown_base.stdout)["architecture"] == "LlamaForCausalLM"

    listed = run("--json", "ls", "--base", base_ref)
    assert {row["ref"] for row in json.loads(listed.stdout)} == {"acme/bot:v1", "acme/bot-child:v1"}
    assert "acme/llama:v1" in run("ls", "--bases").stdout


def test_failures_exit_non_zero_with_one_line(run, zoo, tmp_path):
    missing_base = run("push", str(zoo.adapters["attention"]), "--name", "acme/bot", "--base", "acme/nope:v1")
    assert missing_base.returncode == 1
    assert missing_base.stderr.count("\n") == 1 and "base_not_found" in missing_base.stderr

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")
    pickled = run("push", str(tmp_path / "weights"), "--name", "acme/bot", "--base", "acme/nope:v1")
    assert pickled.returncode == 1 and pickled.stderr.count("\n") == 1

    bad_token = run("ls", token="wrong")
    assert bad_token.returncode == 1 and "authentication_failed" in bad_token.stderr

    unknown = run("show", "acme/ghost:v1")
    assert unknown.returncode == 1 and "not_found" in unknown.stderr


def test_it_refuses_symlinks_before_uploading(run, zoo, tmp_path):
    directory = zoo.copy("adapter-attention", tmp_path / "adapter")
    (directory / "README.md").unlink()
    (directory / "README.md").symlink_to("/etc/passwd")
    result = run("push", str(directory), "--name", "acme/bot", "--base", "acme/llama:v1")
    assert result.returncode == 1
    assert "symbolic link" in result.stderr and result.stderr.count("\n") == 1


def test_it_says_where_it_could_not_connect(zoo):
    env = {**os.environ, "ADAPTER_REGISTRY_URL": "http://127.0.0.1:9", "ADAPTER_REGISTRY_TOKEN": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "registry.cli", "ls"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1 and "cannot reach the registry at http://127.0.0.1:9" in result.stderr
