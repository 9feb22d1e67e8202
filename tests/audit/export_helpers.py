"""Shared by the export and offline-verification tests: a chain with real events, its exports, and
rewriting a ZIP the way someone who tampers with an export would."""

import zipfile
from pathlib import Path

from registry.audit.context import actor_for_user, actor_worker
from registry.audit.export import audit_export_request, audit_export_start
from registry.audit.services import audit_checkpoint
from registry.models import AuditEvent
from registry.storage import get_blob_store
from tests.audit.helpers import record

NAMESPACES = ("acme", "globex")


def record_events(user, count: int = 12) -> list[AuditEvent]:
    """Events in two namespaces, interleaved, with awkward text, a nested "evidence" key and a signed
    checkpoint in the middle; returns them in seq order."""
    events = []
    for index in range(count):
        namespace = NAMESPACES[index % 2]
        events.append(
            record(
                type=("version.status", "job.claim", "adapter.upload")[index % 3],
                adapter=f"{namespace}/bot-{index % 3}",
                object_id=f"v{index}",
                before={"status": "checking"},
                after={"status": "ready", "note": 'quotes " and \\ backslashes,\nnew lines, ünïcödé, 🚀'},
                reason=f'step {index}: ok, "done"\r\n',
                evidence={"checks": ["static", "dynamic"], "loss": "1.25", "index": index},
                actor=actor_for_user(user) if index % 2 else actor_worker("gpu-1@host"),
            )
        )
        if index == count // 2:
            events.append(audit_checkpoint())
    # "evidence" as a nested key before the top-level one: the line is re-encoded, not spliced.
    events.append(record(type="policy.set", namespace="acme", after={"a": 1, "evidence": {"b": 2}}))
    return events


def export_zip(user, tmp_path: Path, name: str = "export.zip", **filters) -> Path:
    """Request and build an export as the API does; its ZIP copied to tmp_path/name."""
    export = audit_export_start(audit_export_request(user=user, filters=filters, registry_url="http://testserver"))
    assert export.state == "done", export.error
    target = tmp_path / name
    with get_blob_store().open(export.sha256) as source:
        target.write_bytes(source.read())
    return target


def rewrite(source: Path, target: Path, replacements: dict) -> Path:
    """A copy of the ZIP with members replaced (bytes), removed (None) or added, as someone who
    unzips, edits and zips again would make it."""
    names = dict(replacements)
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in original.infolist():
            if info.filename in names:
                if names[info.filename] is not None:
                    copy.writestr(info.filename, names[info.filename])
            else:
                copy.writestr(info.filename, original.read(info.filename))
        for name, data in names.items():
            if name not in original.namelist() and data is not None:
                copy.writestr(name, data)
    return target


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)
