"""adapterctl audit: list events, export a slice of the chain, verify an export offline.

`events` and `export` talk HTTP to the registry (auditor or admin token); `verify` needs neither
the registry nor Django: it is registry/audit/verify.py, the same check as
`python -m registry.audit.verify`. Registered by registry/cli.py's build_parser.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import httpx

FILTERS = (
    ("after", "recorded at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z)"),
    ("before", "recorded before this time (RFC 3339)"),
    ("namespace", "events in this namespace"),
    ("adapter", "events about this adapter (namespace/name)"),
    ("type", 'this event type ("version.status") or prefix ("job.*")'),
    ("actor", "events by this actor (its name as recorded)"),
    ("object-id", "events about this object id"),
    ("outcome", "success, denied or failed"),
)
EXPORT_POLL_SECONDS = 2.0


def add_parser(commands, cli_error: type[Exception]) -> None:
    """Register `adapterctl audit events|export|verify` on the CLI's subcommands. Handlers raise
    `cli_error` (registry.cli's CliError, passed rather than imported: `python -m registry.cli`
    runs that module as __main__, whose CliError is another class than registry.cli's)."""
    audit = commands.add_parser("audit", help="the audit trail: events, exports, offline verification")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    events = sub.add_parser("events", help="list audit events, newest first (auditor or admin)")
    _add_filters(events)
    events.add_argument("--limit", type=int, default=50, help="at most this many events (50)")
    events.set_defaults(handler=cmd_events, fail=cli_error)

    export = sub.add_parser(
        "export",
        help="export audit events to a signed ZIP that verifies offline (auditor or admin)",
        description=(
            "Ask the registry for an export of the events the filters select (all, without filters), wait until "
            "it is built, showing its progress, and download it to --out. The download is checked against the "
            "SHA-256 the registry reports; check the export itself with `adapterctl audit verify`."
        ),
    )
    _add_filters(export)
    export.add_argument("--out", required=True, metavar="FILE.zip", help="where to write the export")
    export.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds (3600)")
    export.add_argument("--interval", type=float, default=EXPORT_POLL_SECONDS, help="seconds between polls (2)")
    export.set_defaults(handler=cmd_export, fail=cli_error)

    verify = sub.add_parser(
        "verify",
        help="verify an audit export offline: signature, file hashes, sequence, hash chain, checkpoints",
        description=(
            "Needs nothing but the ZIP (no registry, no token): exit 0 with a summary, or 1 with one line naming "
            "the first file or event (seq) that does not verify. Same check as `python -m registry.audit.verify`."
        ),
    )
    verify.add_argument("file", help="the export ZIP")
    verify.add_argument(
        "--public-key",
        metavar="PEM",
        help="the registry's public key, obtained separately (GET /api/v1/keys): it must be the key that signed; "
        "without it the keys inside the ZIP are used, which proves integrity, not origin",
    )
    verify.set_defaults(handler=cmd_verify, offline=True, fail=cli_error)


def _add_filters(parser) -> None:
    for name, help_text in FILTERS:
        parser.add_argument(f"--{name}", help=help_text)


def _filters(args) -> dict:
    return {
        name.replace("-", "_"): value
        for name, _ in FILTERS
        if (value := getattr(args, name.replace("-", "_"))) not in (None, "")
    }


# --- events --------------------------------------------------------------------------------


def cmd_events(args, registry) -> None:
    if args.limit < 1:
        raise args.fail("--limit must be at least 1")
    events, body = (
        [],
        registry.request("GET", "audit/events", params={**_filters(args), "page_size": min(args.limit, 200)}),
    )
    while True:
        events += body["results"][: args.limit - len(events)]
        if len(events) >= args.limit or not body.get("next"):
            break
        body = registry.request("GET", body["next"])
    if args.json:
        print(json.dumps(events, indent=2))
        return
    if not events:
        print("no events match", file=sys.stderr)
        return
    print(f"{'SEQ':>8} {'TIME (UTC)':<19} {'TYPE':<24} {'OUTCOME':<8} {'ACTOR':<20} OBJECT")
    for event in events:
        subject = event["adapter"] or event["namespace"]
        thing = " ".join(
            part for part in (event["object_type"], event["object_id"], subject and f"({subject})") if part
        )
        actor = f"{event['actor_name'] or '-'} ({event['actor_kind']})"
        when = event["time"][:19].replace("T", " ")
        print(f"{event['seq']:>8} {when:<19} {event['type']:<24} {event['outcome']:<8} {actor:<20} {thing}")
    if len(events) == args.limit and body.get("next"):
        print(f"(newest {len(events)}; raise --limit or narrow the filters for more)", file=sys.stderr)


# --- export --------------------------------------------------------------------------------


def cmd_export(args, registry) -> None:
    out = Path(args.out)
    if not out.parent.is_dir():
        raise args.fail(f"--out: {out.parent} is not a directory")
    export = registry.request("POST", "audit/exports", json=_filters(args))
    export = _wait_for_export(registry, export, args)
    _download(registry, export, out, args.fail)
    if args.json:
        print(json.dumps({**export, "file": str(out)}, indent=2))
        return
    span = "no events" if export["first_seq"] is None else f"events {export['first_seq']} to {export['last_seq']}"
    print(f"{out}  {export['size']:,} bytes, sha256:{export['sha256']}")
    print(f"  export:  {export['id']}")
    print(
        f"  range:   {span}: {export['events_exported']} exported, {export['events_omitted']} left out by the filters"
    )
    print(f"  verify:  adapterctl audit verify {out} --public-key REGISTRY.pem   (key from GET /api/v1/keys)")


def _wait_for_export(registry, export: dict, args) -> dict:
    deadline = time.monotonic() + args.timeout
    shown = None
    while export["state"] in ("queued", "running"):
        line = _progress_line(export)
        if line != shown and not args.json:
            print(
                f"\r{line}" if args.progress else line, end="" if args.progress else "\n", file=sys.stderr, flush=True
            )
            shown = line
        if time.monotonic() > deadline:
            raise args.fail(f"export {export['id']} is still {export['state']} after {args.timeout:g} s; poll it later")
        time.sleep(args.interval)
        export = registry.request("GET", f"audit/exports/{export['id']}")
    if args.progress and shown is not None:
        print(file=sys.stderr)
    if export["state"] != "done":
        raise args.fail(f"export {export['id']} failed: {export['error'] or 'no reason given'}")
    return export


def _progress_line(export: dict) -> str:
    total = export["events_total"]
    counted = f" ({export['events_done']:,} of {total:,} events)" if total else ""
    return f"export {export['id']}: {export['state']} {export['progress'] * 100:.0f}%{counted}"


def _download(registry, export: dict, out: Path, fail) -> None:
    """Stream the ZIP to OUT.part, check its SHA-256 against the registry's, then rename it to OUT."""
    partial = out.with_name(out.name + ".part")
    sha256 = hashlib.sha256()
    try:
        url = httpx.URL(registry.url).join(export["download_url"])
        with registry.client.stream("GET", url) as response, partial.open("wb") as handle:
            if not response.is_success:
                response.read()
                raise fail(_error_line(response))
            for chunk in response.iter_bytes(1 << 20):
                sha256.update(chunk)
                handle.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise fail(f"download from {registry.url} failed: {exc}") from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise fail(f"cannot write {partial}: {exc}") from None
    if sha256.hexdigest() != export["sha256"]:
        partial.unlink(missing_ok=True)
        raise fail(f"the download's SHA-256 {sha256.hexdigest()} is not the registry's {export['sha256']}")
    os.replace(partial, out)


def _error_line(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']} (HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        return f"the download answered HTTP {response.status_code}"


# --- verify --------------------------------------------------------------------------------


def cmd_verify(args, _registry) -> None:
    from registry.audit import verify  # cryptography and rfc8785 only when verifying

    try:
        pem = Path(args.public_key).read_bytes() if args.public_key else None
    except OSError as exc:
        raise args.fail(f"--public-key: cannot read {args.public_key}: {exc.strerror}") from None
    try:
        report = verify.verify_export(args.file, public_key_pem=pem)
    except verify.VerificationFailed as failure:
        raise args.fail(f"verification failed: {failure}") from None
    if args.json:
        from dataclasses import asdict

        print(json.dumps({"verified": True, **asdict(report)}, indent=2))
    else:
        print(verify.summary(report))
