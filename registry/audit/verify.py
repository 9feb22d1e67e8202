"""Offline verification of an audit export ZIP, with no Django import: stdlib, rfc8785, cryptography.

    python -m registry.audit.verify EXPORT.zip [--public-key REGISTRY.pem] [--json]
    adapterctl audit verify EXPORT.zip [--public-key REGISTRY.pem]      (the same function)

Checks, in this order, and stops at the first that fails, naming the file or the event (seq):
1. manifest.sig is an ECDSA/SHA-256 signature (DER) of the exact bytes of manifest.json, made by
   --public-key when given (a copy of the registry's key obtained separately), else by the key
   the manifest names, read from keys/ inside the ZIP (which proves integrity, not origin);
2. every file the manifest lists has its SHA-256 and size, and every keys/<id>.pem is the key
   whose fingerprint is <id>;
3. the ZIP holds exactly those files, manifest.json and manifest.sig: none missing, none extra;
4. events.jsonl parses, one JSON object a line;
5. sequence numbers run from the range's first to its last without gaps, except for the events
   the manifest lists as omitted (a filtered export);
6. the hash chain: each exported event hashes to its entry_hash and links to the previous one;
   across omitted events, to the entry_hash the manifest lists for them;
7. the range's ends: the first event links to the manifest's prev_hash, the last ends in its
   last_entry_hash;
8. checkpoints: every signed checkpoint event in the export, and the manifest's checkpoint, is
   signed by a registry key and vouches for the same chain (the manifest's checkpoint "covers"
   the export when the state it signs is inside the range).

If events.jsonl does not match its hash, the events are still walked so that the one line
printed names the first event that does not verify as well as the file.
"""

import argparse
import hashlib
import json
import sys
import zipfile
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry.audit import chain
from registry.audit.checkpoint import checkpoint_signature_valid

FORMAT = "adapter-registry-audit-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
EVENTS = "events.jsonl"
CHECKPOINT_TYPE = "audit.checkpoint"
KEYS_DIR = "keys/"
_CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")


class VerificationFailed(Exception):
    """The first check that failed: `where` is a file or "event <seq>" in events.jsonl."""

    def __init__(self, where: str, message: str, *, seq: int | None = None):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        self.seq = seq


@dataclass
class Report:
    """What a successful verification established, for the summary and --json."""

    export_id: str | None = None
    created_at: str | None = None
    registry: dict = field(default_factory=dict)
    filters: dict = field(default_factory=dict)
    key_id: str = ""
    key_source: str = ""  # "given" (--public-key) or "zip" (keys/ inside the export)
    files: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_entry_hash: str | None = None
    exported: int = 0
    omitted: int = 0
    checkpoint_events: int = 0
    checkpoint: str = "none"  # what the manifest's checkpoint proves, in words
    checkpoint_covers: bool = False


