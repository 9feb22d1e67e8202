"""adapterctl promotions: promote, approve / reject / cancel, list and show requests, wait for one,
rollback, canary steps, what an alias serves (now or at a time) and its history, the inventory.

HTTP only, like registry/cli.py, whose build_parser registers these commands (add_parser) and whose
`wait` hands a promotion request id to promotion_wait. Handlers raise `args.fail`: registry.cli's
CliError, passed rather than imported (`python -m registry.cli` runs that module as __main__, whose
CliError is another class than registry.cli's; see registry/cli_audit.py).
"""

import json
import re
import sys
import time
import uuid
from datetime import datetime

OPEN_STATES = ("pending", "approved", "executing")
FINAL_STATES = ("executed", "failed", "rejected", "cancelled")
STATES = (*OPEN_STATES, *FINAL_STATES)
TIME_EXAMPLE = "e.g. 2026-01-31T12:00:00Z or 2026-01-31T13:00:00+01:00"


def add_parser(commands, cli_error: type[Exception]) -> None:
    """Register the promotion commands on the CLI's subcommands; each handler raises `cli_error`."""
    _add_request_parsers(commands, cli_error)
    _add_alias_parsers(commands, cli_error)


def add_wait_options(parser) -> None:
    """--timeout and --interval, the same for `wait` and `promote --wait`."""
    parser.add_argument("--timeout", type=float, default=1800, help="give up (exit 1) after this many seconds (1800)")
    parser.add_argument("--interval", type=float, default=2, help="seconds between polls (2)")


def _add_request_parsers(commands, fail) -> None:
    promote = commands.add_parser(
        "promote",
        help="ask to point an alias at a version (or start a canary of it); prints the request and its gates",
        description=(
            "Create a promotion request: the registry evaluates the gates now and, when the alias's policy needs "
            "no approval and the gates pass, queues the move at once; otherwise it waits for `adapterctl approve`. "
            "With --canary the version takes that percent of the alias's traffic beside what it serves now."
        ),
    )
    promote.add_argument("ref", help="the adapter version to promote (any reference)")
    promote.add_argument("--to", required=True, metavar="ALIAS", help="the alias to move, e.g. staging, production")
    promote.add_argument("--reason", required=True, help="why (recorded with the request and the move)")
    promote.add_argument("--canary", type=int, metavar="PERCENT", help="start a canary taking 1-99%% of the traffic")
    promote.add_argument("--override-reason", help="admins: move despite failing gates, saying why")
    promote.add_argument("--wait", action="store_true", help="then wait until it is executed, like `adapterctl wait`")
    add_wait_options(promote)
    promote.set_defaults(handler=cmd_promote, fail=fail)

    approve = commands.add_parser("approve", help="approve a promotion request (approver or admin; not your own)")
    approve.add_argument("id", help="the promotion request id")
    approve.add_argument("--comment", default="", help="recorded with the approval")
    approve.add_argument("--override-reason", default="", help="admins: approve despite failing gates, saying why")
    approve.set_defaults(handler=cmd_approve, fail=fail)

    reject = commands.add_parser("reject", help="reject a promotion request (approver or admin)")
    reject.add_argument("id", help="the promotion request id")
    reject.add_argument("--reason", required=True, help="why (shown to the requester)")
    reject.set_defaults(handler=cmd_reject, fail=fail)

    cancel = commands.add_parser("cancel", help="withdraw a promotion request not yet executing (requester or admin)")
    cancel.add_argument("id", help="the promotion request id")
    cancel.add_argument("--reason", default="", help="why")
    cancel.set_defaults(handler=cmd_cancel, fail=fail)

    listing = commands.add_parser("promotions", help="list promotion requests, newest first")
    listing.add_argument("--state", choices=STATES, help="only requests in this state")
    listing.add_argument("--adapter", metavar="NAME", help="only requests for this adapter name (namespace/name)")
    listing.add_argument("--alias", help="only requests for this alias")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    listing.set_defaults(handler=cmd_promotions, fail=fail)

    show = commands.add_parser("promotion", help="show one promotion request: gates, approvals, execution steps")
    show.add_argument("id", help="the promotion request id")
    show.set_defaults(handler=cmd_promotion, fail=fail)


