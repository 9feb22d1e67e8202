"""Audit exports: the ZIP's contents, filtered exports, the API, the task on the cpu queue, and the audit of exporting."""

import base64
import csv
import io
import json
import re
import zipfile
import zlib

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry.audit.export import CSV_COLUMNS, audit_export_request
from registry.audit.services import audit_event_data
from registry.audit.verify import verify_export
from registry.models import AuditEvent, RegistryKey
from registry.signing.keys import active_key
from tests.audit.export_helpers import export_zip, member, record_events

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
