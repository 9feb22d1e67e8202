"""Audit export and offline verification with 1,000,000 events in the chain.

Target (issue 10): exporting and verifying 1,000,000 events each take under 30 s on one core.

The chain is topped up to --events with synthetic events: bodies built and hashed in Python
exactly as registry/audit/services.py chains them, then COPYed into registry_auditevent with
the append-only trigger in place (it refuses UPDATE, DELETE and TRUNCATE, not inserts), and the
chain head moved to the last one; kept between runs. Half the events are in namespace `acme`,
half in `globex`, interleaved, every 1000th is a signed checkpoint.

Then, each pinned to one CPU core (sched_setaffinity; PostgreSQL is a separate server process):
- a full export (registry.audit.export.export_build: the ZIP with events.jsonl, events.csv,
  summary.pdf, manifest.json and its signature) of every event;
- `python -m registry.audit.verify EXPORT.zip --public-key KEY.pem` on it, in a fresh interpreter;
- the same two for a filtered export (namespace acme: half the events, the other half omitted).
Run: .venv/bin/python benchmarks/audit_export.py [--events 1000000] [--repeats 1]
     (DATABASE_URL=... for a PostgreSQL server; else the embedded one under benchmarks/out/)
"""

import argparse
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import OUT, ROOT, machine_description, setup_django

NAMESPACES = ("acme", "globex")
# What the registry writes most: status moves, job claims and finishes, uploads, checks.
TYPES = (
    ("version.status", {"status": "checking"}, {"status": "ready"}, {"checks": ["static", "dynamic"]}),
    ("job.claim", {"state": "queued"}, {"state": "running"}, None),
    ("job.finish", {"state": "running"}, {"state": "succeeded"}, {"loss": "1.2345", "perplexity": "3.4361"}),
    ("adapter.upload", None, {"number": 3, "status": "received"}, {"files": 2, "bytes": 123456}),
    ("check.record", None, {"kind": "dynamic", "verdict": "pass"}, {"reasons": []}),
)
ACTORS = (
    ("user", "3", "alice", "engineer", ""),
    ("token", "3", "alice", "engineer", "sha256:0f1e2d3c4b5a6978"),
    ("worker", "gpu-1@host", "gpu-1@host", "", ""),
    ("system", "registry", "registry", "", ""),
)
COLUMNS = (
    "id, seq, time, type, actor_kind, actor_id, actor_name, actor_role, token_id, request_id, client_address, "
    "object_type, object_id, object_digest, namespace, adapter, before, after, reason, evidence, outcome, "
    "prev_hash, entry_hash, body"
)
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _copy_text(value) -> str:
    """A value in COPY's text format (the synthetic values hold no tab, newline or backslash)."""
    return "\\N" if value is None else str(value)


def _synthetic_event(seq: int, prev_hash: str, moment: float, key, checkpoint_seq: int | None) -> dict:
    from registry.audit.checkpoint import ALGORITHM, checkpoint_payload, sign_checkpoint
    from registry.audit.services import rfc3339

    namespace = NAMESPACES[seq % 2]
    adapter = f"{namespace}/bot-{seq % 7}"
    kind, actor_id, actor_name, role, token_id = ACTORS[seq % len(ACTORS)]
    event_type, before, after, evidence = TYPES[seq % len(TYPES)]
    object_type, object_digest = "adapter_version", hashlib.sha256(adapter.encode()).hexdigest()
    reason = "checks passed" if event_type == "version.status" else ""
    if checkpoint_seq is not None:
        namespace = adapter = reason = ""
        kind, actor_id, actor_name, role, token_id = ACTORS[3]
        payload = checkpoint_payload(seq=checkpoint_seq, head_hash=prev_hash, time=rfc3339(_utc(moment)))
        event_type, before, after = "audit.checkpoint", None, None
        object_type, object_digest = "audit_chain", prev_hash
        evidence = {"payload": payload, "signature": sign_checkpoint(key[0], payload), "key_id": key[1]}
        evidence["algorithm"] = ALGORITHM
    return {
        "id": f"00000000-0000-4000-8000-{seq:012x}",
        "seq": seq,
        "time": rfc3339(_utc(moment)),
        "type": event_type,
        "actor_kind": kind,
        "actor_id": actor_id,
        "actor_name": actor_name,
        "actor_role": role,
        "token_id": token_id,
        "request_id": f"{seq:032x}",
        "client_address": "10.0.0.7" if kind in ("user", "token") else "",
        "object_type": object_type,
        "object_id": str(checkpoint_seq) if checkpoint_seq else f"00000000-0000-4000-9000-{seq % 9973:012x}",
        "object_digest": object_digest,
        "namespace": namespace,
        "adapter": adapter,
        "before": before,
        "after": after,
        "reason": reason,
        "evidence": evidence,
        "outcome": "success",
        "prev_hash": prev_hash,
    }


