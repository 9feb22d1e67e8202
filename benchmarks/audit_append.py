"""The audit chain's cost: the append inside a write, and verifying 1,000,000 events.

(a) Added latency of `audit_record` (issue 10 target: < 2 ms at p95). Interleaved, in one
    process on one connection: a transaction that updates one row (a worker's heartbeat), and
    the same transaction with an `audit_record` call (before/after, evidence, the request-less
    system actor). The event table holds --prefill events first (a valid chain, bulk-inserted),
    so index depth is realistic. Also: events per second with 1..N threads appending at once,
    each its own connection, which the one locked chain head serialises.
(b) Verification throughput, one thread: `verify_chain` over 1,000,000 synthetic events of the
    registry's shape, generated in chunks of 100,000 outside the timed part; and the same events
    read back from a JSON Lines file (one canonical event a line, as an export holds them) with
    `verify_lines` (parse, hash the line's own bytes), which is what an offline verifier does end
    to end, and with json.loads + verify_chain for comparison. Target: < 30 s.

Run: .venv/bin/python benchmarks/audit_append.py [--runs 2000] [--prefill 100000] [--events 1000000]
     [--threads 1 2 4 8] [--skip-append | --skip-verify]
Without DATABASE_URL it starts its own embedded PostgreSQL under benchmarks/out/var-audit.
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import OUT, machine_description, setup_django  # noqa: E402

from registry.audit.chain import GENESIS_HASH, body_hash, canonical, verify_chain, verify_lines  # noqa: E402

CHUNK = 100_000
_fast = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def synthetic_event(seq: int, prev_hash: str) -> dict:
    """An event shaped like the registry's (a status move with evidence); ASCII and no floats."""
    return {
        "id": str(uuid.UUID(int=seq)),
        "seq": seq,
        "time": f"2026-11-26T{seq // 3600000 % 24:02d}:{seq // 60000 % 60:02d}:{seq // 1000 % 60:02d}.{seq % 1000000:06d}Z",
        "type": "version.status",
        "actor_kind": "worker",
        "actor_id": "gpu-3@node-7",
        "actor_name": "gpu-3@node-7",
        "actor_role": "",
        "token_id": "",
        "request_id": f"{seq:032x}",
        "client_address": "10.0.0.7",
        "object_type": "adapter_version",
        "object_id": str(uuid.UUID(int=seq * 7919)),
        "object_digest": f"{seq:064x}",
        "namespace": f"team{seq % 20}",
        "adapter": f"team{seq % 20}/adapter-{seq % 1000}",
        "before": {"status": "checking"},
        "after": {"status": "ready"},
        "reason": "every check passed",
        "evidence": {"checks": [{"kind": "static", "verdict": "pass"}], "metrics": {"accuracy": "0.9132"}},
        "outcome": "success",
        "prev_hash": prev_hash,
    }


def chained(start_seq: int, count: int, prev_hash: str) -> list[dict]:
    # json's encoder is RFC 8785 for these events (checked against rfc8785 below) and 7x faster.
    events = []
    for seq in range(start_seq, start_seq + count):
        event = synthetic_event(seq, prev_hash)
        event["entry_hash"] = prev_hash = body_hash(prev_hash, _fast.encode(event).encode())
        events.append(event)
    return events


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- (b) verification --------------------------------------------------------------------------


def bench_verify(total: int) -> dict:
    sample = chained(1, 3, GENESIS_HASH)
    assert all(body_hash(e["prev_hash"], canonical(e)) == e["entry_hash"] for e in sample), "not RFC 8785"
    verify_seconds, prev, seq = 0.0, GENESIS_HASH, 1
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, dir=OUT) as lines:
        path = Path(lines.name)
        while seq <= total:
            events = chained(seq, min(CHUNK, total - seq + 1), prev)
            started = time.process_time()
            head = verify_chain(events, start_prev_hash=prev, start_seq=seq)
            verify_seconds += time.process_time() - started
            for event in events:
                lines.write(_fast.encode(event) + "\n")
            prev, seq = head, seq + len(events)
            print(f"  verified {seq - 1} events, {verify_seconds:.1f} s CPU so far", flush=True)
    size = path.stat().st_size
    started_wall, started = time.perf_counter(), time.process_time()
    with path.open("rb") as handle:
        file_head = verify_lines(handle)
    file_seconds, file_wall = time.process_time() - started, time.perf_counter() - started_wall
    started = time.process_time()
    with path.open("rb") as handle:
        assert verify_chain(json.loads(line) for line in handle) == prev
    parsed_seconds = time.process_time() - started
    path.unlink()
    assert file_head == prev
    return {
        "events": total,
        "verify_chain_cpu_s": round(verify_seconds, 2),
        "events_per_s": round(total / verify_seconds),
        "jsonl_bytes": size,
        "verify_lines_cpu_s": round(file_seconds, 2),
        "verify_lines_wall_s": round(file_wall, 2),
        "json_loads_then_verify_chain_cpu_s": round(parsed_seconds, 2),
    }


