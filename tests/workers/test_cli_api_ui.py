"""CI's path with a real worker: adapterctl push, suite push/attach, wait; then what the
API, the UI and /metrics say about the pool."""

import json
import os
import subprocess
import sys

import numpy as np
from rest_framework.authtoken.models import Token
from safetensors.numpy import load_file, save_file

from registry.demo import build
from registry.models import Worker


def cli(live_server, token, *args, timeout=240):
    env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_push_wait_and_inspect_the_pool(pool, live_server, alice, zoo, tmp_path, client):
    worker = pool.start("w1")
    token = Token.objects.create(user=alice).key
    assert cli(live_server, token, "push-base", str(zoo.llama), "--name", "acme/llama").returncode == 0
    first = cli(
        live_server, token, "push", str(zoo.adapters["attention"]), "--name", "acme/bot", "--base", "acme/llama:v1"
    )
    assert first.returncode == 0, first.stderr

    suite = tmp_path / "corpus.jsonl"
    suite.write_text(
        "".join(json.dumps({"text": line}) + "\n" for line in (build.DEMO_DIR / "corpus.txt").read_text().splitlines())
    )
    pushed_suite = cli(
        live_server, token, "suite", "push", str(suite), "--name", "acme/corpus", "--task-type", "causal_lm"
    )
    assert pushed_suite.returncode == 0 and "acme/corpus:v1" in pushed_suite.stdout
    assert cli(live_server, token, "suite", "attach", "acme/corpus", "--adapter", "acme/bot").returncode == 0
    assert cli(live_server, token, "wait", "acme/bot:v1").returncode == 0

    assert (
        cli(
            live_server, token, "push", str(zoo.child_adapter), "--name", "acme/bot", "--base", "acme/llama:v1"
        ).returncode
        == 0
    )
    waited = cli(live_server, token, "wait", "acme/bot:v2")
    assert waited.returncode == 0, waited.stderr
    assert "check dynamic: pass" in waited.stdout
    assert "eval acme/corpus:v1 reference: acme/bot:v1 (newest earlier ready version)" in waited.stdout
    assert "eval acme/corpus:v1 Loss (lower is better) " in waited.stdout and "(base " in waited.stdout

    broken = zoo.copy("adapter-attention", tmp_path / "nan")
    weights = load_file(str(broken / "adapter_model.safetensors"))
    save_file(
        {k: np.full_like(v, np.inf) if "lora_A" in k else v for k, v in weights.items()},
        str(broken / "adapter_model.safetensors"),
    )
    assert (
        cli(live_server, token, "push", str(broken), "--name", "acme/broken", "--base", "acme/llama:v1").returncode == 0
    )
    rejected = cli(live_server, token, "wait", "acme/broken:v1")
    assert rejected.returncode == 1
    assert rejected.stderr.strip().splitlines()[-1].startswith("adapterctl: rejected: dynamic check:")

    listed = json.loads(cli(live_server, token, "--json", "workers").stdout)
    assert listed[0]["hostname"] == worker and listed[0]["resident"]["bases"][0]["ref"] == "acme/llama:v1"

    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    page = client.get("/workers/").content.decode()
    assert worker in page and "acme/llama:v1" in page
    fragment = client.get("/adapters/acme/bot/v2/", headers={"HX-Request": "true"})
    assert fragment.status_code == 286  # nothing pending: htmx stops polling
    assert "Δ base" in fragment.content.decode() and "acme/bot:v1" in fragment.content.decode()
    metrics = client.get("/metrics").content.decode()
    assert f'registry_worker_up{{device="cpu",worker="{worker}"}} 1.0' in metrics
    assert 'registry_jobs{kind="evaluation",state="succeeded"} 1.0' in metrics
    assert f'registry_resident_cache_hits_total{{worker="{worker}"}}' in metrics
    assert Worker.objects.get(hostname=worker).resident["stats"]["hits"] >= 3
