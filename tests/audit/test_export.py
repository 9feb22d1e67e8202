"""Audit exports: the ZIP's contents, filtered exports, the API, the task on the cpu queue, and the audit of exporting."""

import base64
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
import zlib

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.audit.context import acting_as, actor_system
from registry.audit.export import CSV_COLUMNS, audit_export_request
from registry.audit.export_tasks import build_audit_export
from registry.audit.services import audit_event_data
from registry.audit.verify import verify_export
from registry.models import AuditEvent, AuditExport, PromotionRequest, RegistryKey
from registry.services.promotions import promotion_execute
from registry.signing.keys import active_key
from tests.audit.export_helpers import export_zip, member, record_events
from tests.workers.conftest import WorkerPool, purge_queues

pytestmark = pytest.mark.django_db


def test_an_export_holds_the_events_as_hashed(bob, tmp_path):
    events = record_events(bob)
    path = export_zip(bob, tmp_path)
    chain = [audit_event_data(e) for e in AuditEvent.objects.order_by("seq")]
    chain = [e for e in chain if e["type"] != "audit.export"]
    lines = member(path, "events.jsonl").decode().splitlines()
    # Each line is exactly the RFC 8785 canonical JSON of the event with its entry_hash.
    assert lines == [rfc8785.dumps(event).decode() for event in chain]
    assert events[-1].seq == chain[-1]["seq"]
    manifest = json.loads(member(path, "manifest.json"))
    assert manifest["range"] == {
        "first_seq": chain[0]["seq"],
        "last_seq": chain[-1]["seq"],
        "prev_hash": chain[0]["prev_hash"],
        "last_entry_hash": chain[-1]["entry_hash"],
    }
    assert manifest["omitted"] == [] and manifest["events"] == {"exported": len(chain), "omitted": 0}
    report = verify_export(path)
    assert (report.exported, report.omitted, report.checkpoint_events) == (len(chain), 0, 1)
    assert report.checkpoint_covers


def test_the_manifest_is_signed_with_the_registry_key_and_lists_every_file(bob, tmp_path):
    record_events(bob, count=4)
    path = export_zip(bob, tmp_path)
    manifest_bytes = member(path, "manifest.json")
    manifest = json.loads(manifest_bytes)
    key = active_key()
    assert manifest["key_id"] == key.key_id
    public_key = serialization.load_pem_public_key(key.public_key_pem.encode())
    public_key.verify(member(path, "manifest.sig"), manifest_bytes, ec.ECDSA(hashes.SHA256()))  # raw DER
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    keys = {f"keys/{row.key_id}.pem" for row in RegistryKey.objects.all()}
    assert names == {"events.jsonl", "events.csv", "summary.pdf", "README.txt", "manifest.json", "manifest.sig", *keys}
    assert set(manifest["files"]) == names - {"manifest.json", "manifest.sig"}
    assert member(path, f"keys/{key.key_id}.pem").decode() == key.public_key_pem


def test_the_csv_has_its_documented_columns(bob, tmp_path):
    record_events(bob, count=6)
    path = export_zip(bob, tmp_path)
    rows = list(csv.DictReader(io.StringIO(member(path, "events.csv").decode(), newline="")))
    lines = [json.loads(line) for line in member(path, "events.jsonl").splitlines()]
    assert list(rows[0]) == [name for name, _, _ in CSV_COLUMNS]
    assert len(rows) == len(lines)
    for row, event in zip(rows, lines, strict=True):
        for name, _, _ in CSV_COLUMNS:
            if name in ("before", "after", "evidence"):
                assert (json.loads(row[name]) if row[name] else None) == event[name]
            else:
                assert row[name] == str(event[name]), name


def _pdf_text(pdf: bytes) -> str:
    """The text drawn on the pages: reportlab writes each page's content ASCII85- and Flate-encoded."""
    text = b""
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        if stream.rstrip().endswith(b"~>"):
            text += zlib.decompress(base64.a85decode(stream.strip(), adobe=True))
    return text.replace(b"\\(", b"(").replace(b"\\)", b")").decode("latin-1")


def test_the_summary_names_each_adapter_and_who_did_what(bob, tmp_path):
    record_events(bob, count=6)
    pdf = member(export_zip(bob, tmp_path), "summary.pdf")
    assert pdf.startswith(b"%PDF")
    text = _pdf_text(pdf)
    for adapter in ("acme/bot-0", "globex/bot-1", "acme/bot-2"):
        assert f"({adapter})" in text
    assert "bob (user)" in text and "gpu-1@host (worker)" in text
    assert "Events not tied to an adapter" in text  # the checkpoint, the policy event


