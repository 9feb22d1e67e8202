"""Pull the 1 GiB adapter of the upload benchmark back through the API (registry.pull -> gunicorn),
verified end to end, and compare the wall time with hashlib's SHA-256 of the same bytes in the
same run; track the server's peak RSS.

Targets (issue 8): pull wall time <= 2x hashlib; server peak RSS growth < 100 MB.
Run: .venv/bin/python benchmarks/pull_throughput.py [--gib 1.0]
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import OUT, ROOT, engineer_token, machine_description, setup_django, start_server
from upload_throughput import PeakRss, write_adapter


def hashlib_seconds(path: Path) -> tuple[float, str]:
    """What hashing the stored bytes costs alone: read from the page cache and SHA-256 them."""
    started = time.perf_counter()
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return time.perf_counter() - started, digest


def pull_seconds(url: str, token: str, ref: str, destination: Path) -> tuple[float, dict]:
    """registry.pull in-process against the live server: the CLI's code path without its start-up."""
    from registry.cli import Registry
    from registry.pull import pull_version

    shutil.rmtree(destination, ignore_errors=True)
    registry = Registry(url, token)
    started = time.perf_counter()
    kind, version = registry.get_version(ref, "adapters")
    result = pull_version(registry.client, kind, version, destination)
    return time.perf_counter() - started, result


def cli_seconds(url: str, token: str, ref: str, destination: Path) -> float:
    """The same pull as a user runs it: `adapterctl pull`, Python start-up included."""
    shutil.rmtree(destination, ignore_errors=True)
    env = {**os.environ, "ADAPTER_REGISTRY_URL": url, "ADAPTER_REGISTRY_TOKEN": token}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "registry.cli", "pull", ref, str(destination)], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"adapterctl pull failed: {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3, help="pulls to time (the best is reported, all are listed)")
    args = parser.parse_args()
    setup_django("pull")
    from registry.demo.build import build_llama_base
    from registry.services.ingest import base_model_version_ingest
    from registry.uploads import incoming_from_directory

    base_dir = OUT / "upload-base"
    if not (base_dir / "config.json").exists():
        build_llama_base(base_dir)
    with incoming_from_directory(base_dir) as files:
        base = base_model_version_ingest(name="bench/base", files=files, user=None).version
    token = engineer_token()
    adapter_dir = OUT / "upload-adapter"
    weights = write_adapter(adapter_dir, int(args.gib * 1024**3))
    size = weights.stat().st_size
    destination = OUT / "pull-destination"

    server, url = start_server()
    try:
        env = {**os.environ, "ADAPTER_REGISTRY_URL": url, "ADAPTER_REGISTRY_TOKEN": token}
        pushed = subprocess.run(
            [sys.executable, "-m", "registry.cli", "--json", "push", str(adapter_dir), "--name", "bench/pull"]
            + ["--base", base.ref],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        if pushed.returncode != 0:
            raise SystemExit(f"upload failed: {pushed.stderr.strip()}")
        ref = json.loads(pushed.stdout)["ref"]
        time.sleep(1)
        monitor = PeakRss(server.pid)
        monitor.start()
        pulls, hashes = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            hash_time, expected = hashlib_seconds(weights)
            hashes.append(hash_time)
            pull_time, result = pull_seconds(url, token, ref, destination)
            pulls.append(pull_time)
        cli_time = cli_seconds(url, token, ref, destination)
        monitor.running = False
        monitor.join()
    finally:
        server.terminate()
        server.wait()
    pulled = next(f for f in result["files"] if f["path"] == weights.name)
    assert pulled["sha256"] == expected and pulled["written"], "the pulled file is not the uploaded one"
    assert hashlib_seconds(destination / weights.name)[1] == expected
    growth_mb = (monitor.peak - monitor.baseline) / 1e6
    best_pull, best_hash = min(pulls), min(hashes)
    result = {
        "machine": machine_description(),
        "file_bytes": size,
        "hashlib_seconds": [round(s, 2) for s in hashes],
        "pull_seconds": [round(s, 2) for s in pulls],
        "ratio_best": round(best_pull / best_hash, 2),
        "adapterctl_pull_seconds": round(cli_time, 2),
        "pull_MBps": round(size / best_pull / 1e6, 1),
        "server_peak_rss_growth_MB": round(growth_mb, 1),
        "targets_met": best_pull <= 2 * best_hash and growth_mb < 100,
    }
    print(json.dumps(result, indent=2))
    (OUT / "pull_throughput.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
