"""A million adapters: every list, filter and search over HTTP, with the query plans.

Builds the data set with a few INSERT ... SELECT statements (not 10^6 pushes): --adapters names
in --namespaces namespaces, --versions-per-name versions each (version 1 of every name shares one
created_at, as a bulk load would; the others are spread out), two files per version, one version
with --children children (the lineage case), --jobs jobs of which --queued-jobs wait. Then it
starts gunicorn (1 worker, 1 thread) and measures p50/p95 of --repeat requests for every API list,
filter and search, the UI pages, cursor walks 200 pages deep (from the top and inside the block of
versions that share a timestamp), and the lineage of the version with many children. Each scenario
is also run once in-process with every SELECT under EXPLAIN (ANALYZE, BUFFERS); the plans go to
benchmarks/out/scale_plans.txt. Finally the database size per version.

Target (issue 13): every API list, filter and search and every UI list page p95 < 50 ms with
10^6 names and 2x10^6 versions.
Run: .venv/bin/python benchmarks/scale.py --adapters 1000000
     (DATABASE_URL unset: an embedded PostgreSQL under benchmarks/out/var-scale, kept between runs;
     the load is skipped when the data set is already there)
"""

import argparse
import json
import logging
import statistics
import time
from datetime import UTC, datetime

import httpx
from _common import OUT, engineer_token, machine_description, setup_django, start_server

WORDS = ["support", "billing", "legal", "sales", "triage", "summary", "translate", "persona", "coder", "tutor"]
ROLES = ["bot", "agent", "helper", "writer", "judge", "router", "tagger", "ranker", "critic", "planner",
         "fixer", "guide", "scout", "clerk", "pilot", "coach", "smith", "scribe", "oracle", "keeper"]  # fmt: skip
TIE = datetime(2026, 1, 1, tzinfo=UTC)  # every version 1 was "created" in one statement at this instant


def name_sql(i: str) -> str:
    """The SQL for name number i: `<word>-<role>-<i, 7 digits>`, so a search can be common
    ("support": 10%), rare ("-0004217") or absent."""
    words = "(ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "])"
    roles = "(ARRAY[" + ",".join(f"'{r}'" for r in ROLES) + "])"
    return f"{words}[1 + {i} %% 10] || '-' || {roles}[1 + ({i} / 10) %% 20] || '-' || lpad({i}::text, 7, '0')"


def execute(sql: str, params=(), label: str = "") -> None:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.rowcount
    print(f"  {label or sql.split()[0]}: {rows} rows in {time.perf_counter() - started:.1f} s", flush=True)