def _add_alias_parsers(commands, fail) -> None:
    rollback = commands.add_parser(
        "rollback",
        help="point an alias back at the version it served before (approver or admin)",
        description=(
            "Move the alias back at once (no canary) to the version it served before, or to --to, a version it "
            "served earlier. When the namespace's policy wants approvals for rollbacks, this creates a rollback "
            "request instead and prints it."
        ),
    )
    rollback.add_argument("name", help="the adapter name (namespace/name)")
    rollback.add_argument("--alias", required=True, help="the alias to move back, e.g. production")
    rollback.add_argument("--to", metavar="REF", help="a version the alias served before (default: the previous one)")
    rollback.add_argument("--reason", required=True, help="why (recorded with the move)")
    rollback.set_defaults(handler=cmd_rollback, fail=fail)

    alias = commands.add_parser("alias", help="what an alias serves, with its canary split, now or --at a time")
    alias.add_argument("name", help="the adapter name (namespace/name)")
    alias.add_argument("alias", help="e.g. production")
    alias.add_argument("--at", metavar="TIME", help=f"what it served at this time (RFC 3339, {TIME_EXAMPLE})")
    alias.set_defaults(handler=cmd_alias, fail=fail)

    aliases = commands.add_parser("aliases", help="every alias of an adapter name and what it serves now")
    aliases.add_argument("name", help="the adapter name (namespace/name)")
    aliases.set_defaults(handler=cmd_aliases, fail=fail)

    history = commands.add_parser("alias-history", help="every move of an alias, newest first")
    history.add_argument("name", help="the adapter name (namespace/name)")
    history.add_argument("alias", help="e.g. production")
    history.add_argument("--limit", type=int, default=50, help="at most this many moves (50)")
    history.set_defaults(handler=cmd_alias_history, fail=fail)

    canary = commands.add_parser(
        "canary",
        help="ramp, promote or abort an alias's running canary (approver or admin)",
        description=(
            "A canary is started by a promotion request: `adapterctl promote REF --to ALIAS --canary 5`. Once it "
            "runs, --weight sets the canary's share (the primary serves the rest), --promote makes the canary the "
            "alias's only version, --abort sends all traffic back to the primary. Each is a recorded move."
        ),
    )
    canary.add_argument("name", help="the adapter name (namespace/name)")
    canary.add_argument("--alias", required=True, help="the alias running the canary")
    action = canary.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--weight",
        metavar="REF=PERCENT",
        help="the canary's share of the traffic, 1-99 (the primary gets the rest): REF=PERCENT, where REF must be "
        "the canary version (acme/bot:v3=25, or v3=25), or just PERCENT",
    )
    action.add_argument("--promote", action="store_true", help="the canary takes 100%% and becomes the primary")
    action.add_argument("--abort", action="store_true", help="end the canary: the primary takes 100%% again")
    canary.add_argument("--reason", required=True, help="why (recorded with the move)")
    canary.set_defaults(handler=cmd_canary, fail=fail)

    inventory = commands.add_parser(
        "inventory", help="what every adapter name's alias served at a time (default: production, now)"
    )
    inventory.add_argument("--alias", default="production", help="the alias (production)")
    inventory.add_argument("--at", metavar="TIME", help=f"RFC 3339 ({TIME_EXAMPLE}); default now")
    inventory.add_argument("--csv", action="store_true", help="the registry's CSV (one header row) on stdout")
    inventory.set_defaults(handler=cmd_inventory, fail=fail)


# --- Formatting --------------------------------------------------------------------------------


def _when(timestamp: str | None) -> str:
    """An API time (RFC 3339) to the second, with its zone: '2026-01-31 12:00:05 UTC'."""
    if not timestamp:
        return "-"
    moment = datetime.fromisoformat(timestamp)
    offset = moment.utcoffset()
    zone = "UTC" if offset is None or not offset else moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone}"


