"""adapterctl push-many against a live server: real HTTP, real processes, real exit codes."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.models import Adapter, AdapterVersion
from tests.helpers import directory_files, upload
from tests.registry.test_bulk_register import fresh_weights


@pytest.fixture
def run(live_server, alice):
    token = Token.objects.get_or_create(user=alice)[0].key

    def run_cli(*args):
        env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, env=env, timeout=120
        )

    return run_cli


@pytest.fixture
def llama(alice, zoo):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=alice)[0].key}")
    assert upload(client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).status_code == 201
    return "acme/llama:v1"


def adapter_dir(zoo, destination):
    """A real peft adapter with its own weights (same shapes), as a directory."""
    destination.mkdir(parents=True)
    for path, data in fresh_weights(directory_files(zoo.adapters["attention"])):
        (destination / path).write_bytes(data)
    return destination


def test_it_pushes_a_directory_of_adapters_and_reports_the_refused_one(run, zoo, llama, tmp_path):
    for name in ("alpha", "beta"):
        adapter_dir(zoo, tmp_path / "adapters" / name)
    pickled = tmp_path / "adapters" / "gamma"
    pickled.mkdir()
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")

    adapters = str(tmp_path / "adapters")
    pushed = run("push-many", adapters, "--base", llama, "--namespace", "acme", "--batch-size", "1", "--parallel", "2")

    assert pushed.returncode == 1
    assert pushed.stdout.splitlines()[:2] == ["created   acme/alpha:v1  checking", "created   acme/beta:v1  checking"]
    assert pushed.stdout.splitlines()[2].startswith("refused   acme/gamma  pickle_refused: ")
    assert pushed.stderr == "adapterctl: 1 of 3 adapters refused (2 created, 0 already registered, 1 refused)\n"
    assert set(Adapter.objects.values_list("name", flat=True)) == {"alpha", "beta"}

    shutil.rmtree(pickled)
    again = run("push-many", adapters, "--base", llama, "--namespace", "acme")
    assert again.returncode == 0, again.stderr
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["existing", "existing"]


def test_it_pushes_a_manifest_in_batches_with_lineage_and_provenance(run, zoo, llama, tmp_path):
    adapter_dir(zoo, tmp_path / "one")
    adapter_dir(zoo, tmp_path / "two")
    manifest = tmp_path / "adapters.jsonl"
    lines = [
        {"dir": "one", "name": "acme/one", "base": llama, "provenance": {"dataset_name": "tickets"}},
        {"dir": "two", "name": "acme/two", "base": llama, "parent": "acme/one:v1"},
    ]
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")

    pushed = run("--json", "push-many", str(manifest), "--batch-size", "1")

    assert pushed.returncode == 0, pushed.stderr
    results = [json.loads(line) for line in pushed.stdout.splitlines()]
    assert [(r["status"], r["ref"], r["dir"]) for r in results] == [
        ("created", "acme/one:v1", str(tmp_path / "one")),
        ("created", "acme/two:v1", str(tmp_path / "two")),
    ]
    two = AdapterVersion.objects.select_related("parent").get(id=results[1]["id"])
    assert two.parent.ref == "acme/one:v1" and AdapterVersion.objects.get(id=results[0]["id"]).dataset_name == "tickets"


BAD_LINES = [
    ("{not json", "not a JSON object"),
    ('{"dir": "one", "name": "acme/x"}', "'base' is required"),
    ('{"dir": "missing", "name": "acme/x", "base": "acme/llama:v1"}', "is not a directory"),
    ('{"dir": "one", "name": "acme/x", "base": "acme/llama:v1", "colour": "red"}', "unknown key 'colour'"),
]


def test_a_bad_manifest_line_is_named_before_anything_is_sent(run, zoo, tmp_path):
    adapter_dir(zoo, tmp_path / "one")
    manifest = tmp_path / "adapters.jsonl"
    good = json.dumps({"dir": "one", "name": "acme/one", "base": "acme/llama:v1"})
    for line, says in BAD_LINES:
        manifest.write_text(f"{good}\n{line}\n")

        pushed = run("push-many", str(manifest))

        assert pushed.returncode == 1 and pushed.stdout == ""
        assert pushed.stderr.count("\n") == 1 and "adapters.jsonl:2: " in pushed.stderr and says in pushed.stderr
    assert not Adapter.objects.exists()


def test_batches_stay_within_the_servers_limits(tmp_path):
    from registry.cli_bulk import Item, batches

    items = []
    for i in range(90):
        directory = tmp_path / f"a{i}"
        directory.mkdir()
        for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
            (directory / name).write_bytes(b"x" * 10)
        items.append(
            Item(i, directory, f"acme/a{i}", "acme/llama:v1", files=sorted((p.name, p) for p in directory.iterdir()))
        )

    assert [len(batch) for batch in batches(items, 200, 10**9)] == [85, 5]  # 256 file parts at most
    assert [len(batch) for batch in batches(items, 40, 10**9)] == [40, 40, 10]
    assert [len(batch) for batch in batches(items, 200, 300)] == [10] * 9  # 30 bytes an adapter


def test_a_batch_naming_a_parent_in_flight_waits_for_it_and_the_others_go_together(tmp_path):
    from registry.cli_bulk import Item, waves

    def item(name, parent=""):
        return Item(1, tmp_path, name, "acme/llama:v1", parent=parent)

    first, second = [item("acme/a"), item("acme/b")], [item("acme/c")]
    child = [item("acme/d", parent="acme/a:v1")]
    grandchild = [item("acme/e", parent="acme/d@sha256:" + "0" * 64)]
    unrelated = [item("acme/f", parent="acme/old:v2")]  # a parent registered before: no wait
    assert waves([first, second, child, unrelated, grandchild]) == [[first, second], [child, unrelated], [grandchild]]
    assert waves([first]) == [[first]]