def load(args) -> dict:
    """The data set; returns the refs the scenarios ask for."""
    from django.contrib.auth.models import User

    from registry.models import AdapterVersion, BaseModel, BaseModelVersion

    base_model, _ = BaseModel.objects.get_or_create(namespace="bench", name="llama")
    bases = []
    for number in (1, 2):
        version, _ = BaseModelVersion.objects.get_or_create(
            base_model=base_model,
            number=number,
            defaults={"digest": f"{number:064x}", "total_bytes": 10**9, "parameter_count": 10**8, "status": "ready"},
        )
        bases.append(version)
    creators = [User.objects.get_or_create(username=f"ci-bot-{i}")[0] for i in range(5)]
    refs = {"base": "bench/llama:v2", "namespace": "team-0007", "creator": "ci-bot-3", "hub": "lineage/hub:v1"}
    refs["one_name"] = execute_scalar(f"SELECT {name_sql('4217')}")
    if AdapterVersion.objects.filter(adapter__namespace="lineage").exists():
        print("data set present; not loading again", flush=True)
        return refs
    started = time.perf_counter()
    n, ns = args.adapters, args.namespaces
    execute(
        f"""INSERT INTO registry_adapter (namespace, name, description, created_at, created_by_id)
            SELECT 'team-' || lpad((i %% {ns})::text, 4, '0'), {name_sql("i")}, '', %s, %s
            FROM generate_series(0, {n - 1}) AS i""",
        [TIE, creators[0].id],
        "adapters",
    )
    version_columns = """(id, number, digest, status, status_reason, total_bytes, parameter_count, created_at,
        peft_type, r, lora_alpha, target_modules, modules_to_save, use_dora, use_rslora, tensor_count, dtypes,
        config, mlflow_run_id, mlflow_run_uri, dataset_name, dataset_digest, code_commit, training_params,
        adapter_id, created_by_id, parent_id, base_version_id)"""
    creator_ids = "ARRAY[" + ",".join(str(c.id) for c in creators) + "]"
    for number in range(1, args.versions_per_name + 1):
        created = "%s::timestamptz" if number == 1 else f"%s::timestamptz + ((a.id * {number}) || ' ms')::interval"
        parent = (
            "NULL"
            if number == 1
            else f"(SELECT p.id FROM registry_adapterversion p WHERE p.adapter_id = a.id AND p.number = {number - 1})"
        )
        execute(
            f"""INSERT INTO registry_adapterversion {version_columns}
                SELECT gen_random_uuid(), {number}, md5(a.id || '-{number}') || md5(a.id || '+{number}'),
                       (ARRAY['ready','ready','ready','received','checking','rejected'])[1 + a.id %% 6], '',
                       20000 + a.id %% 5000, 5000, {created},
                       (ARRAY['LORA','LORA','LORA','IA3','LOHA'])[1 + a.id %% 5],
                       (ARRAY[8,8,8,8,16,16,16,32,32,64])[1 + a.id %% 10], 16,
                       '["q_proj","v_proj"]', '[]', false, false, 4, '["F32"]', '{{}}', '', '', '', '', '', '{{}}',
                       a.id, ({creator_ids})[1 + a.id %% 5], {parent}, %s
                FROM registry_adapter a WHERE a.namespace LIKE 'team-%%'""",
            [TIE, bases[number % 2].id],
            f"versions v{number}",
        )
    # One version with many children: the lineage graph's worst case.
    execute(
        """INSERT INTO registry_adapter (namespace, name, description, created_at)
           SELECT 'lineage', CASE WHEN i = 0 THEN 'hub' ELSE 'child-' || lpad(i::text, 5, '0') END, '', now()
           FROM generate_series(0, %s) AS i""",
        [args.children],
        "lineage adapters",
    )
    execute(
        f"""INSERT INTO registry_adapterversion {version_columns}
            SELECT gen_random_uuid(), 1, md5(a.name) || md5(a.name || 'x'), 'ready', '', 20000, 5000,
                   now() - (a.id || ' us')::interval, 'LORA', 8, 16, '["q_proj"]', '[]', false, false, 2, '["F32"]',
                   '{{}}', '', '', '', '', '', '{{}}', a.id, NULL, NULL, %s
            FROM registry_adapter a WHERE a.namespace = 'lineage' ORDER BY a.name""",
        [bases[1].id],
        "lineage versions",
    )
    execute(
        """UPDATE registry_adapterversion SET parent_id = (
               SELECT v.id FROM registry_adapterversion v JOIN registry_adapter a ON a.id = v.adapter_id
               WHERE a.namespace = 'lineage' AND a.name = 'hub')
           WHERE adapter_id IN (SELECT id FROM registry_adapter WHERE namespace = 'lineage' AND name <> 'hub')""",
        label="lineage parents",
    )
    if args.files:
        execute(
            """INSERT INTO registry_blob (sha256, size, created_at)
               SELECT md5(v.id::text) || md5(v.digest), v.total_bytes, v.created_at FROM registry_adapterversion v
               UNION ALL SELECT md5('config' || i) || md5('config' || i), 700, now() FROM generate_series(0, 99) i""",
            label="blobs",
        )
        execute(
            """INSERT INTO registry_adapterfile (path, size, version_id, blob_id)
               SELECT 'adapter_model.safetensors', v.total_bytes, v.id, md5(v.id::text) || md5(v.digest)
               FROM registry_adapterversion v
               UNION ALL
               SELECT 'adapter_config.json', 700, v.id,
                      md5('config' || v.adapter_id %% 100) || md5('config' || v.adapter_id %% 100)
               FROM registry_adapterversion v""",
            label="files",
        )
    execute(
        f"""INSERT INTO registry_job (id, kind, state, queue, attempts, ran_on, result, error, created_at,
                                      adapter_version_id, dispatch_attempts)
            SELECT gen_random_uuid(), (ARRAY['compatibility','evaluation'])[1 + v.i %% 2],
                   CASE WHEN v.i < {args.queued_jobs} THEN 'queued' ELSE 'succeeded' END, 'cpu', 0,
                   CASE WHEN v.i < {args.queued_jobs} THEN '' ELSE 'w' || v.i %% 8 || '@bench' END, '{{}}', '',
                   now() - (v.i || ' s')::interval, v.id, 0
            FROM (SELECT id, row_number() OVER () - 1 AS i FROM registry_adapterversion LIMIT {args.jobs}) v""",
        label="jobs",
    )
    execute("VACUUM ANALYZE", label="vacuum analyze")  # as autovacuum would after a bulk load
    print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
    return refs