def test_a_filtered_export_lists_what_it_leaves_out(bob, tmp_path):
    events = record_events(bob)
    path = export_zip(bob, tmp_path, namespace="acme")
    lines = [json.loads(line) for line in member(path, "events.jsonl").splitlines()]
    assert {event["namespace"] for event in lines} == {"acme"}
    assert [e["seq"] for e in lines] == [e.seq for e in events if e.namespace == "acme"]
    manifest = json.loads(member(path, "manifest.json"))
    inside = [e for e in events if lines[0]["seq"] <= e.seq <= lines[-1]["seq"]]
    assert manifest["omitted"] == [[e.seq, e.entry_hash] for e in inside if e.namespace != "acme"]
    assert manifest["filters"] == {"namespace": "acme"}
    readme = member(path, "README.txt").decode()
    assert f"{len(manifest['omitted'])} in between left out by the filters" in readme
    assert "WHAT A FILTERED EXPORT PROVES, AND WHAT IT DOES NOT" in readme
    report = verify_export(path)
    assert (report.exported, report.omitted) == (len(lines), len(manifest["omitted"]))


def test_an_export_with_no_matching_event_verifies(bob, tmp_path):
    record_events(bob, count=2)
    path = export_zip(bob, tmp_path, namespace="nobody")
    assert member(path, "events.jsonl") == b""
    assert json.loads(member(path, "manifest.json"))["range"] is None
    assert verify_export(path).exported == 0


def test_exporting_is_audited_in_the_same_transaction(bob):
    record_events(bob, count=2)
    export = audit_export_request(user=bob, filters={"namespace": "acme"})
    event = AuditEvent.objects.get(type="audit.export", object_id=str(export.id))
    assert (event.actor_name, event.namespace, event.after["filters"]) == ("bob", "acme", {"namespace": "acme"})
    # The export covers what was recorded before its own event, which is never part of it.
    assert export.up_to_seq == event.seq - 1