def _rfc3339(value: str, flag: str, fail) -> str:
    """A time given on the command line, checked here so that a typo is one clear line."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{flag} {value!r} is not an RFC 3339 time ({TIME_EXAMPLE})") from None
    if moment.tzinfo is None:
        raise fail(f"{flag} {value!r} has no time zone; add Z for UTC or an offset ({TIME_EXAMPLE})")
    return moment.isoformat()


def _serves(version: str | None, canary: str | None, weight: int) -> str:
    if version is None:
        return "nothing"
    if canary is None:
        return version
    return f"{version} {100 - weight}% + {canary} {weight}% (canary)"


def _gates_table(request: dict) -> None:
    width = max((len(gate["gate"]) for gate in request["gates"]), default=0)
    for gate in request["gates"]:
        print(f"    {'pass' if gate['passed'] else 'FAIL'}  {gate['gate']:<{width}}  {gate['detail']}")


def _approved(request: dict) -> int:
    return sum(1 for approval in request["approvals"] if approval["decision"] == "approve")


def _approvals_line(request: dict) -> str:
    return f"{_approved(request)} of {request['approvals_required']} approval(s)"


def _summary(request: dict) -> str:
    what = f"{request['adapter']}:{request['alias']} → {request['version']}"
    if request["kind"] == "canary":
        what += f" as a {request['canary_weight']}% canary"
    elif request["kind"] == "rollback":
        what += " (rollback)"
    return f"promotion {request['id']}  {request['state']}  {what}"


def _next_step(request: dict) -> str | None:
    """What happens next, for a request someone just made or decided on."""
    if request["state"] == "pending":
        missing = request["approvals_required"] - _approved(request)
        hint = (
            f"needs {missing} more approval(s), by an approver other than {request['requested_by']}: "
            f"adapterctl approve {request['id']}"
        )
        if not request["gates_passed"]:
            hint += "; the gates fail, so an approval is refused until they pass (or an admin overrides)"
        return hint
    if request["state"] in ("approved", "executing"):
        return f"queued for a worker to carry out: adapterctl wait {request['id']}"
    return None


def _print_request(request: dict, *, brief: bool = False) -> None:
    """A request as `promote` prints it (brief: what, gates, what next) or as `promotion` shows it."""
    print(_summary(request))
    if not brief:
        served = request["expected_version"] or "nothing"
        print(f"  requested: {_when(request['created_at'])} by {request['requested_by']}, serving {served} then")
        print(f"  reason:    {request['reason']}")
        print(f"  digest:    {request['digest_ref']}")
        print(f"  approvals: {_approvals_line(request)}")
        for approval in request["approvals"]:
            comment = f": {approval['comment']}" if approval["comment"] else ""
            print(f"    {approval['decision']:<8} {approval['by']}  {_when(approval['at'])}{comment}")
    verdict = "pass" if request["gates_passed"] else "FAIL"
    print(f"  gates:     {verdict} (evaluated {_when(request['gates_evaluated_at'])})")
    _gates_table(request)
    if request["override"]:
        print(f"  override:  by {request['override']['by']}: {request['override']['reason']}")
    if not brief:
        _print_steps(request)
    if request["error_code"]:
        print(f"  error:     {request['error_code']}: {request['error']}")
    hint = _next_step(request)
    if hint:
        print(f"  next:      {hint}")


def _print_steps(request: dict) -> None:
    if not request["steps"]:
        return
    print("  steps:")
    for step in request["steps"]:
        detail = f"  {step['detail']}" if step["detail"] else ""
        print(f"    {step['state']:<9} {step['name']:<6} {_when(step['at'])}{detail}")


def _emit(args, request: dict, *, brief: bool = False) -> None:
    if args.json:
        print(json.dumps(request, indent=2))
    else:
        _print_request(request, brief=brief)


# --- Requests ----------------------------------------------------------------------------------


def cmd_promote(args, registry) -> None:
    body = {"version": args.ref, "alias": args.to, "reason": args.reason}
    if args.canary is not None:
        if not 1 <= args.canary <= 99:
            raise args.fail(f"--canary {args.canary}: a canary takes 1 to 99 percent of the traffic")
        body["canary_weight"] = args.canary
    if args.override_reason:
        body["override_reason"] = args.override_reason
    request = registry.request("POST", "promotions", json=body)
    if not args.wait:
        _emit(args, request, brief=True)
        return
    if not args.json:  # with --json, only the request as it ends up
        _print_request(request, brief=True)
    promotion_wait(args, registry, request)


def _decide(args, registry, action: str, body: dict) -> None:
    request = registry.request("POST", f"promotions/{_request_id(args.id, args.fail)}/{action}", json=body)
    _emit(args, request, brief=True)


def cmd_approve(args, registry) -> None:
    _decide(args, registry, "approve", {"comment": args.comment, "override_reason": args.override_reason})


def cmd_reject(args, registry) -> None:
    _decide(args, registry, "reject", {"reason": args.reason})


def cmd_cancel(args, registry) -> None:
    _decide(args, registry, "cancel", {"reason": args.reason})


def cmd_promotion(args, registry) -> None:
    _emit(args, registry.request("GET", f"promotions/{_request_id(args.id, args.fail)}"))


def _request_id(value: str, fail) -> str:
    """A promotion request id is a UUID; anything else would reach the server as a wrong path (404 HTML)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise fail(f"{value!r} is not a promotion request id (a UUID, as `adapterctl promotions` lists them)") from None


