"""`adapterctl residency apply` end to end: a live registry, adapters made by peft and pulled verified,
and local HTTP servers answering as vLLM and SGLang do (tests/residency_plans/engines.py)."""

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from registry.models import ServingWorker, TelemetryWindow
from registry.residency.actions import adapter_path
from registry.services.residency import residency_replan
from tests.promotions.conftest import ready  # noqa: F401  (acme/bot v1..v3 on acme/llama:v1, real files)
from tests.residency_plans.conftest import alias, serving_worker
from tests.residency_plans.engines import VLLM, EngineServer, SGLang
from tests.workers.conftest import purge_queues


@pytest.fixture
def adapterctl(live_server, alice, alice_client):
    token = Token.objects.get_or_create(user=alice)[0].key  # alice_client made it (one per user)
    env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}

    def run(*args) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "registry.cli", "residency", "apply", *map(str, args)]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)

    yield run
    purge_queues()  # the alias moves queued residency.replan messages that no worker took


@pytest.fixture
def served(ready):  # noqa: F811
    """v1 production (hottest), v2 staging, v3 a 20% canary of production; two workers on the base,
    each with one GPU slot, one host slot and room on disk: every version lands in one tier."""
    v1, v2, v3 = ready
    alias(v1, "production", canary=v3, weight=20)
    alias(v2, "staging")
    for version, requests in ((v1, 900), (v2, 300)):
        end = timezone.now() - timedelta(minutes=1)
        TelemetryWindow.objects.create(
            worker=None or _worker_for_telemetry(v1), adapter_version=version,
            window_start=end - timedelta(minutes=5), window_end=end, requests=requests,
        )  # fmt: skip
    return ready


def _worker_for_telemetry(version) -> ServingWorker:
    worker = ServingWorker.objects.filter(name="edge-vllm").first()
    return worker or serving_worker("edge-vllm", [version.base_version], gpu_slots=1, host_slots=1, disk_bytes=10**9)


def plan_for(name: str) -> dict:
    state = ServingWorker.objects.get(name=name).desired_states.order_by("-plan_id").first()
    return state.desired


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def one_line(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_it_pulls_verified_loads_vllm_and_a_second_run_does_nothing(adapterctl, served, tmp_path):
    residency_replan(trigger="manual")
    desired = plan_for("edge-vllm")
    assert [len(desired[t]) for t in ("gpu", "host", "disk")] == [1, 1, 1]
    directory = tmp_path / "adapters"
    with EngineServer(VLLM()) as engine:
        out = ok(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory))
        lines = out.splitlines()
        assert [line.split()[0] for line in lines] == ["pull", "pull", "pull", "load", "load", "edge-vllm:"]
        assert "pulled 3, loaded 2, unloaded 0, 0 already held; expected GPU hit rate" in lines[-1]
        gpu, host, disk = (desired[t][0]["ref"] for t in ("gpu", "host", "disk"))
        assert engine.engine.mutating_calls() == [
            ("POST", "/v1/load_lora_adapter", {"lora_name": gpu, "lora_path": str(directory.resolve() / adapter_path(gpu))}),
            ("POST", "/v1/load_lora_adapter", {"lora_name": host, "lora_path": str(directory.resolve() / adapter_path(host))}),
        ]  # fmt: skip
        for ref in (gpu, host, disk):  # every planned adapter is on disk, the prefetch too, and verified
            assert (directory / adapter_path(ref) / "adapter_config.json").is_file()
            assert not list((directory / adapter_path(ref)).glob("*.part"))
        assert disk not in engine.engine.loras

        before = len(engine.engine.calls)
        again = ok(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory))
        assert again.splitlines() == [again.strip()] and "pulled 0, loaded 0, unloaded 0, 2 already held" in again
        assert "nothing to do" in again
        assert engine.engine.calls[before:] == [("GET", "/v1/models", None)]  # it only looked


def test_a_changed_plan_unloads_first_then_loads_and_a_tampered_file_is_pulled_again(adapterctl, served, tmp_path):
    v1, v2, v3 = served
    residency_replan(trigger="manual")
    directory = tmp_path / "adapters"
    with EngineServer(VLLM()) as engine:
        ok(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory))
        held_before = set(engine.engine.loras)
        # The canary turns out to be what everyone wants: it is hot now, v2 goes cold.
        end = timezone.now()
        TelemetryWindow.objects.create(
            worker=ServingWorker.objects.get(name="edge-vllm"), adapter_version=v3,
            window_start=end - timedelta(minutes=1), window_end=end, requests=50_000,
        )  # fmt: skip
        residency_replan(trigger="telemetry")
        now_held = {e["ref"] for t in ("gpu", "host") for e in plan_for("edge-vllm")[t]}
        assert now_held != held_before and v3.digest_ref in now_held
        target = directory / adapter_path(v3.digest_ref) / "adapter_config.json"
        target.write_text(target.read_text() + " ")  # tampered with since it was verified
        engine.engine.calls.clear()
        out = ok(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory))
        ops = [call[1] for call in engine.engine.mutating_calls()]
        assert ops == ["/v1/unload_lora_adapter", "/v1/load_lora_adapter"] and set(engine.engine.loras) == now_held
        assert f"pull    {v3.digest_ref}" in out  # re-verified: the changed file was fetched again
        assert json.loads(target.read_text()) is not None and not target.read_text().endswith(" ")