def load_audit_and_telemetry(args) -> None:
    """--audit-events audit events and --telemetry windows, for their lists; rows only (this data
    set's audit chain is not meant to verify)."""
    if execute_scalar("SELECT count(*) FROM registry_auditevent") < args.audit_events:
        execute(
            """INSERT INTO registry_auditevent (id, seq, time, type, actor_kind, actor_id, actor_name, actor_role,
                   token_id, request_id, client_address, object_type, object_id, object_digest, namespace, adapter,
                   reason, outcome, prev_hash, entry_hash, body)
               SELECT gen_random_uuid(), base.seq + i, now() - ((%s - i) || ' s')::interval,
                      (ARRAY['adapter.uploaded','job.finished','alias.moved','user.login'])[1 + mod(i, 4)],
                      'user', '1', 'ci-bot-' || mod(i, 5), 'engineer', '', '', '', 'adapter_version', i::text, '',
                      'team-' || lpad(mod(i, 500)::text, 4, '0'), '', '', 'success', md5(i::text), md5(i::text), '{}'
               FROM generate_series(1, %s) AS i, (SELECT coalesce(max(seq), 0) AS seq FROM registry_auditevent) base""",
            [args.audit_events, args.audit_events],
            "audit events",
        )
        # The chain's head must name the newest event, or the next real event (the benchmark token's)
        # takes a seq the bulk rows already hold and the run stops on a unique violation.
        execute(
            """UPDATE registry_auditchainhead h SET seq = e.seq, head_hash = e.entry_hash
               FROM (SELECT seq, entry_hash FROM registry_auditevent ORDER BY seq DESC LIMIT 1) e WHERE h.id = 1""",
            label="audit head",
        )
    if execute_scalar("SELECT count(*) FROM registry_telemetrywindow") < args.telemetry:
        from registry.models import ServingWorker

        worker, _ = ServingWorker.objects.get_or_create(
            name="bench-vllm-0", defaults={"engine": "vllm", "gpu_slots": 8}
        )
        execute(
            """INSERT INTO registry_telemetrywindow (window_start, window_end, requests, cold_loads, ttft_p50_ms,
                   ttft_p99_ms, resolution, received_at, adapter_version_id, worker_id)
               SELECT now() - ((v.i + 60) || ' s')::interval, now() - (v.i || ' s')::interval, 1 + mod(v.i, 50), 0,
                      20, 80, 'raw', now(), v.id, %s
               FROM (SELECT id, row_number() OVER () AS i FROM registry_adapterversion LIMIT %s) v""",
            [worker.id, args.telemetry],
            "telemetry windows",
        )
    execute("VACUUM ANALYZE registry_auditevent", label="vacuum audit")
    execute("VACUUM ANALYZE registry_telemetrywindow", label="vacuum telemetry")


