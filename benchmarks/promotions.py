"""Promotions: "as of" alias lookups with 100,000 moves, the inventory at a time over 10,000 names, and
the time from an approval to the alias serving the version on the embedded default.

(a) 100,000 AliasMove rows bulk-inserted (metadata only): 10,000 adapter names in 20 namespaces, aliases
    `production` and `staging`, 90,000 moves spread over the last 365 days, plus one hot alias with
    10,000 moves of its own. Through HTTP to gunicorn (1 process, 1 thread, as list_latency.py):
    GET /api/v1/adapters/<name>/aliases/<alias>?at=T at random names, aliases and times, and at random
    times on the hot alias. Target (issue 11): p95 under 10 ms. Interleaved with them, the floor of any
    authenticated API read (GET /api/v1/bases/); the lookup (selectors.alias_state_at) in this process. Also
    GET /api/v1/inventory?alias=production&at=T (JSON and CSV) over the 10,000 names, and EXPLAIN
    ANALYZE of both queries.
(b) The embedded default as `make run` runs it: the embedded PostgreSQL, gunicorn, and one Celery
    worker (solo pool, queues cpu and gpu, with beat) on the filesystem broker. Two small real adapter
    versions, checked by that worker, go to `production` in turn: an engineer's request, an approver's
    approval over HTTP; the time runs from the approve call's answer until GET .../aliases/production
    answers the new version (polled every 10 ms). Target (issue 11): under 2 s.
Run: .venv/bin/python benchmarks/promotions.py [--moves 100000] [--names 10000] [--lookups 200] [--promotions 10]
"""

import argparse
import hashlib
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
from _common import OUT, ROOT, engineer_token, machine_description, setup_django, start_server

NAMESPACES = 20
ALIASES = ("production", "staging")
VERSIONS_PER_NAME = 3
HOT_MOVES = 10_000
SPAN = timedelta(days=365)
LIVE_NAME = "live/bot"


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


# --- (a) "as of" lookups and the inventory -------------------------------------------------------


def _base_version(name: str):
    from registry.models import BaseModel, BaseModelVersion

    base_model, _ = BaseModel.objects.get_or_create(namespace="asof", name=name)
    version, _ = BaseModelVersion.objects.get_or_create(
        base_model=base_model,
        number=1,
        defaults={"digest": hashlib.sha256(name.encode()).hexdigest(), "total_bytes": 1, "parameter_count": 1,
                  "status": "ready"},
    )  # fmt: skip
    return version


def _versions(adapters: list, base) -> dict:
    """VERSIONS_PER_NAME metadata-only ready versions per adapter name: {adapter id: [version, ...]}."""
    from registry.models import AdapterVersion

    rows = [
        AdapterVersion(
            adapter=adapter,
            number=number,
            base_version=base,
            digest=hashlib.sha256(f"{adapter.full_name}:{number}".encode()).hexdigest(),
            status="ready",
            total_bytes=1000,
            parameter_count=1000,
            peft_type="LORA",
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "v_proj"],
            tensor_count=4,
            dtypes=["F32"],
            config={},
        )
        for adapter in adapters
        for number in range(1, VERSIONS_PER_NAME + 1)
    ]
    AdapterVersion.objects.bulk_create(rows, batch_size=5000)
    by_adapter: dict = {}
    for version in AdapterVersion.objects.filter(adapter__in=adapters).order_by("number"):
        by_adapter.setdefault(version.adapter_id, []).append(version)
    return by_adapter


def _moves_of(adapter, alias: str, versions: list, count: int, now: datetime, rng: random.Random) -> list:
    """`count` moves of one alias at sorted random times over SPAN, each from the version the last one set."""
    from registry.models import AliasMove

    moves, served = [], None
    for index, moment in enumerate(sorted(now - SPAN * rng.random() for _ in range(count))):
        target = versions[index % len(versions)]
        kind = AliasMove.Kind.ROLLBACK if index % 7 == 6 else AliasMove.Kind.PROMOTE
        moves.append(
            AliasMove(adapter=adapter, alias=alias, kind=kind, from_version=served, to_version=target,
                      actor_name="bench", reason="benchmark", moved_at=moment)
        )  # fmt: skip
        served = target
    return moves