def _pages(registry, path: str, params: dict, limit: int, fail) -> tuple[list, bool]:
    """Up to `limit` rows of a cursor-paged list, and whether there were more."""
    if limit < 1:
        raise fail("--limit must be at least 1")
    rows, body = [], registry.request("GET", path, params={**params, "page_size": min(limit, 200)})
    while True:
        room = limit - len(rows)
        rows += body["results"][:room]
        if len(body["results"]) > room or (body.get("next") and len(rows) >= limit):
            return rows, True
        if not body.get("next"):
            return rows, False
        body = registry.request("GET", body["next"])


def cmd_promotions(args, registry) -> None:
    filters = {"state": args.state, "adapter": args.adapter, "alias": args.alias}
    params = {key: value for key, value in filters.items() if value}
    rows, more = _pages(registry, "promotions", params, args.limit, args.fail)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no promotion requests match", file=sys.stderr)
        return
    print(f"{'ID':<36}  {'STATE':<9}  {'KIND':<8}  {'CREATED':<23}  {'BY':<12}  ALIAS → VERSION")
    for row in rows:
        target = f"{row['adapter']}:{row['alias']} → {row['version']}"
        if row["kind"] == "canary":
            target += f" ({row['canary_weight']}%)"
        print(f"{row['id']:<36}  {row['state']:<9}  {row['kind']:<8}  {_when(row['created_at']):<23}  "
              f"{row['requested_by']:<12}  {target}")  # fmt: skip
    if more:
        print(f"(newest {len(rows)}; raise --limit or narrow the filters for more)", file=sys.stderr)


# --- Waiting -----------------------------------------------------------------------------------


def promotion_wait_target(args, registry) -> dict | None:
    """The promotion request `adapterctl wait REF` is about, or None when REF is an adapter version.

    A request id is a UUID, but so is a version id: with --promotion REF must be a request; without
    it, a UUID is looked up as a request first (the two are random UUIDs and never coincide) and
    anything the promotions endpoint does not know is waited for as a version.
    """
    try:
        uuid.UUID(args.ref)
    except ValueError:
        if args.promotion:
            raise args.fail(f"--promotion: {args.ref!r} is not a promotion request id (a UUID)") from None
        return None
    try:
        return registry.request("GET", f"promotions/{args.ref}")
    except args.fail as error:
        if error.code == "promotion_not_found" and not args.promotion:
            return None
        raise


def promotion_wait(args, registry, request: dict) -> None:
    """Poll until the request is executed, failed, rejected or cancelled, showing its state and steps;
    exit 0 only when executed."""
    deadline = time.monotonic() + args.timeout
    shown = None
    while True:
        line = _progress_line(request)
        ended = request["state"] in FINAL_STATES
        # How it ended without moving the alias is the one error line below, not a progress line too.
        if line != shown and not args.json and request["state"] in (*OPEN_STATES, "executed"):
            print(line, file=sys.stderr, flush=True)
            shown = line
        if ended:
            break
        if time.monotonic() > deadline:
            raise args.fail(f"timed out after {args.timeout:g}s: {line}")
        time.sleep(args.interval)
        request = registry.request("GET", f"promotions/{request['id']}")
    _emit(args, request)
    if request["state"] != "executed":
        raise args.fail(_outcome_error(request))


def _progress_line(request: dict) -> str:
    line = f"promotion {request['id']}: {request['state']}"
    if request["state"] == "pending":
        line += f", {_approvals_line(request)}"
    steps = ", ".join(f"{step['name']} {step['state']}" for step in request["steps"])
    return f"{line} ({steps})" if steps else line