def _utc(moment: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC)


def populate(target: int) -> None:
    """Append synthetic events (and a checkpoint every 1000) until the chain holds `target`."""
    from cryptography.hazmat.primitives import serialization
    from django.db import connection, transaction

    from registry.audit.chain import body_hash
    from registry.models import AuditChainHead
    from registry.signing.keys import active_key

    signing = active_key()
    key = (serialization.load_pem_private_key(signing.path.read_bytes(), password=None), signing.key_id)
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        seq, prev_hash = head.seq, head.head_hash
        if seq >= target:
            return
        start, moment = time.perf_counter(), time.time() - (target - seq) / 1000
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY registry_auditevent ({COLUMNS}) FROM STDIN") as copy:
                buffer = io.StringIO()
                while seq < target:
                    seq += 1
                    moment += 0.001
                    checkpoint_seq = seq - 1 if seq % 1000 == 0 else None
                    event = _synthetic_event(seq, prev_hash, moment, key, checkpoint_seq)
                    body = _encode(event)
                    entry_hash = body_hash(prev_hash, body.encode())
                    row = [event[name] for name in COLUMNS.split(", ")[:16]]
                    row[2] = event["time"]
                    row += [_json_column(event["before"]), _json_column(event["after"]), event["reason"]]
                    row += [_json_column(event["evidence"]), "success", prev_hash, entry_hash, body]
                    buffer.write("\t".join(map(_copy_text, row)) + "\n")
                    prev_hash = entry_hash
                    if seq % 20000 == 0:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                        print(f"\r  generated {seq:,} events", end="", file=sys.stderr, flush=True)
                copy.write(buffer.getvalue())
        AuditChainHead.objects.filter(pk=1).update(seq=seq, head_hash=prev_hash)
    print(f"\n  generated up to #{seq:,} in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def _json_column(value):
    return None if value is None else _encode(value)


# --- Measuring ---------------------------------------------------------------------------------


def _backend_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend (when it runs on this machine and /proc shows it)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_export(path: Path, filters: dict, up_to_seq: int) -> dict:
    from registry.audit.export import export_write

    path.unlink(missing_ok=True)
    backend_before = _backend_cpu_seconds()
    wall, cpu = time.perf_counter(), time.process_time()
    result = export_write(path, filters=filters, up_to_seq=up_to_seq)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    backend_after = _backend_cpu_seconds()
    return {
        "events_exported": result.exported,
        "events_omitted": result.omitted,
        "zip_bytes": path.stat().st_size,
        "events_jsonl_bytes": result.files["events.jsonl"]["size"],
        "events_csv_bytes": result.files["events.csv"]["size"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "postgres_backend_cpu_s": None if backend_before is None else round(backend_after - backend_before, 2),
    }


def measure_verify(path: Path, public_key: Path, core: int) -> dict:
    """`python -m registry.audit.verify` in a fresh interpreter pinned to `core`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "registry.audit.verify", str(path), "--public-key", str(public_key), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"verification failed: {done.stderr}")
    report = json.loads(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"verified_events": report["exported"], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--core", type=int, default=None, help="the CPU to pin to (default: the last one)")
    args = parser.parse_args()
    setup_django("audit_export")
    from registry.models import AuditChainHead
    from registry.signing.keys import active_key

    populate(args.events)
    up_to_seq = AuditChainHead.objects.get(pk=1).seq
    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    public_key = OUT / "audit-export-registry.pem"
    public_key.write_text(active_key().public_key_pem)
    runs = []
    for repeat in range(args.repeats):
        for label, filters in (("full", {}), ("filtered: namespace acme", {"namespace": "acme"})):
            path = OUT / f"audit-export-{label.split(':')[0]}.zip"
            load = os.getloadavg()[0]
            export = measure_export(path, filters, up_to_seq)
            verify = measure_verify(path, public_key, core)
            runs.append({"run": repeat + 1, "export": label, "load_1min": round(load, 2), **export, "verify": verify})
            print(
                f"{label:<25} export {export['wall_s']:6.2f} s (cpu {export['cpu_s']:.2f} s, PostgreSQL "
                f"{export['postgres_backend_cpu_s']} s)  verify {verify['wall_s']:6.2f} s (cpu {verify['cpu_s']:.2f} s)  "
                f"{export['events_exported']:,} exported, {export['events_omitted']:,} omitted, "
                f"ZIP {export['zip_bytes'] / 1e6:.0f} MB  (load {load:.1f})",
                flush=True,
            )
            path.unlink()
    summary = {"machine": machine_description(), "core": core, "chain_events": up_to_seq, "runs": runs}
    (OUT / "audit_export.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