def _is_hash(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and not set(value) - _HEX


def _fingerprint(public_key) -> str:
    """The registry's key id: SHA-256 of the key's PEM SubjectPublicKeyInfo, hex (as GET /api/v1/keys)."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _load_public_key(pem: bytes, where: str):
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise VerificationFailed(where, f"not a PEM public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationFailed(where, "not an ECDSA public key; the registry signs with ECDSA")
    return key


# --- The ZIP and its manifest ------------------------------------------------------------------


class _Export:
    def __init__(self, path: Path):
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise VerificationFailed(str(path), "no such file") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise VerificationFailed(str(path), f"not a readable ZIP file ({exc})") from None
        names = [info.filename for info in self.zip.infolist()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise VerificationFailed(duplicates[0], "appears more than once in the ZIP")
        self.names = set(names)

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise VerificationFailed(name, "missing from the ZIP")
        try:
            return self.zip.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise VerificationFailed(name, f"the ZIP entry cannot be read ({exc})") from None

    def digest(self, name: str) -> tuple[str, int]:
        sha256, size = hashlib.sha256(), 0
        try:
            with self.zip.open(name) as handle:
                while chunk := handle.read(_CHUNK):
                    sha256.update(chunk)
                    size += len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise VerificationFailed(name, f"the ZIP entry cannot be read ({exc})") from None
        return sha256.hexdigest(), size


def _verify_signature(export: _Export, manifest_bytes: bytes, public_key_pem: bytes | None, report: Report):
    """Check 1: which key signed manifest.json; returns that key."""
    signature = export.read(SIGNATURE)
    if public_key_pem is not None:
        key = _load_public_key(public_key_pem, "--public-key")
        report.key_id, report.key_source = _fingerprint(key), "given"
        problem = f"not a signature of {MANIFEST} by the given public key {report.key_id}"
    else:
        key_id = _claimed_key_id(manifest_bytes)
        pem_name = f"{KEYS_DIR}{key_id}.pem"
        key = _load_public_key(export.read(pem_name), pem_name)
        if _fingerprint(key) != key_id:
            raise VerificationFailed(pem_name, f"holds key {_fingerprint(key)}, not the key {key_id} its name says")
        report.key_id, report.key_source = key_id, "zip"
        problem = f"not a signature of {MANIFEST} by {pem_name}, the key the manifest names"
    try:
        key.verify(signature, manifest_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationFailed(SIGNATURE, problem) from None
    return key


def _claimed_key_id(manifest_bytes: bytes) -> str:
    """The key id the (not yet trusted) manifest names, only to find its key inside the ZIP."""
    try:
        key_id = json.loads(manifest_bytes).get("key_id")
    except (ValueError, AttributeError):
        key_id = None
    if not _is_hash(key_id):
        raise VerificationFailed(MANIFEST, "names no key_id (a SHA-256 hex digest) to check its signature with")
    return key_id


def _parse_manifest(manifest_bytes: bytes, report: Report) -> dict:
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise VerificationFailed(MANIFEST, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise VerificationFailed(MANIFEST, f"not an audit export manifest (format {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise VerificationFailed(
            MANIFEST, f"format_version {manifest.get('format_version')!r}; this verifier reads {FORMAT_VERSION}"
        )
    if report.key_source == "given" and manifest.get("key_id") != report.key_id:
        raise VerificationFailed(MANIFEST, f"names key {manifest.get('key_id')!r} but the given key signed it")
    files = manifest.get("files")
    if not isinstance(files, dict) or EVENTS not in files:
        raise VerificationFailed(MANIFEST, f"lists no files, or not {EVENTS}")
    for name, entry in files.items():
        if name in (MANIFEST, SIGNATURE) or not isinstance(entry, dict) or not _is_hash(entry.get("sha256")):
            raise VerificationFailed(MANIFEST, f"the entry for {name!r} is not {{sha256, size}}")
    report.export_id, report.created_at = manifest.get("export_id"), manifest.get("created_at")
    report.registry, report.filters = manifest.get("registry") or {}, manifest.get("filters") or {}
    return manifest


def _verify_files(export: _Export, manifest: dict, report: Report) -> None:
    """Checks 2 and 3 for every file but events.jsonl, which is hashed while its events are read."""
    files = manifest["files"]
    for name in sorted(files):
        if name not in export.names:
            raise VerificationFailed(name, "listed in the manifest but missing from the ZIP")
        if name == EVENTS:
            continue
        sha256, size = export.digest(name)
        if sha256 != files[name]["sha256"] or size != files[name].get("size"):
            raise VerificationFailed(
                name, f"SHA-256 {sha256} ({size} bytes) does not match the manifest's {files[name]['sha256']}"
            )
        if name.startswith(KEYS_DIR):
            _verify_key_file(export, name)
    extra = sorted(export.names - set(files) - {MANIFEST, SIGNATURE})
    if extra:
        raise VerificationFailed(extra[0], "in the ZIP but not listed in the manifest")
    report.files = len(files)


def _verify_key_file(export: _Export, name: str) -> None:
    key_id = name[len(KEYS_DIR) :].removesuffix(".pem")
    key = _load_public_key(export.read(name), name)
    if _fingerprint(key) != key_id:
        raise VerificationFailed(name, f"holds key {_fingerprint(key)}, not the key {key_id} its name says")


# --- The events --------------------------------------------------------------------------------


@dataclass
class _Range:
    first: int
    last: int
    prev_hash: str
    last_entry_hash: str
    omitted: dict  # seq -> the entry_hash the manifest lists for an event left out by the filters


def _parse_range(manifest: dict) -> _Range | None:
    value, omitted = manifest.get("range"), manifest.get("omitted") or []
    if value is None:
        if omitted or (manifest.get("events") or {}).get("exported"):
            raise VerificationFailed(MANIFEST, "has no range but lists events")
        return None
    try:
        first, last = value["first_seq"], value["last_seq"]
        bounds = _Range(first, last, value["prev_hash"], value["last_entry_hash"], {})
    except (TypeError, KeyError):
        raise VerificationFailed(MANIFEST, "range is not {first_seq, last_seq, prev_hash, last_entry_hash}") from None
    ints = all(isinstance(n, int) and not isinstance(n, bool) for n in (first, last))
    if not ints or not 1 <= first <= last or not _is_hash(bounds.prev_hash) or not _is_hash(bounds.last_entry_hash):
        raise VerificationFailed(MANIFEST, "range has invalid sequence numbers or hashes")
    previous = first - 1
    for pair in omitted:
        valid = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int) and _is_hash(pair[1])
        if not valid or not previous < pair[0] <= last:
            raise VerificationFailed(
                MANIFEST, f"omitted entry {pair!r} is not [seq, entry_hash] in increasing seq order"
            )
        bounds.omitted[pair[0]] = pair[1]
        previous = pair[0]
    return bounds


class _Lines:
    """events.jsonl's lines (without their newline), read in chunks and hashed whole as they go."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256, self.size = hashlib.sha256(), 0
        self.number = 0  # lines handed out so far: the line a failure is on
        self.unterminated = False  # the last line had no newline
        self.checkpoints: list[bytes] = []
        self._lines = self._read()

    def _read(self):
        rest = b""
        while chunk := self.handle.read(_CHUNK):
            self.sha256.update(chunk)
            self.size += len(chunk)
            block = rest + chunk
            lines = block.split(b"\n")
            rest = lines.pop()
            if _CHECKPOINT_MARK in block:  # parsed again (they are rare) once the chain has verified them
                self.checkpoints += [raw for raw in lines if _CHECKPOINT_MARK in raw]
            for raw in lines:
                self.number += 1
                yield raw
        if rest:
            self.unterminated = True
            self.number += 1
            if _CHECKPOINT_MARK in rest:
                self.checkpoints.append(rest)
            yield rest

    def __iter__(self):
        return self._lines

    def drain(self) -> None:
        """Read (and hash) the rest of the file without looking at it."""
        for _ in self._lines:
            pass


_CHECKPOINT_MARK = f'"type":"{CHECKPOINT_TYPE}"'.encode()


class _EventWalk:
    """Checks 4 to 7: chain.verify_lines over each run of consecutive exported events, stepping over
    the omitted events between runs through the hashes the manifest lists for them."""

    def __init__(self, bounds: _Range | None, watched: set[int]):
        self.bounds = bounds
        self.watched = watched  # seqs whose entry_hash the manifest checkpoint's check needs
        self.hashes: dict[int, str] = {}
        self.exported = 0

    def walk(self, lines: _Lines) -> None:
        if self.bounds is None:
            for _ in lines:
                raise VerificationFailed(f"{EVENTS} line {lines.number}", "an event, but the manifest's range is empty")
            return
        bounds, omitted = self.bounds, self.bounds.omitted
        expected, prev_hash = bounds.first, bounds.prev_hash
        stops = sorted({*omitted, *(seq for seq in self.watched if bounds.first <= seq <= bounds.last)})
        while expected <= bounds.last:
            if expected in omitted:
                prev_hash = omitted[expected]
                self._remember(expected, prev_hash)
                expected += 1
                continue
            # The run ends before the next omitted event, at a watched seq, or at the range's end.
            at = bisect_left(stops, expected)
            end = stops[at] - (stops[at] in omitted) if at < len(stops) else bounds.last
            before = lines.number
            prev_hash = self._run(lines, expected, end, prev_hash)
            read = lines.number - before
            self.exported += read
            if read < end - expected + 1:
                self._missing(expected + read)
            self._remember(end, prev_hash)
            expected = end + 1
        for _ in lines:
            raise VerificationFailed(
                f"{EVENTS} line {lines.number}", f"an event after the manifest's range, which ends at {bounds.last}"
            )
        if lines.unterminated:
            raise VerificationFailed(f"{EVENTS} line {lines.number}", "has no newline at its end (truncated)")
        if prev_hash != bounds.last_entry_hash:
            raise VerificationFailed(
                f"{EVENTS} event {bounds.last}",
                f"the chain ends in {prev_hash}, not in the manifest's last_entry_hash {bounds.last_entry_hash}",
            )

    def _run(self, lines: _Lines, first: int, last: int, prev_hash: str) -> str:
        try:
            return chain.verify_lines(islice(lines, last - first + 1), start_prev_hash=prev_hash, start_seq=first)
        except chain.ChainBroken as broken:
            where = f"{EVENTS} event {broken.seq} (line {lines.number})"
            if " is not JSON: " in broken.message:
                problem = broken.message.split(" is not JSON: ", 1)[1]
                raise VerificationFailed(
                    f"{EVENTS} line {lines.number}", f"not valid JSON ({problem}); the file was changed or truncated"
                ) from None
            raise VerificationFailed(where, self._explain(broken, first)) from None

    def _explain(self, broken: chain.ChainBroken, run_first: int) -> str:
        if "does not link" in broken.message and broken.seq == run_first:
            if run_first == self.bounds.first:
                return f"prev_hash does not link to the manifest's range prev_hash {self.bounds.prev_hash}"
            if run_first - 1 in self.bounds.omitted:
                return f"prev_hash does not link to the entry_hash the manifest lists for omitted event {run_first - 1}"
        return broken.message

    def _missing(self, seq: int) -> None:
        last = self.bounds.last
        missing = f"{seq}" if seq == last else f"{seq} to {last}"
        raise VerificationFailed(
            f"{EVENTS} event {seq}",
            f"missing: the file ends after event {seq - 1} but the range ends at {last} "
            f"(event(s) {missing} removed or the file truncated)",
        )

    def _remember(self, seq: int, entry_hash: str) -> None:
        if seq in self.watched:
            self.hashes[seq] = entry_hash


def _walk_events(export: _Export, manifest: dict, bounds: _Range | None, watched: set[int]) -> tuple[_EventWalk, list]:
    """Checks 4 to 7, and the file's hash: when it does not match, the one line says so and names the
    first event that does not verify, if any."""
    walk = _EventWalk(bounds, watched)
    problem = None
    try:
        with export.zip.open(EVENTS) as handle:
            lines = _Lines(handle)
            try:
                walk.walk(lines)
            except VerificationFailed as failure:
                problem = failure
            lines.drain()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise VerificationFailed(EVENTS, f"the ZIP entry cannot be read ({exc})") from None
    expected = manifest["files"][EVENTS]
    if lines.sha256.hexdigest() != expected["sha256"] or lines.size != expected.get("size"):
        first = f"; first problem: {problem}" if problem else ""
        raise VerificationFailed(
            EVENTS,
            f"SHA-256 {lines.sha256.hexdigest()} ({lines.size} bytes) does not match the manifest's "
            f"{expected['sha256']}: the file was changed after the export{first}",
        )
    if problem is not None:
        raise problem
    return walk, [json.loads(raw) for raw in lines.checkpoints]


# --- Checkpoints -------------------------------------------------------------------------------


def _checkpoint_key(export: _Export, key_id, given_key, report: Report) -> bytes:
    if not _is_hash(key_id):
        raise VerificationFailed("checkpoint", f"names no valid key_id ({key_id!r})")
    if report.key_source == "given" and key_id == report.key_id:
        return given_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # keys/ is covered by the manifest's signature (check 2), so a key from there is as
    # trusted as the key that signed the manifest.
    return export.read(f"{KEYS_DIR}{key_id}.pem")


def _verify_checkpoint_event(export: _Export, event: dict, given_key, report: Report, where: str) -> dict:
    """The checkpoint's signature, and its own entry_hash; returns its signed payload."""
    evidence = event.get("evidence") if isinstance(event.get("evidence"), dict) else {}
    payload, signature = evidence.get("payload"), evidence.get("signature")
    if not isinstance(payload, dict) or not isinstance(signature, str):
        raise VerificationFailed(where, "is not a signed checkpoint (evidence has no payload and signature)")
    pem = _checkpoint_key(export, evidence.get("key_id"), given_key, report)
    if not checkpoint_signature_valid(pem, payload, signature):
        raise VerificationFailed(where, f"the checkpoint's signature does not verify with key {evidence.get('key_id')}")
    seq, head = payload.get("seq"), payload.get("head_hash")
    if not isinstance(seq, int) or not _is_hash(head):
        raise VerificationFailed(where, "the checkpoint's payload has no seq and head_hash")
    return payload


def _verify_exported_checkpoints(export: _Export, checkpoints: list[dict], given_key, report: Report) -> None:
    """Every checkpoint event in the export: signed by a registry key, and its head is the chain's
    head just before it (the registry signs the head, then chains the checkpoint after it)."""
    for event in checkpoints:
        if event.get("type") != CHECKPOINT_TYPE:
            continue  # the mark was inside another event's text
        where = f"{EVENTS} event {event['seq']}"
        payload = _verify_checkpoint_event(export, event, given_key, report, where)
        if payload["seq"] == event["seq"] - 1 and payload["head_hash"] != event["prev_hash"]:
            raise VerificationFailed(
                where,
                f"the checkpoint signs head {payload['head_hash']} for event {payload['seq']}, "
                f"but the chain has {event['prev_hash']}",
            )
    report.checkpoint_events = sum(event.get("type") == CHECKPOINT_TYPE for event in checkpoints)


def _verify_manifest_checkpoint(export, manifest, bounds, walk, given_key, report) -> None:
    event = manifest.get("checkpoint")
    if event is None:
        report.checkpoint = "none: the registry had signed no checkpoint that could vouch for this range"
        return
    where = f"{MANIFEST} checkpoint"
    if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
        raise VerificationFailed(where, "is not an event")
    try:
        chain.verify_chain([event], start_prev_hash=event.get("prev_hash"), start_seq=event["seq"])
    except (chain.ChainBroken, ValueError, TypeError) as exc:
        raise VerificationFailed(where, f"does not hash to its entry_hash ({exc})") from None
    payload = _verify_checkpoint_event(export, event, given_key, report, where)
    seq, head = payload["seq"], payload["head_hash"]
    signed = (
        f"checkpoint event {event['seq']} (signed {payload.get('time')}) vouches for head {head[:16]}… at event {seq}"
    )
    if bounds is None:
        report.checkpoint = f"{signed}; the export has no events"
        return
    known = walk.hashes.get(event["seq"])
    if known is not None and known != event["entry_hash"]:
        raise VerificationFailed(where, f"differs from event {event['seq']} in the export")
    at_seq = bounds.prev_hash if seq == bounds.first - 1 else walk.hashes.get(seq)
    if bounds.first - 1 <= seq <= bounds.last:
        if at_seq != head:
            raise VerificationFailed(where, f"{signed}, but the exported chain has {at_seq} there")
        listed = " (the hash the manifest lists for that omitted event)" if seq in bounds.omitted else ""
        report.checkpoint_covers = True
        report.checkpoint = f"{signed}{listed}: the exported chain agrees, covering events up to {seq}"
    elif seq > bounds.last:
        report.checkpoint = f"{signed}: after this export's last event {bounds.last}, so it does not cover the export"
    else:
        report.checkpoint = f"{signed}: before this export's range, so it does not cover the export"


def _checkpoint_watch(manifest: dict) -> set[int]:
    event = manifest.get("checkpoint")
    if not isinstance(event, dict):
        return set()
    payload = (event.get("evidence") or {}).get("payload") if isinstance(event.get("evidence"), dict) else None
    watched = {event.get("seq")}
    if isinstance(payload, dict):
        watched.add(payload.get("seq"))
    return {seq for seq in watched if isinstance(seq, int)}


# --- Entry points ------------------------------------------------------------------------------


def verify_export(path, *, public_key_pem: bytes | None = None) -> Report:
    """Verify the export at `path`; return what was established, or raise VerificationFailed."""
    report = Report()
    export = _Export(Path(path))
    with export.zip:
        manifest_bytes = export.read(MANIFEST)
        given_key = _verify_signature(export, manifest_bytes, public_key_pem, report)
        manifest = _parse_manifest(manifest_bytes, report)
        bounds = _parse_range(manifest)
        _verify_files(export, manifest, report)
        walk, checkpoints = _walk_events(export, manifest, bounds, _checkpoint_watch(manifest))
        _verify_exported_checkpoints(export, checkpoints, given_key, report)
        _verify_manifest_checkpoint(export, manifest, bounds, walk, given_key, report)
    if bounds is not None:
        report.first_seq, report.last_seq, report.last_entry_hash = bounds.first, bounds.last, bounds.last_entry_hash
        report.omitted = len(bounds.omitted)
    report.exported = walk.exported
    counts = manifest.get("events") or {}
    if (counts.get("exported"), counts.get("omitted")) != (report.exported, report.omitted):
        raise VerificationFailed(
            MANIFEST,
            f"counts {counts.get('exported')} exported and {counts.get('omitted')} omitted events, but the export "
            f"holds {report.exported} and lists {report.omitted}",
        )
    return report


def summary(report: Report) -> str:
    """What a successful verification proved, in a few lines."""
    origin = (
        f"made by the given public key {report.key_id}: the export comes from the holder of that key"
        if report.key_source == "given"
        else f"made by keys/{report.key_id}.pem from INSIDE the ZIP: this proves the export is intact and "
        "self-consistent, NOT who made it; pass --public-key with the registry's key obtained separately "
        "(GET /api/v1/keys) to prove its origin"
    )
    where = ", ".join(f"{k}={v}" for k, v in report.registry.items() if v) or "unknown registry"
    filters = ", ".join(f"{k}={v}" for k, v in report.filters.items() if v not in (None, "")) or "none (everything)"
    if report.first_seq is None:
        events = "none (the range is empty)"
    else:
        events = f"{report.exported} exported, seq {report.first_seq} to {report.last_seq}"
        events += f", {report.omitted} omitted by the filters" if report.omitted else ", none omitted"
    chain_line = (
        f"every exported event hashes to its entry_hash and links to the one before (across omitted events through "
        f"the hashes the manifest lists); the chain ends in {report.last_entry_hash}"
        if report.first_seq is not None
        else "nothing to check"
    )
    return "\n".join(
        [
            f"OK: audit export {report.export_id or ''} verified".replace("  ", " "),
            f"  made:        {report.created_at or 'unknown time'} by {where}",
            f"  filters:     {filters}",
            f"  signature:   manifest.sig verifies, {origin}",
            f"  files:       {report.files} files match their SHA-256 in the manifest; none missing or extra",
            f"  events:      {events}",
            f"  chain:       {chain_line}",
            f"  checkpoints: {report.checkpoint_events} checkpoint event(s) in the export verified; "
            f"manifest checkpoint: {report.checkpoint}",
        ]
    )


def run(path, public_key: str | None = None, *, as_json: bool = False, out=None, err=None) -> int:
    """Verify and print: the summary (exit 0), or one line naming the first failure (exit 1)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        pem = Path(public_key).read_bytes() if public_key else None
    except OSError as exc:
        print(f"--public-key: cannot read {public_key}: {exc.strerror}", file=err)
        return 2
    try:
        report = verify_export(path, public_key_pem=pem)
    except VerificationFailed as failure:
        line = " ".join(str(failure).split())
        if as_json:
            print(json.dumps({"verified": False, "where": failure.where, "message": failure.message}), file=out)
        print(f"FAILED: {line}", file=err)
        return 1
    print(json.dumps({"verified": True, **asdict(report)}, indent=2) if as_json else summary(report), file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m registry.audit.verify",
        description="Verify an audit export ZIP offline: signature, file hashes, sequence, hash chain, checkpoints.",
    )
    parser.add_argument("export", help="the export ZIP")
    parser.add_argument(
        "--public-key",
        metavar="PEM",
        help="the registry's public key, obtained separately (GET /api/v1/keys); it must be the key that signed",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    args = parser.parse_args(argv)
    return run(args.export, args.public_key, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