# --- The API -----------------------------------------------------------------------------------


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_the_api_exports_for_auditors_and_admins_only(alice_client, bob, carol, tmp_path):
    record_events(bob, count=4)
    refused = alice_client.post("/api/v1/audit/exports", {}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert not AuditExport.objects.exists()
    for user in (bob, carol):
        response = client_for(user).post("/api/v1/audit/exports", {"namespace": "acme"}, format="json")
        assert response.status_code == 202, response.content
        body = response.json()
        assert (body["state"], body["progress"], body["filters"]) == ("done", 1.0, {"namespace": "acme"})
        assert body["requested_by"] == user.username and body["events_exported"] > 0
        assert response["Location"] == f"/api/v1/audit/exports/{body['id']}"
        assert client_for(user).get(response["Location"]).json() == body
    download = client_for(bob).get(body["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == body["sha256"] and len(data) == body["size"]
    (tmp_path / "download.zip").write_bytes(data)
    assert verify_export(tmp_path / "download.zip").filters == {"namespace": "acme"}
    assert alice_client.get(body["download_url"]).status_code == 403


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"nope": "1"}, "unknown_filter"),
        ({"adapter": "no-slash"}, "invalid_name"),
        ({"after": "yesterday"}, "validation_error"),
        ({"outcome": "maybe"}, "validation_error"),
        (["namespace", "acme"], "validation_error"),
    ],
)
def test_the_api_refuses_what_it_cannot_filter_by(bob, body, code):
    response = client_for(bob).post("/api/v1/audit/exports", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert not AuditExport.objects.exists()


def test_an_unknown_or_unfinished_export_is_not_downloaded(bob):
    api = client_for(bob)
    missing = api.get(f"/api/v1/audit/exports/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "audit_export_not_found"
    queued = audit_export_request(user=bob, filters={})
    body = api.get(f"/api/v1/audit/exports/{queued.id}").json()
    assert (body["state"], body["download_url"]) == ("queued", None)
    refused = api.get(f"/api/v1/audit/exports/{queued.id}/download")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "export_not_ready"


def test_a_large_export_is_queued_for_the_cpu_queue(bob, settings, django_capture_on_commit_callbacks, tmp_path):
    settings.AUDIT_EXPORT_SYNC_MAX_EVENTS = 3
    record_events(bob, count=4)
    with django_capture_on_commit_callbacks() as sent:
        response = client_for(bob).post("/api/v1/audit/exports", {}, format="json")
    assert response.status_code == 202
    assert (response.json()["state"], response.json()["download_url"]) == ("queued", None)
    assert len(sent) == 1
    # What a worker runs for that message (test_a_worker_builds_a_large_export runs a real one).
    assert build_audit_export(response.json()["id"]) == "done"
    assert build_audit_export(response.json()["id"]) == "done"  # a redelivered message builds nothing twice
    export = AuditExport.objects.get()
    assert export.events_done == export.events_total == export.events_exported + export.events_omitted


# --- A real worker and adapterctl --------------------------------------------------------------


@pytest.fixture
def cpu_worker(transactional_db, tmp_path):
    purge_queues()
    workers = WorkerPool(tmp_path)
    workers.start("audit-cpu", queues="cpu")  # only the cpu queue: the export task must be routed there
    yield workers
    workers.stop()


def test_a_worker_builds_a_large_export_and_adapterctl_downloads_it(cpu_worker, live_server, bob, settings, tmp_path):
    settings.AUDIT_EXPORT_SYNC_MAX_EVENTS = 0
    record_events(bob, count=6)
    env = {
        **os.environ,
        "ADAPTER_REGISTRY_URL": live_server.url,
        "ADAPTER_REGISTRY_TOKEN": Token.objects.get_or_create(user=bob)[0].key,
    }

    def adapterctl(*args):
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", "audit", *args], capture_output=True, text=True, env=env, timeout=180
        )

    out = tmp_path / "acme.zip"
    exported = adapterctl("export", "--namespace", "acme", "--out", str(out), "--interval", "0.2")
    assert exported.returncode == 0, exported.stderr + cpu_worker.logs()
    export = AuditExport.objects.get()
    assert export.state == "done" and export.started_at is not None
    # The progress line, shown while the worker had it: queued, or running if the worker was quicker.
    assert re.search(rf"export {export.id}: (queued|running) \d+%", exported.stderr), exported.stderr
    assert str(out) in exported.stdout and f"sha256:{export.sha256}" in exported.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() == export.sha256
    registry_pem = tmp_path / "registry.pem"
    registry_pem.write_text(active_key().public_key_pem)
    verified = adapterctl("verify", str(out), "--public-key", str(registry_pem))
    assert verified.returncode == 0, verified.stderr
    assert f"{export.events_exported} exported" in verified.stdout

    listed = adapterctl("--json", "events", "--type", "audit.export")
    assert listed.returncode == 0, listed.stderr
    assert [event["object_id"] for event in json.loads(listed.stdout)] == [str(export.id)]
    table = adapterctl("events", "--namespace", "acme", "--limit", "3")
    assert table.returncode == 0 and table.stdout.count("\n") == 4 and "audit_export" in table.stdout


def _promotion_history(alice_client, dave_client, erin_client, ready) -> None:
    """acme/bot through the API: v1 to production (approved by dave), v3 to staging (no approval), a canary
    of v2 ramped and promoted, a rollback, and a request for v3 that erin rejects."""
    v1, v2, v3 = ready

    def asked(version, alias="production", **extra) -> str:
        body = {"version": version.ref, "alias": alias, "reason": f"asked for {version.ref}", **extra}
        created = alice_client.post("/api/v1/promotions", body, format="json")
        assert created.status_code == 201, created.content
        return created.json()["id"]

    def approved_and_run(request_id: str) -> None:
        assert dave_client.post(f"/api/v1/promotions/{request_id}/approve", {"comment": "gates green"},
                                format="json").status_code == 200  # fmt: skip
        with acting_as(actor_system("promotions")):  # as the cpu-queue task runs it
            assert promotion_execute(request_id).state == "executed"

    approved_and_run(asked(v1))
    staging = asked(v3, "staging")  # no approval needed: approved at once
    with acting_as(actor_system("promotions")):
        assert promotion_execute(staging).state == "executed"
    approved_and_run(asked(v2, canary_weight=10))
    canary = "/api/v1/adapters/acme/bot/aliases/production/canary"
    for step in (
        {"action": "ramp", "weight": 50, "reason": "healthy"},
        {"action": "promote", "reason": "still healthy"},
    ):
        assert dave_client.post(canary, step, format="json").status_code == 200
    rollback = "/api/v1/adapters/acme/bot/aliases/production/rollback"
    assert dave_client.post(rollback, {"reason": "errors up 3x"}, format="json").status_code == 200
    rejected = asked(v3)
    no = erin_client.post(f"/api/v1/promotions/{rejected}/reject", {"reason": "wait for the fix"}, format="json")
    assert no.status_code == 200


def test_the_summary_holds_each_adapters_alias_history_and_approvals_from_the_events(
    bob, alice_client, dave_client, erin_client, ready, tmp_path
):
    _promotion_history(alice_client, dave_client, erin_client, ready)
    requests = {r.version.number: r for r in PromotionRequest.objects.filter(alias="production", kind="promote")}
    text = _pdf_text(member(export_zip(bob, tmp_path), "summary.pdf"))

    assert "Alias history, from the events (newest first)" in text
    # Each move: alias, from, to, kind, who, reason, and its request when it had one.
    moves = ("(staging)", "(nothing)", "(v1 + v2 at 10%)", "(v1 + v2 at 50%)", "(canary_start)", "(canary_ramp)",
             "(canary_promote)", "(rollback)", "(errors up 3x)", "(dave (token))", "(promotions (system))")  # fmt: skip
    for cell in (*moves, f"({str(requests[1].id)[:8]})"):
        assert cell in text, cell
    # Newest first: the rollback is listed before the first promotion.
    assert text.index("(errors up 3x)") < text.index("(asked for acme/bot:v1)")
    assert "Promotion requests and approvals, from the events (newest first)" in text
    decisions = ("(alice (token))", "(dave: approve)", "(erin: reject)", "(rejected)", "(executed)",
                 "(dave: gates green)", "(erin: wait for the fix)", "(production promote v3)", "(staging promote v3)")  # fmt: skip
    for cell in decisions:
        assert cell in text, cell

    # Built from the exported events: an export of the alias moves alone has no requests to show.
    moves_only = _pdf_text(member(export_zip(bob, tmp_path, name="moves.zip", type="alias.move"), "summary.pdf"))
    assert "(canary_ramp)" in moves_only and "Promotion requests and approvals" not in moves_only