def execute_scalar(sql: str, params=()):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def session_cookie(username: str) -> dict:
    """A signed-in browser session for `username`, made the way Django's login makes one."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User

    user = User.objects.get(username=username)
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return {settings.SESSION_COOKIE_NAME: store.session_key}


def tie_cursor() -> str:
    """A cursor pointing into the block of versions that share one created_at."""
    from registry import keyset
    from registry.models import AdapterVersion

    row = AdapterVersion.objects.filter(created_at=TIE).order_by("-created_at", "-id").values("id")[5000]
    return keyset.encode(keyset.Cursor(keyset.FORWARD, (TIE, row["id"])))


def api_scenarios(refs: dict) -> dict[str, str]:
    one = refs["one_name"]
    return {
        "adapters: first page (50)": "/api/v1/adapters/",
        "adapters: first page (200)": "/api/v1/adapters/?page_size=200",
        "adapters: status=ready": "/api/v1/adapters/?status=ready",
        "adapters: status=rejected": "/api/v1/adapters/?status=rejected",
        "adapters: peft_type=LORA&r=8": "/api/v1/adapters/?peft_type=LORA&r=8",
        "adapters: r=64": "/api/v1/adapters/?r=64",
        "adapters: base": f"/api/v1/adapters/?base={refs['base']}",
        "adapters: namespace": f"/api/v1/adapters/?namespace={refs['namespace']}",
        "adapters: namespace+name": f"/api/v1/adapters/?namespace=team-{4217 % 500:04d}&name={one}",
        "adapters: name": f"/api/v1/adapters/?name={one}",
        "adapters: created_by": f"/api/v1/adapters/?created_by={refs['creator']}",
        "adapters: search one name": f"/api/v1/adapters/?search={one[-9:]}",
        "adapters: search common": "/api/v1/adapters/?search=support",
        "adapters: search 2 letters": "/api/v1/adapters/?search=zz",
        "adapters: search no match": "/api/v1/adapters/?search=nothing-like-it",
        "adapters: search+namespace": f"/api/v1/adapters/?search=bot&namespace={refs['namespace']}",
        "adapters: inside the timestamp tie": f"/api/v1/adapters/?cursor={tie_cursor()}",
        "bases": "/api/v1/bases/",
        "base adapters": f"/api/v1/bases/{refs['base']}/adapters",
        "base detail": f"/api/v1/bases/{refs['base']}",
        "jobs": "/api/v1/jobs/",
        "jobs: state=queued": "/api/v1/jobs/?state=queued",
        "jobs: worker": "/api/v1/jobs/?worker=w3@bench",
        "suites": "/api/v1/suites/",
        "lineage: 10,000 children": f"/api/v1/adapters/{refs['hub']}/lineage",
        "namespaces type-ahead": "/api/v1/namespaces?prefix=team-00",
        "audit events": "/api/v1/audit/events",
        "audit events: namespace": f"/api/v1/audit/events?namespace={refs['namespace']}",
        "audit events: type": "/api/v1/audit/events?type=alias.moved",
        "telemetry": "/api/v1/telemetry",
        "telemetry: worker": "/api/v1/telemetry?worker=bench-vllm-0",
    }


def ui_scenarios(refs: dict) -> dict[str, tuple[str, dict]]:
    one = refs["one_name"]
    htmx = {"HX-Request": "true"}
    return {
        "UI adapter list": ("/adapters/", {}),
        "UI live search one name": (f"/adapters/?q={one[-9:]}", htmx),
        "UI live search common": ("/adapters/?q=support", htmx),
        "UI live search no match": ("/adapters/?q=nothing-like-it", htmx),
        "UI namespace filter": (f"/adapters/?namespace={refs['namespace']}", {}),
        "UI base list": ("/bases/", {}),
        "UI base page": ("/bases/bench/llama/v2/", {}),
        "UI workers (10,000 queued)": ("/workers/", {}),
        "UI version with 10,000 children": ("/adapters/lineage/hub/v1/", {}),
        # The page's lazy panel, which htmx fetches once the page is shown.
        "UI lineage panel, 10,000 children": ("/adapters/lineage/hub/v1/?panel=lineage", htmx),
    }


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(round(len(ordered) * fraction)) - 1)]


def measure(client: httpx.Client, url: str, headers: dict, repeat: int) -> dict:
    samples, status = [], None
    client.get(url, headers=headers)  # warm: the first request pays for compiling templates and plans
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    return {
        "status": status,
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(percentile(samples, 0.95), 1),
    }


def cursor_walk(client: httpx.Client, url: str, pages: int) -> dict:
    samples = []
    for _ in range(pages):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        url = response.json()["next"]
        if url is None:
            break
    return {
        "pages": len(samples),
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(percentile(samples, 0.95), 1),
    }


def explain_all(scenarios: dict[str, tuple[str, dict, str]]) -> tuple[dict, str]:
    """Every SELECT each scenario runs, under EXPLAIN ANALYZE; returns the slowest per scenario and the plans."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    text, slowest = [], {}
    for name, (url, headers, username) in scenarios.items():
        client = Client(headers=headers)
        client.force_login(User.objects.get(username=username))
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        text.append(f"\n=== {name}: GET {url} ({len(captured.captured_queries)} queries)")
        worst = 0.0
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                plan = [row[0] for row in cursor.fetchall()]
            executed = next((line for line in plan if line.startswith("Execution Time")), "")
            worst = max(worst, float(executed.split(":")[1].split()[0]) if executed else 0.0)
            text.append(f"\n--- {sql[:600]}{' ...' if len(sql) > 600 else ''}\n" + "\n".join(plan))
        slowest[name] = {"queries": len(captured.captured_queries), "slowest_query_ms": round(worst, 2)}
    return slowest, "\n".join(text)