def populate(total_moves: int, names: int) -> dict:
    """Bulk-insert the names, versions, moves and current aliases once; returns what the lookups need."""
    from django.db import connection

    from registry.models import Adapter, AdapterAlias, AliasMove

    ours = {"adapter__namespace__startswith": "asof"}
    existing = AliasMove.objects.filter(**ours).count()
    if existing and existing != total_moves:
        raise SystemExit(f"{OUT / 'var-promotions'} holds {existing} moves, not {total_moves}: remove it to rebuild")
    if not existing:
        now, rng = datetime.now(UTC), random.Random(11)
        base = _base_version("base")
        Adapter.objects.bulk_create(
            [Adapter(namespace=f"asof{i % NAMESPACES}", name=f"svc-{i}") for i in range(names)]
            + [Adapter(namespace="asof-hot", name="bot")]
        )
        adapters = list(Adapter.objects.filter(namespace__startswith="asof").order_by("namespace", "name"))
        by_adapter = _versions(adapters, base)
        hot = next(a for a in adapters if a.namespace == "asof-hot")
        spread = [(a, alias) for a in adapters if a.id != hot.id for alias in ALIASES]
        per_pair, extra = divmod(total_moves - HOT_MOVES, len(spread))
        pairs = [(hot, "production", HOT_MOVES)]
        pairs += [(a, alias, per_pair + (1 if i < extra else 0)) for i, (a, alias) in enumerate(spread)]
        batch, current = [], []
        for adapter, alias, count in pairs:
            moves = _moves_of(adapter, alias, by_adapter[adapter.id], count, now, rng)
            batch += moves
            if moves:
                current.append(AdapterAlias(adapter=adapter, name=alias, version=moves[-1].to_version))
            if len(batch) >= 10_000:
                AliasMove.objects.bulk_create(batch)
                print(f"  {AliasMove.objects.filter(**ours).count()} moves", flush=True)
                batch = []
        AliasMove.objects.bulk_create(batch)
        AdapterAlias.objects.bulk_create(current, batch_size=5000)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    adapters = list(Adapter.objects.filter(namespace__startswith="asof", aliases__isnull=False).distinct())
    first = AliasMove.objects.filter(**ours).order_by("moved_at").values_list("moved_at", flat=True).first()
    return {"adapters": adapters, "hot": next(a for a in adapters if a.namespace == "asof-hot"), "first": first}


def _random_time(rng: random.Random, first: datetime) -> str:
    start = first - timedelta(days=10)  # some lookups fall before the alias was ever set
    return (start + (datetime.now(UTC) - start) * rng.random()).isoformat()


def _timed(client: httpx.Client, url: str, params: dict) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response


# The floor: an authenticated API request that reads one small row, through the same middleware,
# token authentication and DRF. Timed interleaved with the lookups, so that load hits both alike.
FLOOR_URL = "/api/v1/bases/"


def as_of_scenarios(client: httpx.Client, data: dict, lookups: int) -> dict:
    rng = random.Random(7)
    results, floor = {}, []
    for _ in range(5):  # warm-up: the server process's first requests load code and fill caches
        _timed(client, f"/api/v1/adapters/{data['hot'].full_name}/aliases/production", {})
        _timed(client, FLOOR_URL, {})
    for name, pick in (
        ("as of: random name, alias and time", lambda: (rng.choice(data["adapters"]), rng.choice(ALIASES))),
        ("as of: the hot alias (10,000 moves), random time", lambda: (data["hot"], "production")),
    ):
        samples, served = [], 0
        for _ in range(lookups):
            adapter, alias = pick()
            elapsed, response = _timed(
                client,
                f"/api/v1/adapters/{adapter.full_name}/aliases/{alias}",
                {"at": _random_time(rng, data["first"])},
            )
            samples.append(elapsed)
            served += response.json()["version"] is not None
            floor.append(_timed(client, FLOOR_URL, {})[0])
        results[name] = {**percentiles(samples), "answers_with_a_version": served}
    results[f"floor: GET {FLOOR_URL} (one base), interleaved"] = percentiles(floor)
    for answer in ("json", "csv"):
        samples = []
        for _ in range(10):
            elapsed, response = _timed(
                client,
                "/api/v1/inventory",
                {"alias": "production", "at": _random_time(rng, data["first"]), "format": answer},
            )
            samples.append(elapsed)
        rows = response.json()["count"] if answer == "json" else response.text.count("\n") - 1
        results[f"inventory of production over {len(data['adapters'])} names ({answer})"] = {
            **percentiles(samples),
            "rows_last": rows,
        }
    return results