def _outcome_error(request: dict) -> str:
    """The one line for a request that ended without moving the alias: its code and why."""
    name = f"promotion {request['id']}"
    if request["state"] == "failed":
        return f"{request['error_code'] or 'promotion_failed'}: {name} failed: {request['error'] or 'no reason given'}"
    if request["state"] == "rejected":
        rejection = next((a for a in reversed(request["approvals"]) if a["decision"] == "reject"), None)
        why = f" by {rejection['by']}: {rejection['comment']}" if rejection else ""
        return f"promotion_rejected: {name} was rejected{why}"
    return f"promotion_cancelled: {name} was cancelled; the alias did not move"


# --- Aliases -----------------------------------------------------------------------------------


def _alias_path(name: str, alias: str) -> str:
    return f"adapters/{name}/aliases/{alias}"


def cmd_alias(args, registry) -> None:
    params = {"at": _rfc3339(args.at, "--at", args.fail)} if args.at else {}
    body = registry.request("GET", _alias_path(args.name, args.alias), params=params)
    if args.json:
        print(json.dumps(body, indent=2))
        return
    when = f"at {_when(body['at'])}" if body["at"] else "now"
    subject = f"{body['adapter']}:{body['alias']}"
    if body["version"] is None:
        print(f"{subject} was not set {when}")
        return
    print(f"{subject} → {_serves(body['version'], body['canary'], body['canary_weight'])}  ({when})")
    for part in body["split"]:
        role = "  (canary)" if part["ref"] == body["canary"] else ""
        print(f"  {part['weight']:>3}%  {part['ref']}  {part['digest_ref']}{role}")
    print(
        f"  since {body['moved_at']}, move {body['move']} (adapterctl alias-history {body['adapter']} {body['alias']})"
    )


def cmd_aliases(args, registry) -> None:
    rows = registry.request("GET", f"adapters/{args.name}/aliases")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"{args.name} has no aliases yet (adapterctl promote REF --to ALIAS sets one)", file=sys.stderr)
        return
    width = max(len(row["alias"]) for row in rows)
    for row in rows:
        print(f"{row['alias']:<{width}}  {_serves(row['version'], row['canary'], row['canary_weight'])}")


def cmd_alias_history(args, registry) -> None:
    path = f"{_alias_path(args.name, args.alias)}/history"
    moves, more = _pages(registry, path, {}, args.limit, args.fail)
    if args.json:
        print(json.dumps(moves, indent=2))
        return
    if not moves:
        print(f"{args.name}:{args.alias} has never moved", file=sys.stderr)
        return
    print(f"{'MOVED':<23}  {'KIND':<14}  {'BY':<12}  FROM → TO  (REASON)")
    for move in moves:
        before = _serves(move["from_version"], move["from_canary"], move["from_canary_weight"])
        after = _serves(move["to_version"], move["canary"], move["canary_weight"])
        print(f"{_when(move['moved_at']):<23}  {move['kind']:<14}  {move['moved_by'] or '-':<12}  "
              f"{before} → {after}  ({move['reason']})")  # fmt: skip
    if more:
        print(f"(newest {len(moves)}; raise --limit for more)", file=sys.stderr)


def cmd_rollback(args, registry) -> None:
    body = {"reason": args.reason, **({"to": args.to} if args.to else {})}
    answer = registry.request("POST", f"{_alias_path(args.name, args.alias)}/rollback", json=body)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif registry.last_status == 202:  # the policy wants approvals for rollbacks: a request, not a move
        print(f"the namespace's policy for {args.alias} wants approvals for rollbacks: a rollback request was made")
        _print_request(answer, brief=True)
    else:
        _print_move(answer)


def _print_move(move: dict) -> None:
    before = _serves(move["from_version"], move["from_canary"], move["from_canary_weight"])
    after = _serves(move["to_version"], move["canary"], move["canary_weight"])
    print(f"{move['adapter']}:{move['alias']} → {after}")
    print(f"  {move['kind']} from {before}, {_when(move['moved_at'])} by {move['moved_by']} (move {move['id']})")


# --- Canary ------------------------------------------------------------------------------------

WEIGHT = re.compile(r"^(?:(?P<ref>[^=]+)=)?(?P<percent>\d{1,3})%?$")


def cmd_canary(args, registry) -> None:
    body = {"reason": args.reason}
    if args.promote:
        body["action"] = "promote"
    elif args.abort:
        body["action"] = "abort"
    else:
        ref, percent = _weight(args.weight, args.fail)
        if ref is not None:
            _check_canary_ref(args, registry, ref, percent)
        body.update(action="ramp", weight=percent)
    try:
        move = registry.request("POST", f"{_alias_path(args.name, args.alias)}/canary", json=body)
    except args.fail as error:
        if error.code == "no_canary":
            raise args.fail(f"{error}; start one with: adapterctl promote REF --to {args.alias} --canary 5") from None
        raise
    if args.json:
        print(json.dumps(move, indent=2))
    else:
        _print_move(move)