# --- (a) append latency ---------------------------------------------------------------------------


def prefill(count: int) -> None:
    from django.db import transaction

    from registry.audit.services import _locked_head
    from registry.models import AuditChainHead, AuditEvent

    existing = AuditEvent.objects.count()
    if existing >= count:
        return
    with transaction.atomic():
        head = _locked_head()
        seq, prev = head.seq + 1, head.head_hash
        while seq <= count:
            events = chained(seq, min(10_000, count - seq + 1), prev)
            AuditEvent.objects.bulk_create(
                AuditEvent(
                    **{k: v for k, v in e.items() if k not in ("time",)},
                    time="2026-11-26T00:00:00Z",
                    body=_fast.encode({k: v for k, v in e.items() if k != "entry_hash"}),
                )
                for e in events
            )
            prev, seq = events[-1]["entry_hash"], seq + len(events)
            print(f"  prefilled {seq - 1} events", flush=True)
        AuditChainHead.objects.filter(pk=1).update(seq=seq - 1, head_hash=prev)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE registry_auditevent")


def bench_append(runs: int, thread_counts: list[int]) -> dict:
    from django.db import connections, transaction
    from django.utils import timezone

    from registry.audit.context import actor_worker
    from registry.audit.services import audit_record
    from registry.models import Worker

    worker, _ = Worker.objects.get_or_create(
        hostname="bench-worker",
        defaults={"direct_queue": "worker.bench", "device_type": "cpu", "last_heartbeat_at": timezone.now()},
    )
    actor = actor_worker(worker.hostname)

    def write(audited: bool) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            now = timezone.now()
            Worker.objects.filter(pk=worker.pk).update(last_heartbeat_at=now)
            if audited:
                audit_record(
                    type="worker.heartbeat",
                    object_type="worker",
                    object_id=worker.hostname,
                    before={"last_heartbeat_at": worker.last_heartbeat_at},
                    after={"last_heartbeat_at": now},
                    evidence={"resident": {"bases": ["team1/base:v1"], "adapters": 3}},
                    actor=actor,
                )
        return (time.perf_counter() - started) * 1000

    for _ in range(50):  # warm the connection and the plan cache
        write(False), write(True)
    plain, audited = [], []
    for _ in range(runs):
        plain.append(write(False))
        audited.append(write(True))
    result = {
        "runs": runs,
        "plain_ms": {"p50": round(statistics.median(plain), 3), "p95": round(percentile(plain, 0.95), 3)},
        "audited_ms": {"p50": round(statistics.median(audited), 3), "p95": round(percentile(audited, 0.95), 3)},
    }
    result["added_ms"] = {
        "p50": round(result["audited_ms"]["p50"] - result["plain_ms"]["p50"], 3),
        "p95": round(result["audited_ms"]["p95"] - result["plain_ms"]["p95"], 3),
    }

    concurrency = {}
    for count in thread_counts:
        per_thread, latencies, lock = max(50, runs // (2 * count)), [], threading.Lock()

        def appender(per_thread=per_thread, latencies=latencies, lock=lock):
            mine = [write(True) for _ in range(per_thread)]
            with lock:
                latencies.extend(mine)
            connections.close_all()

        threads = [threading.Thread(target=appender) for _ in range(count)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        concurrency[count] = {
            "events_per_s": round(count * per_thread / elapsed),
            "p95_ms": round(percentile(latencies, 0.95), 3),
        }
        print(f"  {count} threads: {concurrency[count]}", flush=True)
    result["concurrent_writers"] = concurrency
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--prefill", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--skip-append", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine_description()}
    if not args.skip_append:
        setup_django("audit")
        from django.db import connection

        result["postgresql"] = connection.cursor().connection.info.server_version
        prefill(args.prefill)
        print("(a) append latency", flush=True)
        result["append"] = bench_append(args.runs, args.threads)
        print(json.dumps(result["append"], indent=2), flush=True)
    if not args.skip_verify:
        print("(b) verification", flush=True)
        result["verify"] = bench_verify(args.events)
    text = json.dumps(result, indent=2)
    (OUT / "audit_append.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