def service_lookups(data: dict, lookups: int) -> dict:
    """registry.selectors.alias_state_at (what the API runs) called in this process: the lookup without HTTP."""
    from registry.selectors import alias_state_at

    rng = random.Random(7)
    samples = []
    for _ in range(lookups):
        adapter, alias = rng.choice(data["adapters"]), rng.choice(ALIASES)
        at = datetime.fromisoformat(_random_time(rng, data["first"]))
        started = time.perf_counter()
        alias_state_at(adapter.namespace, adapter.name, alias, at)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def explain(data: dict) -> dict:
    """EXPLAIN ANALYZE of the API's as-of statement (registry.selectors.alias_state_at) and of the inventory's."""
    from django.db import connection

    from registry.api.promotions import inventory_rows  # noqa: F401  (the query below is its queryset)
    from registry.models import AliasMove
    from registry.selectors import _ALIAS_AT_SQL

    at = data["first"] + SPAN / 2
    plans = {}
    for label, adapter in (("as of, a spread alias", data["adapters"][0]), ("as of, the hot alias", data["hot"])):
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + _ALIAS_AT_SQL, [adapter.namespace, adapter.name, "production", at]
            )
            plans[f"{label}: the API's statement"] = "\n".join(row[0] for row in cursor.fetchall())
    inventory = (
        AliasMove.objects.filter(alias="production", moved_at__lte=at)
        .order_by("adapter_id", "-moved_at", "-id")
        .distinct("adapter_id")
    )
    plans["inventory (DISTINCT ON, without the joins)"] = inventory.explain(analyze=True)
    return plans


# --- (b) approval to alias moved, with a real worker ---------------------------------------------


def _user_token(username: str, role: str) -> tuple:
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    user, _ = User.objects.get_or_create(username=username)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user, Token.objects.get_or_create(user=user)[0].key


def _live_versions(var_dir, engineer) -> list:
    """A tiny Llama-style base and two LoRA adapters built here, registered as an engineer pushes them."""
    from registry.demo import build
    from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
    from registry.uploads import incoming_from_directory

    models = var_dir / "models"
    base_dir = models / "base"
    if not (base_dir / "model.safetensors").exists():
        build.build_llama_base(base_dir)
    with incoming_from_directory(base_dir) as files:
        base = base_model_version_ingest(name="live/llama", files=files, user=engineer).version
    versions = []
    for seed in (1, 2):
        directory = models / f"adapter-{seed}"
        if not (directory / "adapter_model.safetensors").exists():
            build.build_lora_adapter(base_dir, directory, train_steps=2, seed=seed, r=4, lora_alpha=8,
                                     target_modules=["q_proj", "v_proj"])  # fmt: skip
        with incoming_from_directory(directory) as files:
            versions.append(
                adapter_version_ingest(name=LIVE_NAME, files=files, base_ref=str(base.id), user=engineer).version
            )
    return versions


