"""adapterctl token create | list | revoke: scoped CI tokens (POST/GET /api/v1/auth/tokens, DELETE .../<id>).

A scoped token acts as its user, for reads and for the writes its scopes name (push,
promotion.request), in its namespaces only. `create` prints only the key on stdout, so
`KEY=$(adapterctl token create --name ci --scope push)` captures it; the registry keeps its
SHA-256 only and never shows it again. Registered by registry/cli.py's build_parser, beside
`token rotate`.
"""

import json
import sys

SCOPES = ("push", "promotion.request", "telemetry")


def add_parsers(token_commands, cli_error: type[Exception]) -> None:
    """`cli_error` is registry.cli's CliError, passed rather than imported (see registry/cli_audit.py)."""
    create = token_commands.add_parser(
        "create",
        help="create a scoped CI token for yourself (the key is printed once)",
        description=(
            "A token that reads what you read and writes only what its scopes name, in its namespaces. "
            "Only the key goes to stdout; store it as a CI secret now: the registry cannot show it again."
        ),
    )
    create.add_argument("--name", required=True, help="unique among your tokens, e.g. ci or github-acme")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        choices=SCOPES,
        default=[],
        help="a write it may do (repeat for several; telemetry needs the global admin role); none: a read-only token",
    )
    create.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        help="where it may write (repeat for several); none: every namespace you may write to",
    )
    create.add_argument("--expires-days", type=int, help="it stops working after this many days (default: never)")
    create.set_defaults(handler=cmd_token_create, fail=cli_error)

    listing = token_commands.add_parser("list", help="your scoped tokens (never their keys)")
    listing.add_argument("--user", help="admins: this user's tokens")
    listing.set_defaults(handler=cmd_token_list, fail=cli_error)

    revoke = token_commands.add_parser("revoke", help="revoke a scoped token: it stops working at once")
    revoke.add_argument("id", type=int, help="the token's id (adapterctl token list)")
    revoke.set_defaults(handler=cmd_token_revoke, fail=cli_error)


def cmd_token_create(args, registry) -> None:
    body = {"name": args.name, "scopes": args.scopes, "namespaces": args.namespaces}
    if args.expires_days is not None:
        body["expires_in_days"] = args.expires_days
    token = registry.request("POST", "auth/tokens", json=body)
    if args.json:
        print(json.dumps(token, indent=2))
        return
    print(token["key"])
    where = ", ".join(token["namespaces"]) or "every namespace you may write to"
    print(
        f"adapterctl: token {token['id']} ({token['name']}): {', '.join(token['scopes']) or 'read only'} in {where}; "
        f"expires {_when(token['expires_at'], 'never')}. Store the key now: it is not shown again.",
        file=sys.stderr,
    )


def cmd_token_list(args, registry) -> None:
    tokens = registry.request("GET", "auth/tokens", params={"user": args.user} if args.user else None)
    if args.json:
        print(json.dumps(tokens, indent=2))
        return
    if not tokens:
        print("no scoped tokens; create one with adapterctl token create", file=sys.stderr)
        return
    print(
        f"{'ID':>5} {'NAME':<20} {'STATE':<8} {'SCOPES':<24} {'NAMESPACES':<20} {'KEY':<12} {'LAST USED':<16} EXPIRES"
    )
    for token in tokens:
        print(
            f"{token['id']:>5} {token['name']:<20} {token['state']:<8} {','.join(token['scopes']) or '-':<24} "
            f"{','.join(token['namespaces']) or '*':<20} {token['key_prefix'] + '…':<12} "
            f"{_when(token['last_used_at'], 'never'):<16} {_when(token['expires_at'], 'never')}"
        )


def cmd_token_revoke(args, registry) -> None:
    token = registry.request("DELETE", f"auth/tokens/{args.id}")
    if args.json:
        print(json.dumps(token, indent=2))
        return
    print(f"token {token['id']} ({token['name']}) revoked at {_when(token['revoked_at'], '-')}; it no longer works")


def _when(timestamp: str | None, missing: str) -> str:
    """An API timestamp (RFC 3339, UTC) as 'YYYY-MM-DD HH:MM'."""
    return timestamp[:16].replace("T", " ") if timestamp else missing
