"""README.txt of an audit export: what it holds and how to verify it step by step, by hand or with
`python -m registry.audit.verify`. Written per export, so it names this export's key and range."""

VERIFY_SCRIPT = r"""import hashlib, json, sys
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

CHECKPOINT_SCRIPT = r"""import base64, json, rfc8785     # pip install rfc8785
evidence = json.load(open("manifest.json"))["checkpoint"]["evidence"]
open("checkpoint.json", "wb").write(rfc8785.dumps(evidence["payload"]))
open("checkpoint.sig", "wb").write(base64.b64decode(evidence["signature"]))
print(evidence["key_id"], evidence["payload"])
"""

FILES = """FILES
  events.jsonl   the exported events in seq order, one JSON object a line: each is the RFC 8785
                 canonical JSON of the event as the registry hashed it, with its "entry_hash" added
  events.csv     the same events as CSV (columns at the end), for spreadsheets; a reading aid
  summary.pdf    per adapter: versions, checks, evaluations, signatures, who did what, alias
                 history and promotion approvals; a reading aid
  keys/*.pem     every public key the registry has signed with, each named by its key id (the
                 SHA-256 of the PEM file)
  manifest.json  what the export holds: range, filters, omitted events, the SHA-256 of every
                 other file, a signed checkpoint, the id of the key that signs the manifest
  manifest.sig   ECDSA signature (SHA-256, DER encoded, raw bytes) of manifest.json's exact bytes

HOW THE CHAIN WORKS
  Every event has a sequence number (seq: 1, 2, 3, ... with no gaps over the whole chain), the
  previous event's entry_hash (prev_hash; 64 zeros before event 1) and its own
      entry_hash = SHA-256( the 32 bytes of prev_hash (from hex) || the canonical JSON of
                            the event without its entry_hash member )
  Changing, removing, inserting or reordering any event changes every hash after it. In
  events.jsonl the hashed JSON is exactly the line without its newline and without the member
  ,"entry_hash":"<hex>"
"""

FILTERED = """WHAT A FILTERED EXPORT PROVES, AND WHAT IT DOES NOT
  The range runs from the first to the last event the filters select. Each event in between that
  the filters leave out is listed in the manifest as [seq, entry_hash], so that the chain can be
  followed across it: for an omitted event the verifier cannot recompute the hash (it does not
  have the event), so it takes the listed entry_hash as given and checks that the next exported
  event's prev_hash equals it.
  It proves, by recomputation: every exported event is byte for byte an event the registry
  hashed, at the position (seq) it claims; the exported and the listed events together account
  for every seq of the range, with no gap, duplicate or reordering; each unbroken run of exported
  events is linked hash to hash, and the last run ends in the manifest's last_entry_hash.
  With the manifest's signature it proves that the holder of the registry's key vouched for all
  of it, listed hashes included, when the export was made. A covering checkpoint was signed
  earlier, when the chain reached its seq: the unbroken run of exported events that ends there
  is made of events the registry had recorded by then.
  It does NOT prove anything about the content of an omitted event (not even its type), nor that
  a listed hash is the real hash of that event: that rests on the registry's signature alone. So
  across an omitted event, the events before it are tied to the events after it by that
  signature only, not by recomputation; and a filtered export cannot show that the filters were
  applied honestly (that every omitted event really fails them). An unfiltered export has no
  omitted events and none of these limits.
"""


def _filters_text(meta: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in meta["filters"].items()) or "none: every event"


def _range_text(result) -> str:
    if result.first_seq is None:
        return "Range:     none: no event matched; events.jsonl is empty and the manifest's range is null."
    text = f"Range:     events {result.first_seq} to {result.last_seq} of the chain: {result.exported} exported"
    if not result.omitted:
        return text + ", none left out."
    return f'{text},\n           {result.omitted} in between left out by the filters (listed in the manifest\'s "omitted").'


def _checkpoint_text(checkpoint: dict | None, result) -> str:
    if checkpoint is None:
        return "  The registry had signed no checkpoint that could vouch for this range when the export was made.\n"
    payload = (checkpoint.get("evidence") or {}).get("payload") or {}
    seq = payload.get("seq")
    text = (
        f"  This export's checkpoint is event {checkpoint.get('seq')}: the registry signed, at {payload.get('time')},\n"
        f"  that its chain then ended at event {seq} with entry_hash\n  {payload.get('head_hash')}.\n"
    )
    if result.first_seq is not None and result.first_seq - 1 <= (seq or 0) <= result.last_seq:
        return text + (
            "  That is inside this export's range: the exported chain must pass through it, which proves\n"
            "  that the events up to there were recorded by then, whoever signed the manifest later.\n"
        )
    return text + "  That is after this export's range, so it does not cover this export; the verifier says so.\n"


def readme_text(*, meta: dict, result, key_id: str, checkpoint: dict | None, csv_columns) -> str:
    columns = "".join(f"  {name:<15} {description}\n" for name, _, description in csv_columns)
    return (
        f"AUDIT EXPORT {meta['export_id'] or ''}\n"
        f"Registry:  {meta['registry']['url'] or 'unknown'}\n"
        f"Made:      {meta['created_at']} for {meta['requested_by'] or 'unknown'}\n"
        f"Filters:   {_filters_text(meta)}\n"
        f"{_range_text(result)}\n"
        f"Key:       {key_id} (signs manifest.json)\n\n"
        f"{FILES}\n"
        "VERIFY WITH THE TOOL\n"
        "  python -m registry.audit.verify THIS.zip --public-key registry.pem\n"
        "  adapterctl audit verify THIS.zip --public-key registry.pem\n"
        "  Needs Python 3.11+, `pip install rfc8785 cryptography` and the registry's package, or only\n"
        "  these files of it: registry/__init__.py, registry/audit/__init__.py, chain.py, checkpoint.py\n"
        "  and verify.py (no Django, no database, no network). It exits 0 with a\n"
        "  summary, or 1 with one line naming the first file or event (seq) that does not verify.\n"
        "  Get registry.pem separately: from the registry (GET /api/v1/keys, the key whose key_id is\n"
        "  the one above) or from someone you trust. Without --public-key the tool uses keys/ from\n"
        "  inside this ZIP: that proves the files are intact and consistent with each other, NOT that\n"
        "  the registry made them.\n\n"
        "VERIFY BY HAND (unzip THIS.zip into an empty directory and work there)\n"
        "1. The manifest's signature, with the registry's public key obtained separately:\n"
        "     openssl dgst -sha256 -verify registry.pem -signature manifest.sig manifest.json\n"
        '   prints "Verified OK". If the export is genuine, keys/<key id>.pem is that same key:\n'
        f"     sha256sum keys/{key_id}.pem\n"
        "   prints its key id.\n"
        "2. Every file against the manifest (the ZIP must hold nothing else but manifest.json and\n"
        "   manifest.sig; `unzip -l THIS.zip` lists it):\n"
        '     python3 -c \'import json; [print(v["sha256"] + "  " + k) for k, v in '
        'json.load(open("manifest.json"))["files"].items()]\' | sha256sum -c -\n'
        "3. The chain, with Python's standard library only: save these lines as check_chain.py and run\n"
        "   python3 check_chain.py\n\n"
        f"{VERIFY_SCRIPT}\n"
        '4. The checkpoint (optional). manifest.json\'s "checkpoint" is an event whose evidence holds\n'
        "   a payload {seq, head_hash, time}, the base64 ECDSA/SHA-256 signature of the payload's RFC 8785\n"
        "   JSON, and the id of the signing key. These lines write both out:\n\n"
        f"{CHECKPOINT_SCRIPT}\n"
        "   then: openssl dgst -sha256 -verify keys/<that key id>.pem -signature checkpoint.sig checkpoint.json\n"
        "   head_hash must equal the entry_hash of event `seq` in events.jsonl (or the hash the manifest\n"
        "   lists for it, or the range's prev_hash when seq is just before the range).\n"
        f"{_checkpoint_text(checkpoint, result)}\n"
        f"{FILTERED}\n"
        "events.csv COLUMNS\n"
        "  One header row, then one row per exported event in seq order; UTF-8, RFC 4180 quoting, rows\n"
        "  end in LF; an empty field is empty text or JSON null.\n"
        f"{columns}"
    )