def start_worker(var_dir) -> subprocess.Popen:
    """One solo-pool worker on both queues with beat: what `manage.py runregistry` starts."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "-Q", "cpu,gpu", "--pool", "solo"]
    argv += ["--loglevel", "WARNING", "--beat", "--schedule", str(var_dir / "celerybeat-schedule")]
    log = (var_dir / "worker.log").open("w")
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(worker: subprocess.Popen) -> None:
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    except ProcessLookupError:
        pass


def _wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def _serving(client: httpx.Client, alias_url: str) -> str | None:
    """What the alias serves now, as serving reads it (404: nothing yet)."""
    response = client.get(alias_url)
    return response.json()["version"] if response.status_code == 200 else None


def _cancel_left_open(engineer) -> None:
    """An interrupted earlier run may have left a request open, which would make the next one 409."""
    from registry.models import PromotionRequest
    from registry.services.promotions import promotion_cancel

    left = PromotionRequest.objects.filter(
        adapter__namespace="live", state__in=(PromotionRequest.State.PENDING, PromotionRequest.State.APPROVED)
    )
    for request_id in left.values_list("id", flat=True):
        promotion_cancel(request_id=request_id, user=engineer, reason="benchmark: left open by an interrupted run")


def approval_to_move(url: str, var_dir, promotions: int) -> dict:
    from registry.models import AdapterVersion, PromotionRequest

    engineer, engineer_key = _user_token("live-engineer", "engineer")
    _, approver_key = _user_token("live-approver", "approver")
    versions = _live_versions(var_dir, engineer)
    _wait(
        lambda: all(AdapterVersion.objects.get(id=v.id).status == "ready" for v in versions),
        600,
        "the worker to check both versions",
    )
    _cancel_left_open(engineer)
    asker = httpx.Client(base_url=url, headers={"Authorization": f"Token {engineer_key}"}, timeout=30)
    approver = httpx.Client(base_url=url, headers={"Authorization": f"Token {approver_key}"}, timeout=30)
    alias_url = f"/api/v1/adapters/{LIVE_NAME}/aliases/production"
    samples, phases = [], []
    for index in range(promotions):
        serving = _serving(asker, alias_url)
        target = next(v.ref for v in versions if v.ref != serving)
        created = asker.post("/api/v1/promotions", json={"version": target, "alias": "production",
                                                         "reason": f"benchmark promotion {index}"})  # fmt: skip
        created.raise_for_status()
        request_id = created.json()["id"]
        approved = approver.post(f"/api/v1/promotions/{request_id}/approve", json={"comment": "benchmark"})
        approved.raise_for_status()
        answered = time.perf_counter()
        while _serving(asker, alias_url) != target:
            if time.perf_counter() - answered > 60:
                raise RuntimeError(f"promotion {request_id} did not move the alias in 60 s")
            time.sleep(0.01)
        samples.append(time.perf_counter() - answered)
        # The alias serves the version as soon as the move commits; the request is marked executed just after.
        request = _wait(
            lambda request_id=request_id: PromotionRequest.objects.filter(
                id=request_id, finished_at__isnull=False
            ).first(),
            30,
            f"promotion {request_id} to be marked done",
        )
        phases.append(
            {
                "queued_to_claimed_s": round((request.started_at - request.decided_at).total_seconds(), 3),
                "claimed_to_executed_s": round((request.finished_at - request.started_at).total_seconds(), 3),
            }
        )
    return {
        "promotions": len(samples),
        "median_s": round(statistics.median(samples), 3),
        "max_s": round(max(samples), 3),
        "all_s": [round(s, 3) for s in samples],
        "phases": phases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=100_000)
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--promotions", type=int, default=10)
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    var_dir = setup_django("promotions")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would drown the report
    data = populate(args.moves, args.names)
    token = engineer_token()
    worker = start_worker(var_dir)
    server, url = start_server(workers=1, threads=1)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60) as client:
            scenarios = as_of_scenarios(client, data, args.lookups)
        live = approval_to_move(url, var_dir, args.promotions)
    finally:
        server.terminate()
        server.wait()
        stop_worker(worker)
    as_of_p95 = max(v["p95_ms"] for k, v in scenarios.items() if k.startswith("as of"))
    report = {
        "machine": machine_description(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1m_start_end": [round(load_at_start[0], 2), round(os.getloadavg()[0], 2)],
        "moves": args.moves,
        "names": args.names,
        "scenarios": scenarios,
        "alias_at_in_process": service_lookups(data, args.lookups),
        "as_of_worst_p95_ms": as_of_p95,
        "as_of_target_met": as_of_p95 < 10,
        "approval_to_alias_moved": live,
        "approval_target_met": live["max_s"] < 2,
        "explain_analyze": explain(data),
    }
    print(json.dumps(report, indent=2))
    (OUT / "promotions.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
