"""Latency of one small LoRA push over HTTP, side by side with MLflow's log + register.

Each registry push is a real `POST /api/v1/adapters/` to gunicorn (1 sync worker) with a
peft-made LoRA (adapter_config.json, adapter_model.safetensors, README.md): full validation,
the static check against the base, the compatibility job enqueued. Every push has new bytes
(fresh random weights under the same header) and a new adapter name, as one adapter per
customer would. Interleaved with the pushes, in the same run, MLflow logs the same three files
as a run's artifacts and registers them as a model version (sqlite tracking store and a local
artifact root, MLflow's own single-machine set-up).

Target (issue 13): push p50 <= 25 ms.
Run: CELERY_BROKER_URL=redis://127.0.0.1:6379/<db> .venv/bin/python benchmarks/push_latency.py [--pushes 60]
`--baseline-tree DIR` also starts the registry of another checkout (its own database) and pushes
the same adapters to it, interleaved, for a before/after on the same load; each registry's server
CPU per push (gunicorn + its PostgreSQL) is printed too, a figure other processes do not inflate.
`--profile` instead pushes in-process through Django's test client and prints the SQL statements of
one push, the unprofiled p50 of 40 more, and a cProfile (PROFILE_SORT=tottime|cumulative, PROFILE_FILTER=<regex>), no HTTP.
"""

import argparse
import contextlib
import json
import logging
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import OUT, engineer_token, free_port, machine_description, setup_django, start_server

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "README.md")
README = "---\nlicense: apache-2.0\nlibrary_name: peft\n---\n# A support persona\n\nA small LoRA.\n"


def base_and_adapter() -> tuple[Path, Path]:
    """A Llama-style base (8 layers) and a peft LoRA on it (r=8, q/k/v/o), built once and kept."""
    from registry.demo.build import build_llama_base, build_lora_adapter

    base_dir, adapter_dir = OUT / "push-base", OUT / "push-adapter"
    if not (base_dir / "config.json").exists():
        build_llama_base(base_dir, hidden_size=128, num_layers=8, vocab_size=256)
    if not (adapter_dir / "adapter_model.safetensors").exists():
        build_lora_adapter(base_dir, adapter_dir, r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        (adapter_dir / "README.md").write_text(README)
    return base_dir, adapter_dir


def fresh_weights(template: bytes) -> bytes:
    """The same safetensors header with new random tensor bytes: new content, same shapes."""
    (header_length,) = struct.unpack("<Q", template[:8])
    head = template[: 8 + header_length]
    return head + os.urandom(len(template) - len(head))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "min_ms": round(min(ms), 1),
        "n": len(ms),
    }


class MlflowRegistry:
    """MLflow's log + register of the same files: one run, its artifacts, one model version."""

    def __init__(self, root: Path):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here, and not what is timed
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        self.client = mlflow.MlflowClient()
        self.experiment = mlflow.create_experiment(f"push-{uuid.uuid4().hex[:8]}", artifact_location=str(root / "art"))

    def push(self, directory: Path, name: str) -> None:
        # MLflow 3's register_model wants a logged model; the registry client registers any
        # run's artifacts, which is what a PEFT directory logged as artifacts is.
        with self.mlflow.start_run(experiment_id=self.experiment) as run:
            self.mlflow.log_artifacts(str(directory), artifact_path="adapter")
        self.client.create_registered_model(name)
        self.client.create_model_version(name, source=f"{run.info.artifact_uri}/adapter", run_id=run.info.run_id)


def write_variant(source: Path, target: Path, template: bytes) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        data = fresh_weights(template) if name == "adapter_model.safetensors" else (source / name).read_bytes()
        (target / name).write_bytes(data)