def test_sglang_loads_with_the_plans_pinning_and_remembers_what_it_loaded(adapterctl, served, tmp_path):
    v1 = served[0]
    serving_worker("edge-sglang", [v1.base_version], engine="sglang", gpu_slots=1, host_slots=1, disk_bytes=10**9)
    residency_replan(trigger="manual")
    desired = plan_for("edge-sglang")
    directory = tmp_path / "adapters"
    with EngineServer(SGLang()) as engine:
        out = ok(adapterctl("--worker", "edge-sglang", "--engine-url", engine.url, "--dir", directory, "--json"))
        report = json.loads(out)
        gpu, host = desired["gpu"][0], desired["host"][0]
        assert [(a["op"], a["ref"], a["body"]["pinned"]) for a in report["actions"]] == [
            ("load", gpu["ref"], gpu.get("pinned", True)),
            ("load", host["ref"], False),
        ]
        assert {n: e["pinned"] for n, e in engine.engine.loras.items()} == {
            gpu["ref"]: gpu.get("pinned", True), host["ref"]: False,
        }  # fmt: skip
        state = json.loads((directory / ".adapterctl-residency.json").read_text())
        assert set(state["engines"][engine.url]) == {gpu["ref"], host["ref"]}
        engine.engine.calls.clear()
        again = json.loads(
            ok(adapterctl("--worker", "edge-sglang", "--engine-url", engine.url, "--dir", directory, "--json"))
        )
        assert again["actions"] == [] and again["pulled"] == [] and engine.engine.calls == []

    with EngineServer(SGLang()) as restarted:  # a new engine at another address holds nothing yet
        out = ok(adapterctl("--worker", "edge-sglang", "--engine-url", restarted.url, "--dir", directory))
        assert "pulled 0, loaded 2" in out and len(restarted.engine.loras) == 2


def test_dry_run_changes_nothing(adapterctl, served, tmp_path):
    residency_replan(trigger="manual")
    directory = tmp_path / "adapters"
    with EngineServer(VLLM()) as engine:
        out = ok(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory, "--dry-run"))
        assert out.count("(would)") == 5 and "would pull 3, would load 2" in out  # 3 pulls, 2 loads
        assert engine.engine.mutating_calls() == [] and not directory.exists()


def test_failures_are_one_line_and_exit_1(adapterctl, served, tmp_path):
    v1 = served[0]
    directory = tmp_path / "adapters"
    with EngineServer(VLLM()) as engine:
        no_plan = one_line(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory))
        assert "residency_plan_not_found" in no_plan
        residency_replan(trigger="manual")
        unknown = one_line(adapterctl("--worker", "nobody", "--engine-url", engine.url))
        assert "serving_worker_not_found" in unknown

        engine.engine.fail_loads_with = VLLM._error(400, "LoRA rank 64 is greater than max_lora_rank 16.", "BadRequest")
        refused = one_line(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory))
        assert "refused load" in refused and "HTTP 400: LoRA rank 64 is greater than max_lora_rank 16." in refused

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    gone = one_line(adapterctl("--worker", "edge-vllm", "--engine-url", closed, "--dir", directory))
    assert f"cannot reach the engine at {closed}" in gone

    serving_worker("edge-other", [v1.base_version], engine="other", gpu_slots=1)
    residency_replan(trigger="manual")
    other = one_line(adapterctl("--worker", "edge-other", "--engine-url", closed, "--dir", directory))
    assert "registered with engine 'other'" in other and "--engine vllm" in other

    (directory / ".adapterctl-residency.json").write_text("{not json")
    with EngineServer(VLLM()) as engine:
        broken = one_line(adapterctl("--worker", "edge-vllm", "--engine-url", engine.url, "--dir", directory))
        assert "delete it and run again" in broken


def test_the_state_file_is_never_a_half_written_file(tmp_path):
    from registry.cli_residency import STATE_FILE, _write_state

    directory = tmp_path / "adapters"
    _write_state(directory, {"version": 1, "verified": {}, "engines": {}})
    assert [p.name for p in Path(directory).iterdir()] == [STATE_FILE]