def _weight(value: str, fail) -> tuple[str | None, int]:
    """--weight PERCENT or REF=PERCENT: the canary's share of the traffic, a whole percent."""
    match = WEIGHT.match(value.strip())
    if match is None:
        raise fail(f"--weight {value!r}: give the canary's share as PERCENT or REF=PERCENT, e.g. 25 or acme/bot:v3=25")
    percent = int(match["percent"])
    if percent == 100:
        raise fail("--weight 100 would send all traffic to the canary: use --promote to make it the primary")
    if percent == 0:
        raise fail("--weight 0 would send the canary nothing: use --abort to end the canary")
    if percent > 100:
        raise fail(f"--weight {percent}: a share is a percent from 1 to 99")
    return match["ref"], percent


def _check_canary_ref(args, registry, ref: str, percent: int) -> None:
    """REF in --weight REF=PERCENT must name the running canary: the primary's share is what is left."""
    alias = registry.request("GET", _alias_path(args.name, args.alias))
    subject = f"{args.name}:{args.alias}"
    if alias["canary"] is None:
        raise args.fail(
            f"no_canary: {subject} runs no canary; start one with: adapterctl promote REF --to {args.alias} --canary 5"
        )
    primary, canary = alias["split"]
    named = _resolved_ref(registry, args.name, ref, known=(primary, canary))
    if named == primary["ref"]:
        raise args.fail(
            f"{ref} is the primary version of {subject}, which gets whatever the canary does not; set the canary's "
            f"share instead: --weight {canary['ref']}={100 - percent}"
        )
    if named != canary["ref"]:
        raise args.fail(f"{ref} is not the canary of {subject} (canary {canary['ref']}, primary {primary['ref']})")


def _resolved_ref(registry, name: str, ref: str, known) -> str:
    """The version `ref` names, as its namespace/name:vN ref; `v3` is short for NAME:v3."""
    for part in known:
        if ref in (part["ref"], part["digest_ref"]):
            return part["ref"]
    if ref.startswith("@"):  # @sha256:<hex>
        qualified = f"{name}{ref}"
    elif "/" in ref:
        qualified = ref
    else:  # v3, or an alias
        qualified = f"{name}:{ref.lstrip(':')}"
    return registry.request("GET", f"adapters/{qualified}")["ref"]


# --- Inventory ---------------------------------------------------------------------------------


def cmd_inventory(args, registry) -> None:
    if args.csv and args.json:
        raise args.fail("--csv and --json each choose the output: give one")
    params = {"alias": args.alias}
    if args.at:
        params["at"] = _rfc3339(args.at, "--at", args.fail)
    if args.csv:
        sys.stdout.write(_inventory_csv(registry, params, args.fail))
        return
    body = registry.request("GET", "inventory", params=params)
    if args.json:
        print(json.dumps(body, indent=2))
        return
    print(f"{body['alias']} at {_when(body['at'])}: {body['count']} adapter name(s)")
    if not body["rows"]:
        return
    width = max(len(row["adapter"]) for row in body["rows"])
    print(f"{'ADAPTER':<{width}}  {'SINCE':<23}  {'BY':<12}  SERVES")
    for row in body["rows"]:
        serves = _serves(row["version"], row["canary"], row["canary_weight"])
        print(f"{row['adapter']:<{width}}  {_when(row['moved_at']):<23}  {row['moved_by'] or '-':<12}  {serves}")


def _inventory_csv(registry, params: dict, fail) -> str:
    """The registry's own CSV (its columns are the API's), or its error as one line."""
    response = registry._send("GET", "inventory", params={**params, "format": "csv"})  # not JSON: no .request
    if response.is_success:
        return response.text
    try:
        error = response.json()["error"]
        line, code = f"{error['code']}: {error['message']} (HTTP {response.status_code})", error["code"]
    except (ValueError, KeyError, TypeError):
        line, code = f"GET inventory answered HTTP {response.status_code}, not the registry's CSV", ""
    raise fail(line, code=code, status=response.status_code)
