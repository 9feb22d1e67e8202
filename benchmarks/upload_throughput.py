"""Upload a 1 GiB adapter through the API (adapterctl -> gunicorn) and compare the wall
time with `sha256sum` of the same file in the same run; track the server's peak RSS.

Targets (issue 2): upload wall time <= 2x sha256sum; server peak RSS growth < 150 MB.
Run: .venv/bin/python benchmarks/upload_throughput.py [--gib 1.0]
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from _common import OUT, ROOT, engineer_token, machine_description, setup_django, start_server

HIDDEN, INTERMEDIATE, LAYERS = 4096, 11008, 32
MODULES = {  # module -> (in_features, out_features), Llama-7B-like shapes
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (HIDDEN, HIDDEN),
    "self_attn.v_proj": (HIDDEN, HIDDEN),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (HIDDEN, INTERMEDIATE),
    "mlp.up_proj": (HIDDEN, INTERMEDIATE),
    "mlp.down_proj": (INTERMEDIATE, HIDDEN),
}


def rank_for(target_bytes: int) -> int:
    per_rank = LAYERS * sum(i + o for i, o in MODULES.values()) * 4
    return max(1, -(-target_bytes // per_rank))


def write_adapter(directory: Path, target_bytes: int) -> Path:
    """A LoRA adapter in PEFT layout, header exact, data random, streamed to disk."""
    directory.mkdir(parents=True, exist_ok=True)
    r = rank_for(target_bytes)
    header, offset = {}, 0
    for layer in range(LAYERS):
        for module, (fan_in, fan_out) in MODULES.items():
            prefix = f"base_model.model.model.layers.{layer}.{module}"
            for part, shape in (("lora_A", [r, fan_in]), ("lora_B", [fan_out, r])):
                size = shape[0] * shape[1] * 4
                header[f"{prefix}.{part}.weight"] = {
                    "dtype": "F32",
                    "shape": shape,
                    "data_offsets": [offset, offset + size],
                }
                offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    weights = directory / "adapter_model.safetensors"
    if not weights.exists() or weights.stat().st_size != 8 + len(encoded) + offset:
        with weights.open("wb") as handle:
            handle.write(struct.pack("<Q", len(encoded)) + encoded)
            remaining = offset
            while remaining:
                chunk = min(remaining, 64 * 1024 * 1024)
                handle.write(os.urandom(chunk))
                remaining -= chunk
    config = {
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": 2 * r,
        "target_modules": sorted(m.split(".")[1] for m in MODULES),
    }
    (directory / "adapter_config.json").write_text(json.dumps(config))
    return weights


class PeakRss(threading.Thread):
    """Samples the summed RSS of a process tree until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.baseline = self._rss()
        self.running = True

    def _rss(self) -> int:
        processes = [self.process, *self.process.children(recursive=True)]
        return sum(p.memory_info().rss for p in processes if p.is_running())

    def run(self):
        while self.running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)


def timed(argv: list[str], env=None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    setup_django("upload")
    from registry.demo.build import build_llama_base
    from registry.services.ingest import base_model_version_ingest
    from registry.uploads import incoming_from_directory

    base_dir = (
        build_llama_base(OUT / "upload-base")
        if not (OUT / "upload-base" / "config.json").exists()
        else OUT / "upload-base"
    )
    with incoming_from_directory(base_dir) as files:
        base = base_model_version_ingest(name="bench/base", files=files, user=None).version
    token = engineer_token()
    adapter_dir = OUT / "upload-adapter"
    weights = write_adapter(adapter_dir, int(args.gib * 1024**3))
    size = weights.stat().st_size

    server, url = start_server()
    try:
        time.sleep(1)
        monitor = PeakRss(server.pid)
        monitor.start()
        hash_seconds, hashed = timed(["sha256sum", str(weights)])
        env = {**os.environ, "ADAPTER_REGISTRY_URL": url, "ADAPTER_REGISTRY_TOKEN": token}
        name = f"bench/upload-{int(time.time())}"
        upload_seconds, pushed = timed(
            [
                sys.executable,
                "-m",
                "registry.cli",
                "--json",
                "push",
                str(adapter_dir),
                "--name",
                name,
                "--base",
                base.ref,
            ],
            env,
        )
        monitor.running = False
        monitor.join()
    finally:
        server.terminate()
        server.wait()
    if pushed.returncode != 0:
        raise SystemExit(f"upload failed: {pushed.stderr.strip()}")
    digest = json.loads(pushed.stdout)["files"]
    assert any(f["sha256"] == hashed.stdout.split()[0] for f in digest), "server hash differs from sha256sum"
    growth_mb = (monitor.peak - monitor.baseline) / 1e6
    result = {
        "machine": machine_description(),
        "file_bytes": size,
        "sha256sum_seconds": round(hash_seconds, 2),
        "upload_seconds": round(upload_seconds, 2),
        "ratio": round(upload_seconds / hash_seconds, 2),
        "upload_MBps": round(size / upload_seconds / 1e6, 1),
        "server_peak_rss_growth_MB": round(growth_mb, 1),
        "targets_met": upload_seconds <= 2 * hash_seconds and growth_mb < 150,
    }
    print(json.dumps(result, indent=2))
    (OUT / "upload_throughput.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
