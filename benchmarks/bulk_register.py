"""Bulk registration: N small LoRA adapters through `adapterctl push-many` to a running server.

One real peft LoRA is built on a tiny Llama-style base (2 layers, hidden 32, r=4 on q/v); the N
adapters are that adapter's files with fresh random tensor bytes under the same safetensors
header (running peft N times would take longer than the push). Each adapter directory holds
adapter_config.json and adapter_model.safetensors. They are pushed as a directory of adapters
(`adapterctl push-many DIR --base REF --namespace NS`) to gunicorn, with full validation, the
static check against the base, audit events and one compatibility job enqueued per version.

Target (issue 13): 100,000 small adapters in under 10 minutes, i.e. >= 170 versions/s.
Run: CELERY_BROKER_URL=redis://127.0.0.1:6379/<db> .venv/bin/python benchmarks/bulk_register.py [--count 10000]
`--profile` instead sends one batch in-process through Django's test client under cProfile.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import OUT, ROOT, engineer_token, machine_description, setup_django, start_server

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def base_and_adapter() -> tuple[Path, Path]:
    """The base and the one peft-made adapter every generated adapter is a variant of (kept between runs)."""
    from registry.demo.build import build_llama_base, build_lora_adapter

    base_dir, adapter_dir = OUT / "bulk-base", OUT / "bulk-adapter"
    if not (base_dir / "config.json").exists():
        build_llama_base(base_dir, hidden_size=32, num_layers=2, vocab_size=128)
    if not (adapter_dir / "adapter_model.safetensors").exists():
        build_lora_adapter(base_dir, adapter_dir, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    return base_dir, adapter_dir


def generate(adapter_dir: Path, target: Path, count: int) -> None:
    """`count` adapter directories: the same config, new random weights under the same header."""
    config = (adapter_dir / "adapter_config.json").read_bytes()
    template = (adapter_dir / "adapter_model.safetensors").read_bytes()
    (header_length,) = struct.unpack("<Q", template[:8])
    head = template[: 8 + header_length]
    for i in range(count):
        variant = target / f"a{i:06d}"
        variant.mkdir(parents=True)
        (variant / "adapter_config.json").write_bytes(config)
        (variant / "adapter_model.safetensors").write_bytes(head + os.urandom(len(template) - len(head)))


def run_http(args, base_ref: str, adapters: Path) -> dict:
    server, url = start_server(workers=args.workers)
    namespace = f"bulk-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "ADAPTER_REGISTRY_URL": url, "ADAPTER_REGISTRY_TOKEN": engineer_token()}
    command = [
        sys.executable,
        "-m",
        "registry.cli",
        "--json",
        "push-many",
        str(adapters),
        "--base",
        base_ref,
        "--namespace",
        namespace,
        "--batch-size",
        str(args.batch_size),
        "--parallel",
        str(args.parallel),
    ]
    try:
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()
    results = [json.loads(line) for line in done.stdout.splitlines()]
    statuses = {
        status: sum(1 for r in results if r["status"] == status) for status in ("created", "existing", "refused")
    }
    if done.returncode != 0 or statuses["created"] != args.count:
        raise SystemExit(f"push-many failed ({done.returncode}): {done.stderr[-2000:]} {statuses}")
    return {
        "count": args.count,
        "batch_size": args.batch_size,
        "gunicorn_workers": args.workers,
        "parallel_requests": args.parallel,
        "seconds": round(seconds, 1),
        "versions_per_s": round(args.count / seconds, 1),
        "projected_100k_minutes": round(100_000 / (args.count / seconds) / 60, 1),
        **statuses,
    }


def run_profile(base_ref: str, adapters: Path, batch_size: int) -> None:
    """One batch in-process (no HTTP), its SQL statement count per item and the cProfile top functions."""
    import cProfile
    import pstats

    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.get(username="bench-engineer"))
    # As many as one request may carry: push-many's batches stop at the server's 256 file parts too.
    directories = sorted(adapters.iterdir())[: 3 * min(batch_size, 256 // len(ADAPTER_FILES))]
    measure_head_held(client, base_ref, directories[::3])  # a first request imports and warms up
    head_held = measure_head_held(client, base_ref, directories[1::3])
    directories = directories[2::3]
    namespace = f"profile-{uuid.uuid4().hex[:6]}"
    manifest = [{"name": f"{namespace}/{d.name}", "base": base_ref, "files": list(ADAPTER_FILES)} for d in directories]
    handles = [open(d / path, "rb") for d in directories for path in ADAPTER_FILES]
    profiler = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        profiler.enable()
        response = client.post("/api/v1/adapters/bulk", {"manifest": json.dumps(manifest), "file": handles})
        profiler.disable()
        seconds = time.perf_counter() - started
    assert response.status_code == 200 and response.json()["created"] == len(directories), response.content[:500]
    per_item = (seconds / len(directories)) * 1000
    print(f"{len(directories)} items in {seconds:.2f} s: {per_item:.2f} ms an item (profiled)")
    print(f"{len(queries) / len(directories):.1f} SQL statements an item ({len(queries)} for the request)")
    print(
        f"audit chain head held {head_held} ms by one batch's write of {len(directories)} items (unprofiled, a warm process)"
    )
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(os.environ.get("PROFILE_FILTER", "registry"), 40)
    stats.sort_stats("tottime").print_stats(25)


def measure_head_held(client, base_ref: str, directories: list[Path]) -> float:
    """How long one batch's write transaction holds the audit chain head: from its lock to the commit
    (registry/services/bulk.py _write, less the job dispatch that runs once it has committed)."""
    from registry.services import bulk

    spent = {}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0) + time.perf_counter() - started

        return wrapper

    write, dispatch = bulk._write, bulk.jobs_dispatch
    bulk._write, bulk.jobs_dispatch = timed("write", write), timed("dispatch", dispatch)
    try:
        namespace = f"head-{uuid.uuid4().hex[:6]}"
        manifest = [
            {"name": f"{namespace}/{d.name}", "base": base_ref, "files": list(ADAPTER_FILES)} for d in directories
        ]
        handles = [open(d / path, "rb") for d in directories for path in ADAPTER_FILES]
        response = client.post("/api/v1/adapters/bulk", {"manifest": json.dumps(manifest), "file": handles})
        assert response.status_code == 200 and response.json()["created"] == len(directories), response.content[:500]
    finally:
        bulk._write, bulk.jobs_dispatch = write, dispatch
    return round((spent["write"] - spent["dispatch"]) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--parallel", type=int, default=1, help="push-many --parallel: requests in flight")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    setup_django("bulk")
    from registry.services.ingest import base_model_version_ingest
    from registry.uploads import incoming_from_directory

    base_dir, adapter_dir = base_and_adapter()
    with incoming_from_directory(base_dir) as files:
        base = base_model_version_ingest(name="bench/bulk-base", files=files, user=None).version
    engineer_token()
    adapters = OUT / f"bulk-adapters-{args.count}"
    if not adapters.exists():  # kept between runs: each run registers them under a new namespace
        generate(adapter_dir, adapters, args.count)
    if args.profile:
        run_profile(base.ref, adapters, args.batch_size)
        return
    result = {
        "machine": machine_description(),
        "broker": os.environ.get("CELERY_BROKER_URL", "filesystem (embedded default)").split("@")[-1],
        "load_average_before": [round(load, 2) for load in os.getloadavg()],
        "adapter_bytes": sum((adapters / "a000000" / p).stat().st_size for p in ADAPTER_FILES),
        **run_http(args, base.ref, adapters),
    }
    result["load_average_after"] = [round(load, 2) for load in os.getloadavg()]  # the VM is shared
    result["target_met"] = result["versions_per_s"] >= 170
    print(json.dumps(result, indent=2))
    (OUT / f"bulk_register-{args.count}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
