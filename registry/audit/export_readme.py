"""README.txt of an audit export: what it holds and how to verify it step by step, by hand or with
`python -m registry.audit.verify`. Written per export, so it names this export's key and range."""

from textwrap import dedent

VERIFY_SCRIPT = r"""
import hashlib, json, sys
manifest = json.load(open("manifest.json"))
omitted = {seq: entry_hash for seq, entry_hash in manifest["omitted"]}
span = manifest["range"]
if span is None:
    sys.exit("no events in this export")
prev, expected = span["prev_hash"], span["first_seq"]
for number, line in enumerate(open("events.jsonl", "rb"), 1):
    event = json.loads(line)
    while expected in omitted and event["seq"] > expected:   # step over omitted events
        prev, expected = omitted[expected], expected + 1
    member = b',"entry_hash":"' + event["entry_hash"].encode() + b'"'
    body = line.rstrip(b"\n").replace(member, b"", 1)        # the bytes the chain hashed
    assert event["seq"] == expected, f"line {number}: seq {event['seq']}, expected {expected}"
    assert event["prev_hash"] == prev, f"event {expected}: prev_hash does not link"
    assert hashlib.sha256(bytes.fromhex(prev) + body).hexdigest() == event["entry_hash"], \
        f"event {expected}: entry_hash does not match its content"
    prev, expected = event["entry_hash"], expected + 1
while expected in omitted:
    prev, expected = omitted[expected], expected + 1
assert expected == span["last_seq"] + 1, f"events end at {expected - 1}, not {span['last_seq']}"
assert prev == span["last_entry_hash"], "the chain does not end in last_entry_hash"
print("chain OK:", span["first_seq"], "to", span["last_seq"])
"""


def _filters_text(meta: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in meta["filters"].items()) or "none: every event"


def _range_text(result) -> str:
    if result.first_seq is None:
        return "No event matched: events.jsonl is empty and the manifest's range is null."
    text = f"Events {result.first_seq} to {result.last_seq} of the chain: {result.exported} exported in events.jsonl"
    if not result.omitted:
        return text + ", none left out in between."
    return text + (
        f", and {result.omitted} in between left out by the filters; the manifest lists each of those as\n"
        '[seq, entry_hash] under "omitted".'
    )


def _checkpoint_text(checkpoint: dict | None, result) -> str:
    if checkpoint is None:
        return "The registry had signed no checkpoint that could vouch for this range when the export was made."
    payload = (checkpoint.get("evidence") or {}).get("payload") or {}
    seq = payload.get("seq")
    covers = result.first_seq is not None and result.first_seq - 1 <= (seq or 0) <= result.last_seq
    return (
        f"manifest.json holds checkpoint event {checkpoint.get('seq')}: the registry signed, at {payload.get('time')},\n"
        f"that its chain had {seq} events ending in {payload.get('head_hash')}.\n"
        + (
            f"That state is inside this export's range, so the verifier checks that the exported chain passes\n"
            f"through it: events up to {seq} are then the ones the registry vouched for at that time, whoever\n"
            "signed the manifest later."
            if covers
            else "That state is after this export's range, so it does not cover this export (the events in\n"
            "between are not in it); the verifier says so."
        )
    )