def registry_push(client, url: str, token: str, directory: Path, name: str, base_ref: str) -> float:
    files = [("file", (p, (directory / p).read_bytes(), "application/octet-stream")) for p in ADAPTER_FILES]
    started = time.perf_counter()
    response = client.post(
        f"{url}/api/v1/adapters/",
        data={"name": name, "base": base_ref},
        files=files,
        headers={"Authorization": f"Token {token}"},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 201 or response.json()["status"] != "checking":
        raise SystemExit(f"push failed: {response.status_code} {response.text[:500]}")
    return elapsed


# Run inside another checkout: its own embedded database, this run's base registered there.
PREPARE_BASELINE = """
import json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from _common import engineer_token, setup_django
setup_django("push")
from registry.services.ingest import base_model_version_ingest
from registry.uploads import incoming_from_directory
with incoming_from_directory(Path(sys.argv[1])) as files:
    base = base_model_version_ingest(name="bench/push-base", files=files, user=None).version
print(json.dumps({"base": base.ref, "token": engineer_token()}))
"""


def server_cpu_seconds(server: subprocess.Popen, var_dir: Path) -> float:
    """CPU time spent so far by a registry's gunicorn and its embedded PostgreSQL (every backend,
    the WAL writer and checkpointer, and exited children): the work of its pushes, which unlike
    wall time does not grow when other processes crowd a shared machine."""
    import psutil

    processes = [psutil.Process(server.pid)]
    postmaster = var_dir / "pgdata" / "postmaster.pid"
    if postmaster.exists():
        processes.append(psutil.Process(int(postmaster.read_text().split()[0])))
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(child.cpu_times()[:2])
    return total


def start_baseline(tree: Path, base_dir: Path) -> tuple[subprocess.Popen, str, str, str]:
    """gunicorn serving another checkout (e.g. the commit before a change), set up like ours."""
    import httpx

    env = {**os.environ, "ADAPTER_REGISTRY_VAR_DIR": str(tree / "benchmarks" / "out" / "var-push")}
    prepared = subprocess.run(
        [sys.executable, "-c", PREPARE_BASELINE, str(base_dir)], cwd=tree, env=env, capture_output=True, text=True
    )
    if prepared.returncode != 0:
        raise SystemExit(f"the baseline checkout could not be prepared: {prepared.stderr[-2000:]}")
    info = json.loads(prepared.stdout.strip().splitlines()[-1])
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.conf.py"]
    options = ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "1", "--log-level", "warning"]
    server = subprocess.Popen(command + options, cwd=tree, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code in (200, 503):
                return server, url, info["token"], info["base"]
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the baseline server did not start")


def run_http(args, base_ref: str, base_dir: Path, adapter_dir: Path) -> dict:
    """Pushes to this checkout's server (and the baseline's, when given) and MLflow, interleaved,
    so that all of them see the same load on a shared machine."""
    import httpx

    token = engineer_token()
    template = (adapter_dir / "adapter_model.safetensors").read_bytes()
    servers = [start_server()]
    targets = [("registry_push", servers[0][1], token, base_ref)]
    var_dirs = {"registry_push": OUT / "var-push"}
    work = Path(tempfile.mkdtemp(prefix="push-", dir=OUT))
    stamp = uuid.uuid4().hex[:6]
    timings: dict[str, list[float]] = {"registry_push": [], "mlflow_log_and_register": []}
    try:
        if args.baseline_tree:
            server, url, baseline_token, baseline_base = start_baseline(Path(args.baseline_tree), base_dir)
            servers.append((server, url))
            targets.append(("baseline_push", url, baseline_token, baseline_base))
            var_dirs["baseline_push"] = Path(args.baseline_tree) / "benchmarks" / "out" / "var-push"
            timings["baseline_push"] = []
        mlflow_registry = MlflowRegistry(work)
        with httpx.Client(timeout=60) as client:
            for i in range(args.warmup + args.pushes):
                variant = work / f"adapter-{i}"
                write_variant(adapter_dir, variant, template)
                measured = {}
                if i == args.warmup:
                    cpu_before = {
                        label: server_cpu_seconds(servers[n][0], var_dirs[label])
                        for n, (label, *_) in enumerate(targets)
                    }
                for label, url, key, base in targets[:: 1 if i % 2 else -1]:  # alternate who goes first
                    measured[label] = registry_push(client, url, key, variant, f"bench/push-{stamp}-{i}", base)
                started = time.perf_counter()
                mlflow_registry.push(variant, f"push-{stamp}-{i}")
                measured["mlflow_log_and_register"] = time.perf_counter() - started
                if i >= args.warmup:
                    for label, seconds in measured.items():
                        timings[label].append(seconds)
        cpu = {
            label: (server_cpu_seconds(servers[n][0], var_dirs[label]) - cpu_before[label]) / args.pushes
            for n, (label, *_) in enumerate(targets)
        }
    finally:
        for server, _url in servers:
            server.terminate()
            server.wait()
    result = {label: summary(seconds) for label, seconds in timings.items()}
    for label, seconds in cpu.items():
        result[label]["server_cpu_ms_per_push"] = round(seconds * 1000, 1)
    return result


def run_profile(base_ref: str, adapter_dir: Path) -> None:
    """One push in-process, with its SQL statements and a cProfile of a further 20."""
    import cProfile
    import pstats

    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.get(username="bench-engineer"))
    template = (adapter_dir / "adapter_model.safetensors").read_bytes()
    work = Path(tempfile.mkdtemp(prefix="push-profile-", dir=OUT))
    stamp = uuid.uuid4().hex[:6]

    def push(i: int):
        variant = work / f"adapter-{i}"
        write_variant(adapter_dir, variant, template)
        files = [(p, open(variant / p, "rb")) for p in ADAPTER_FILES]
        body = {"name": f"bench/profile-{stamp}-{i}", "base": base_ref, "file": [f for _, f in files]}
        response = client.post("/api/v1/adapters/", body)
        assert response.status_code == 201, response.content[:500]

    push(0)
    with CaptureQueriesContext(connection) as queries:
        push(1)
    print(f"{len(queries)} SQL statements in one push:")
    for query in queries.captured_queries:
        print(f"  {query['time']}s  {query['sql'][:160]}")
    plain = []
    for i in range(2, 42):  # unprofiled first: cProfile itself slows a push by about half
        started = time.perf_counter()
        push(i)
        plain.append(time.perf_counter() - started)
    print(f"in-process push, unprofiled: p50 {statistics.median(plain) * 1000:.1f} ms over {len(plain)}")
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(42, 62):
        push(i)
    profiler.disable()
    print(f"in-process push: {(time.perf_counter() - started) / 20 * 1000:.1f} ms on average over 20 (profiled)")
    stats = pstats.Stats(profiler).sort_stats(os.environ.get("PROFILE_SORT", "cumulative"))
    stats.print_stats(os.environ.get("PROFILE_FILTER", ""), 60)


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--baseline-tree",
        help="another checkout (e.g. `git archive <commit> | tar -x -C DIR`) pushed to in the same run, interleaved",
    )
    args = parser.parse_args()
    setup_django("push")
    from registry.services.ingest import base_model_version_ingest
    from registry.uploads import incoming_from_directory

    base_dir, adapter_dir = base_and_adapter()
    with incoming_from_directory(base_dir) as files:
        base = base_model_version_ingest(name="bench/push-base", files=files, user=None).version
    engineer_token()
    if args.profile:
        run_profile(base.ref, adapter_dir)
        return
    result = {
        "machine": machine_description(),
        "broker": os.environ.get("CELERY_BROKER_URL", "filesystem (embedded default)").split("@")[-1],
        "baseline_tree": args.baseline_tree,
        **run_http(args, base.ref, base_dir, adapter_dir),
    }
    result["target_met"] = result["registry_push"]["p50_ms"] <= 25
    print(json.dumps(result, indent=2))
    (OUT / "push_latency.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
