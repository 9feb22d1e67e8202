"""Two builds of the heavy UI pages over HTTP, requests alternating, on the scale data set.

On a machine shared with other work, two benchmark runs a minute apart see different loads; here
the baseline and this checkout each run behind gunicorn (1 worker, 1 thread) against the same
database, and every request to one is followed by the same request to the other, so both see the
same load. The baseline is a plain copy of an older commit:

    git archive <commit> | tar -x -C /tmp/ui-before && ln -s "$PWD/.venv" /tmp/ui-before/.venv
    env -u DATABASE_URL .venv/bin/python benchmarks/ui_ab.py --before /tmp/ui-before

Needs the data set of benchmarks/scale.py (benchmarks/out/var-scale), already loaded.
"""

import argparse
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _common import ROOT, free_port, setup_django
from scale import percentile, session_cookie

HTMX = {"HX-Request": "true"}
PAGES = [
    ("UI workers (10,000 queued)", "/workers/", {}),
    ("UI version with 10,000 children", "/adapters/lineage/hub/v1/", {}),
    ("UI lineage panel, 10,000 children", "/adapters/lineage/hub/v1/?panel=lineage", HTMX),
]


def serve(tree: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = ["-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "1", "--log-level", "warning"]
    server = subprocess.Popen([str(tree / ".venv/bin/python"), *command], cwd=tree, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return server, url
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the server in {tree} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a copy of the baseline commit")
    parser.add_argument("--repeat", type=int, default=80)
    args = parser.parse_args()
    setup_django("scale")  # sets ADAPTER_REGISTRY_VAR_DIR, which both servers inherit
    logging.getLogger("httpx").setLevel(logging.WARNING)
    cookies = session_cookie("bench-engineer")
    servers = {name: serve(tree) for name, tree in (("before", args.before), ("after", ROOT))}
    try:
        clients = {name: httpx.Client(base_url=url, cookies=cookies, timeout=60) for name, (_, url) in servers.items()}
        for label, path, headers in PAGES:
            samples: dict[str, list[float]] = {}
            for name, client in clients.items():
                for _ in range(2):  # warm: templates compiled, plans cached
                    status = client.get(path, headers=headers).status_code
                if status == 200:  # a baseline without the page (a panel it does not have) is left out
                    samples[name] = []
            for _ in range(args.repeat):
                for name in samples:
                    started = time.perf_counter()
                    clients[name].get(path, headers=headers)
                    samples[name].append((time.perf_counter() - started) * 1000)
            figures = " | ".join(
                f"{name}: p50 {statistics.median(s):.1f} p95 {percentile(s, 0.95):.1f}" for name, s in samples.items()
            )
            print(f"{label:36s} {figures} | load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for server, _ in servers.values():
            server.terminate()


if __name__ == "__main__":
    sys.exit(main())