def readme_text(*, meta: dict, result, key_id: str, checkpoint: dict | None, csv_columns) -> str:
    columns = "\n".join(f"  {name:<15} {description}" for name, _, description in csv_columns)
    return (
        dedent(
            f"""\
            AUDIT EXPORT: {meta["export_id"] or "(no id)"}
            Registry:  {meta["registry"]["url"] or "unknown"}
            Made:      {meta["created_at"]} for {meta["requested_by"] or "unknown"}
            Filters:   {_filters_text(meta)}
            {_range_text(result)}

            FILES
              events.jsonl   the exported events, in seq order, one JSON object a line: each is the RFC 8785
                             canonical JSON of the event as the registry hashed it, plus its "entry_hash"
              events.csv     the same events as CSV (columns below), for spreadsheets; a reading aid
              summary.pdf    per adapter: versions, checks, evaluations, signatures, who did what; a reading aid
              keys/*.pem     every public key the registry has signed with, named by key id
                             (the SHA-256 of the PEM file)
              manifest.json  what the export holds: range, filters, omitted events, SHA-256 of each file,
                             a signed checkpoint, the id of the signing key ({key_id})
              manifest.sig   ECDSA signature (SHA-256, DER encoded, raw bytes) of manifest.json's exact bytes

            HOW THE CHAIN WORKS
              Every event has a sequence number (seq: 1, 2, 3, ... with no gaps), the previous event's
              entry_hash (prev_hash; 64 zeros before event 1) and its own
                  entry_hash = SHA-256( bytes of prev_hash (32, from hex) || canonical JSON of the event
                                        without its entry_hash member )
              Changing, removing, inserting or reordering any event changes every hash after it.
              In events.jsonl the hashed JSON is exactly the line without its newline and without the
              member ,"entry_hash":"<hex>" .

            VERIFY WITH THE TOOL (needs Python 3.11+ and the registry package, or only registry/audit/
            chain.py, checkpoint.py and verify.py with: pip install rfc8785 cryptography)
              python -m registry.audit.verify THIS.zip --public-key registry.pem
              adapterctl audit verify THIS.zip --public-key registry.pem
              It exits 0 with a summary, or 1 with one line naming the first file or event (seq) that
              fails. Get registry.pem from the registry separately (GET /api/v1/keys, key {key_id}) or
              from someone you trust. Without --public-key the tool uses keys/ from inside this ZIP: that
              proves the files are intact and consistent with each other, NOT that the registry made them.

            VERIFY BY HAND (unzip THIS.zip into an empty directory first)
            1. The manifest's signature, with the registry's public key obtained separately:
                 openssl dgst -sha256 -verify registry.pem -signature manifest.sig manifest.json
               prints "Verified OK". (keys/{key_id}.pem is the same key if this export is genuine:
                 sha256sum keys/{key_id}.pem   prints {key_id}.)
            2. Every file against the manifest (and nothing else in the ZIP but manifest.json and
               manifest.sig):
                 python3 -c 'import json; [print(v["sha256"] + "  " + k) for k, v in json.load(open("manifest.json"))["files"].items()]' | sha256sum -c -
            3. The chain, with nothing but Python's standard library (save as check_chain.py, run
               python3 check_chain.py in the directory):
            """
        )
        + VERIFY_SCRIPT
        + dedent(
            f"""
            4. The checkpoint (optional): manifest.json's "checkpoint" is an event whose evidence holds a
               payload {{seq, head_hash, time}}, a base64 ECDSA signature of the payload's RFC 8785 JSON
               (python3 -c 'import json,rfc8785,sys; e=json.load(open("manifest.json"))["checkpoint"]["evidence"];
               sys.stdout.buffer.write(rfc8785.dumps(e["payload"]))' > payload.json, base64 -d of the signature
               > payload.sig, then openssl dgst -sha256 -verify keys/<its key_id>.pem -signature payload.sig
               payload.json) and key_id; head_hash must equal the entry_hash of event seq in events.jsonl (or the
               hash the manifest lists for it).
            {_checkpoint_text(checkpoint, result)}

            WHAT A FILTERED EXPORT PROVES, AND WHAT IT DOES NOT
              The range runs from the first to the last event the filters select. Each event in between
              that the filters leave out is listed in the manifest as [seq, entry_hash], so the verifier
              can follow the chain across it: for an omitted event it cannot recompute the hash (it does
              not have the event), so it takes the listed entry_hash as given and checks that the next
              exported event's prev_hash equals it.
              It proves, computationally: every exported event is byte for byte the event the registry
              hashed; the exported and listed events together account for every seq of the range, with
              no gap, duplicate or reordering; the chain after the last omitted event runs to the end of
              the range. With the manifest's signature it proves that the registry, holding its key,
              vouched for all of this at export time, and with a covering checkpoint that the chain up to
              the checkpoint's seq is the one it vouched for back then.
              It does NOT prove anything about the content of an omitted event (not even its type),
              nor that a listed hash is the real hash of that event: that rests on the registry's
              signature alone. So an exported event before an omitted one is tied to the events after
              it only through that signature, not by recomputation. An unfiltered export has no
              omitted events and none of these limits.

            events.csv COLUMNS (one header row, then one row per exported event, in seq order; RFC 4180
            quoting, UTF-8; empty = empty text or JSON null)
            """
        )
        + columns
        + "\n"
    )
