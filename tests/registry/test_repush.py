"""Pushing the same files again is not an error: the API answers 200 with the existing version
and adapterctl says "already registered as ns/name:vN" (exit 0)."""

import json

from registry.models import AdapterVersion
from tests.registry.test_cli import run  # noqa: F401 (the live-server CLI fixture)


def test_the_cli_says_the_files_are_already_registered(run, zoo):  # noqa: F811
    base_ref = json.loads(run("--json", "push-base", str(zoo.llama), "--name", "acme/llama").stdout)["ref"]
    push = ("push", str(zoo.adapters["attention"]), "--name", "acme/bot", "--base", base_ref)

    first = run(*push)
    assert first.returncode == 0 and "already registered" not in first.stdout, first.stderr
    again = run(*push)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == "already registered as acme/bot:v1"
    as_json = run("--json", *push)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["ref"] == "acme/bot:v1"  # stdout stays JSON
    assert "already registered as acme/bot:v1" in as_json.stderr
    assert AdapterVersion.objects.count() == 1
