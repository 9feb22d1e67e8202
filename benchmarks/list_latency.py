"""List latency with 100,000 adapter versions in PostgreSQL, through HTTP to gunicorn.

Target (issue 2): p95 under 50 ms per list page, for the first page, filtered pages
and pages deep in the cursor chain; the constant query count per page is asserted
in tests/registry/test_lineage_and_lists.py.
Run: .venv/bin/python benchmarks/list_latency.py [--versions 100000]
"""

import argparse
import hashlib
import json
import statistics
import time

import httpx
from _common import OUT, engineer_token, machine_description, setup_django, start_server

PEFT_TYPES = ["LORA", "LORA", "LORA", "IA3", "LOHA"]
STATUSES = ["received", "ready", "ready", "rejected"]


def populate(target: int) -> None:
    """Bulk-insert synthetic versions (metadata rows only) until `target` exist."""
    from registry.models import Adapter, AdapterVersion, BaseModel, BaseModelVersion

    existing = AdapterVersion.objects.count()
    if existing >= target:
        return
    base_model, _ = BaseModel.objects.get_or_create(namespace="bench", name="base")
    bases = []
    for number in (1, 2):
        version, _ = BaseModelVersion.objects.get_or_create(
            base_model=base_model,
            number=number,
            defaults={
                "digest": hashlib.sha256(f"base{number}".encode()).hexdigest(),
                "total_bytes": 1,
                "parameter_count": 1,
                "status": "ready",
            },
        )
        bases.append(version)
    adapters = [Adapter.objects.get_or_create(namespace=f"team{i % 20}", name=f"adapter-{i}")[0] for i in range(1000)]
    batch = []
    for index in range(existing, target):
        adapter = adapters[index % len(adapters)]
        batch.append(
            AdapterVersion(
                adapter=adapter,
                number=index // len(adapters) + 1,
                base_version=bases[index % 2],
                digest=hashlib.sha256(str(index).encode()).hexdigest(),
                status=STATUSES[index % 4],
                total_bytes=1000 + index,
                parameter_count=1000,
                peft_type=PEFT_TYPES[index % 5],
                r=[4, 8, 16, 32][index % 4],
                lora_alpha=16,
                target_modules=["q_proj", "v_proj"],
                tensor_count=4,
                dtypes=["F32"],
                config={},
            )
        )
        if len(batch) == 5000:
            AdapterVersion.objects.bulk_create(batch)
            batch = []
            print(f"  {index + 1} versions", flush=True)
    AdapterVersion.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed_get(client: httpx.Client, url: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.json()


def scenario_urls(client: httpx.Client) -> dict[str, list[str]]:
    deep, url = [], "/api/v1/adapters/?page_size=50"
    for _ in range(60):  # walk 3,000 versions deep along the cursor chain
        _, body = timed_get(client, url)
        url = body["next"]
        deep.append(url)
    return {
        "first page (50)": ["/api/v1/adapters/"],
        "first page (max, 200)": ["/api/v1/adapters/?page_size=200"],
        "filter status=ready": ["/api/v1/adapters/?status=ready"],
        "filter peft_type+r": ["/api/v1/adapters/?peft_type=LORA&r=8"],
        "filter base": ["/api/v1/adapters/?base=bench/base:v2"],
        "filter name": ["/api/v1/adapters/?namespace=team3&name=adapter-3"],
        "cursor pages 1-60": deep,
        "bases list": ["/api/v1/bases/"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    setup_django("list")
    populate(args.versions)
    token = engineer_token()
    server, url = start_server(workers=1, threads=1)
    results = {}
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=30) as client:
            for name, urls in scenario_urls(client).items():
                samples = []
                for _ in range(args.repeat if len(urls) == 1 else 1):
                    for page_url in urls:
                        samples.append(timed_get(client, page_url)[0])
                samples.sort()
                results[name] = {
                    "requests": len(samples),
                    "p50_ms": round(statistics.median(samples), 1),
                    "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 1),
                }
    finally:
        server.terminate()
        server.wait()
    worst = max(r["p95_ms"] for r in results.values())
    report = {
        "machine": machine_description(),
        "versions": args.versions,
        "scenarios": results,
        "worst_p95_ms": worst,
        "target_met": worst < 50,
    }
    print(json.dumps(report, indent=2))
    (OUT / "list_latency.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