def database_size() -> dict:
    from registry.models import AdapterVersion

    tables = ["registry_adapter", "registry_adapterversion", "registry_adapterfile", "registry_blob"]
    total = sum(execute_scalar("SELECT pg_total_relation_size(%s)", [table]) for table in tables)
    versions = AdapterVersion.objects.count()
    return {
        "versions": versions,
        "names": execute_scalar("SELECT count(*) FROM registry_adapter"),
        "catalog_bytes": total,
        "bytes_per_version": round(total / max(versions, 1)),
        "by_table_bytes": {t: execute_scalar("SELECT pg_total_relation_size(%s)", [t]) for t in tables},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=1_000_000, help="adapter names")
    parser.add_argument("--versions-per-name", type=int, default=2)
    parser.add_argument("--namespaces", type=int, default=500)
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--queued-jobs", type=int, default=10_000)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--telemetry", type=int, default=1_000_000, help="telemetry windows")
    parser.add_argument("--no-files", dest="files", action="store_false", help="no file and blob rows")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--walk-pages", type=int, default=200)
    parser.add_argument("--only", nargs="*", default=[], help="only the scenarios whose names contain one of these")
    parser.add_argument("--load-only", action="store_true", help="build the data set and stop")
    args = parser.parse_args()
    setup_django("scale")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)  # the UI pages name hashed static files

    refs = load(args)
    load_audit_and_telemetry(args)
    if args.load_only:
        return
    token = engineer_token()
    engineer = User.objects.get(username="bench-engineer")
    engineer.groups.add(Group.objects.get_or_create(name="admin")[0])  # the Workers page is for operators
    api, ui = api_scenarios(refs), ui_scenarios(refs)
    if args.only:  # a quicker look at some scenarios while working on them
        api = {name: url for name, url in api.items() if any(part in name for part in args.only)}
        ui = {name: url for name, url in ui.items() if any(part in name for part in args.only)}
    plans_for = {name: (url, {}, "bench-engineer") for name, url in api.items()}
    plans_for.update({name: (url, headers, "bench-engineer") for name, (url, headers) in ui.items()})
    explained, plans = explain_all(plans_for)
    (OUT / "scale_plans.txt").write_text(plans)

    server, base_url = start_server(workers=1, threads=1)
    results = {}
    try:
        auth = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=base_url, headers=auth, timeout=60) as client:
            for name, url in api.items():
                results[name] = {**measure(client, url, {}, args.repeat), **explained[name]}
                print(f"{name:40s} {results[name]}", flush=True)
            results["cursor walk from the top"] = cursor_walk(client, "/api/v1/adapters/", args.walk_pages)
            results["cursor walk inside the tie"] = cursor_walk(
                client, f"/api/v1/adapters/?cursor={tie_cursor()}", args.walk_pages
            )
        with httpx.Client(base_url=base_url, cookies=session_cookie("bench-engineer"), timeout=60) as browser:
            for name, (url, headers) in ui.items():
                results[name] = {**measure(browser, url, headers, args.repeat), **explained[name]}
                print(f"{name:40s} {results[name]}", flush=True)
    finally:
        server.terminate()
        server.wait()
    measured = [r for r in results.values() if "p95_ms" in r and r.get("status", 200) == 200]
    failed = {name: r["status"] for name, r in results.items() if r.get("status", 200) != 200}
    report = {
        "machine": machine_description(),
        "command": "benchmarks/scale.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "scenarios": results,
        "not_200": failed,
        "worst_p95_ms": max(r["p95_ms"] for r in measured),
        "target_met": not failed and all(r["p95_ms"] < 50 for r in measured),
        "database": database_size(),
        "plans": str(OUT / "scale_plans.txt"),
    }
    print(json.dumps(report, indent=2))
    (OUT / "scale.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
