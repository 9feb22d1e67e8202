"""adapterctl's promotion commands against a live server: real HTTP, real processes, real exit codes.

Approved requests are carried out by promotion_execute, the service the cpu-queue task
`promotions.execute` runs (tests/promotions/test_promotions_live.py runs it in a real worker), called
here while `adapterctl wait` polls, so that the test controls when the alias moves.
"""

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from rest_framework.authtoken.models import Token

from registry.services.promotions import promotion_execute
from tests.promotions.conftest import dave, erin, ready  # noqa: F401  (approvers; acme/bot v1..v3 ready)
from tests.workers.conftest import purge_queues


@pytest.fixture
def adapterctl(live_server, alice, alice_client, dave, erin):  # noqa: F811
    # alice_client made alice's token (one per user); the CLI uses it too.
    tokens = {user.username: Token.objects.get_or_create(user=user)[0].key for user in (alice, dave, erin)}

    def command(args, user: str) -> tuple[list, dict]:
        env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": tokens[user]}
        return [sys.executable, "-m", "registry.cli", *map(str, args)], env

    def run(*args, user: str = "alice") -> subprocess.CompletedProcess:
        argv, env = command(args, user)
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)

    def start(*args, user: str = "alice") -> subprocess.Popen:
        argv, env = command(args, user)
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    run.start = start
    yield run
    purge_queues()  # the approvals queued promotions.execute messages that no worker took


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def one_line(result) -> str:
    """The failure line: exit 1, exactly one line on stderr, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def executed_while_waiting(waiting: subprocess.Popen) -> tuple[str, str, str]:
    """Let `wait` show its first progress line ("promotion <id>: approved"), carry that request out as
    the worker does, then let `wait` finish."""
    first = waiting.stderr.readline()
    promotion_execute(first.split()[1].rstrip(":"))
    out, err = waiting.communicate(timeout=60)
    return first, out, err


def promoted(alice_client, version, alias: str) -> None:
    """Point an alias that needs no approval at `version` through the API and carry it out."""
    created = alice_client.post(
        "/api/v1/promotions", {"version": version.ref, "alias": alias, "reason": "setup"}, format="json"
    )
    assert created.status_code == 201 and created.json()["state"] == "approved", created.content
    promotion_execute(created.json()["id"])


def test_promote_approve_by_someone_else_wait_and_the_alias_serves_it(adapterctl, ready):  # noqa: F811
    v1, v2, _ = ready
    created = ok(
        adapterctl("promote", v1.ref, "--to", "production", "--reason", "first release", "--json", user="dave")
    )
    request = json.loads(created)
    request_id = request["id"]
    assert (request["state"], request["approvals_required"], request["gates_passed"]) == ("pending", 1, True)

    own = one_line(adapterctl("approve", request_id, user="dave"))  # an approver, but the requester
    assert "permission_denied" in own and "four eyes" in own
    assert "needs the approver or admin role" in one_line(adapterctl("approve", request_id))  # alice: an engineer
    approved = ok(adapterctl("approve", request_id, "--comment", "lgtm", user="erin"))
    assert f"promotion {request_id}  approved  acme/bot:production → {v1.ref}" in approved
    assert f"adapterctl wait {request_id}" in approved

    waiting = adapterctl.start("wait", request_id, "--interval", "0.2")
    first, out, err = executed_while_waiting(waiting)
    assert waiting.returncode == 0, (out, err)
    assert first == f"promotion {request_id}: approved\n"
    assert f"promotion {request_id}: executed (verify succeeded, move succeeded)" in err
    assert "succeeded verify" in out and "succeeded move" in out and "approve  erin" in out

    served = ok(adapterctl("alias", "acme/bot", "production"))
    assert served.startswith(f"acme/bot:production → {v1.ref}  (now)")
    assert f"100%  {v1.ref}  {v1.digest_ref}" in served
    listed = ok(adapterctl("promotions", "--adapter", "acme/bot", "--state", "executed"))
    assert request_id in listed and " UTC " in listed and "dave" in listed

    # The table a person reads after `promote`: id, state, gates; then a request withdrawn while waiting.
    second = ok(adapterctl("promote", v2.ref, "--to", "production", "--reason", "better answers"))
    second_id = second.split()[1]
    assert second.startswith(f"promotion {second_id}  pending  acme/bot:production → {v2.ref}")
    assert f"pass  ready          {v2.ref} is ready" in second and "pass  signatures" in second
    assert "needs 1 more approval(s), by an approver other than alice: adapterctl approve" in second
    assert "cancelled" in ok(adapterctl("cancel", second_id, "--reason", "wrong one"))
    newest = adapterctl("promotions", "--limit", "1")
    assert ok(newest).count("\n") == 2 and second_id in newest.stdout and "raise --limit" in newest.stderr
    cancelled = one_line(adapterctl("wait", second_id))
    assert f"promotion_cancelled: promotion {second_id} was cancelled" in cancelled


def test_promote_wait_rollback_history_as_of_and_inventory(adapterctl, ready, alice_client):  # noqa: F811
    v1, v2, _ = ready
    waiting = adapterctl.start(
        "promote", v1.ref, "--to", "staging", "--reason", "try it", "--wait", "--interval", "0.2"
    )
    first, out, err = executed_while_waiting(waiting)
    assert waiting.returncode == 0, (out, err)
    assert first.endswith(": approved\n") and "executed" in err
    assert "approved  acme/bot:staging" in out and "0 of 0 approval(s)" in out
    promoted(alice_client, v2, "staging")

    history = json.loads(ok(adapterctl("alias-history", "acme/bot", "staging", "--json")))
    assert [move["to_version"] for move in history] == [v2.ref, v1.ref]
    first_moved = datetime.fromisoformat(history[1]["moved_at"])
    in_paris = first_moved.astimezone(timezone(timedelta(hours=2))).isoformat()  # the same instant, another zone
    then = ok(adapterctl("alias", "acme/bot", "staging", "--at", in_paris))
    assert then.startswith(f"acme/bot:staging → {v1.ref}  (at {first_moved:%Y-%m-%d %H:%M:%S} UTC)")
    before = ok(adapterctl("alias", "acme/bot", "staging", "--at", "2020-01-01T00:00:00Z"))
    assert before == "acme/bot:staging was not set at 2020-01-01 00:00:00 UTC\n"

    engineer = one_line(adapterctl("rollback", "acme/bot", "--alias", "staging", "--reason", "broke"))
    assert "permission_denied" in engineer
    rolled = ok(adapterctl("rollback", "acme/bot", "--alias", "staging", "--reason", "v2 broke", user="dave"))
    assert rolled.startswith(f"acme/bot:staging → {v1.ref}\n  rollback from {v2.ref}")
    table = ok(adapterctl("alias-history", "acme/bot", "staging")).splitlines()
    assert [line.split()[3] for line in table[1:]] == ["rollback", "promote", "promote"]
    assert f"{v2.ref} → {v1.ref}  (v2 broke)" in table[1]

    csv_now = ok(adapterctl("inventory", "--alias", "staging", "--csv")).splitlines()
    assert csv_now[0] == "adapter,alias,version,digest_ref,canary,canary_weight,moved_at,moved_by"
    assert csv_now[1].startswith(f"acme/bot,staging,{v1.ref},{v1.digest_ref},,0,") and csv_now[1].endswith(",dave")
    second_moved = history[0]["moved_at"]
    csv_then = ok(adapterctl("inventory", "--alias", "staging", "--at", second_moved, "--csv")).splitlines()
    assert csv_then[1].startswith(f"acme/bot,staging,{v2.ref},")
    text = ok(adapterctl("inventory", "--alias", "staging"))
    assert "staging at " in text and " UTC: 1 adapter name(s)" in text and v1.ref in text
    assert ok(adapterctl("inventory")).endswith(": 0 adapter name(s)\n")  # production: never set


def test_canary_started_by_a_request_then_ramped_by_weight_and_promoted(adapterctl, ready, alice_client):  # noqa: F811
    v1, v2, v3 = ready
    promoted(alice_client, v1, "staging")
    started = json.loads(
        ok(adapterctl("--json", "promote", v2.ref, "--to", "staging", "--canary", "5", "--reason", "try"))
    )
    assert (started["kind"], started["canary_weight"], started["state"]) == ("canary", 5, "approved")
    promotion_execute(started["id"])
    split = ok(adapterctl("alias", "acme/bot", "staging"))
    assert f" 95%  {v1.ref}" in split and f"  5%  {v2.ref}  {v2.digest_ref}  (canary)" in split

    def canary(*args, user="dave"):
        return adapterctl("canary", "acme/bot", "--alias", "staging", *args, "--reason", "ramp", user=user)

    ramped = ok(canary("--weight", f"{v2.ref}=25"))
    assert ramped.startswith(f"acme/bot:staging → {v1.ref} 75% + {v2.ref} 25% (canary)")
    primary = one_line(canary("--weight", "v1=50"))
    assert "v1 is the primary version of acme/bot:staging" in primary and f"--weight {v2.ref}=50" in primary
    assert "is not the canary" in one_line(canary("--weight", "v3=50"))
    assert "use --promote" in one_line(canary("--weight", "100"))
    assert "permission_denied" in one_line(canary("--weight", "30", user="alice"))
    assert f"{v1.ref} 60% + {v2.ref} 40% (canary)" in ok(canary("--weight", "40%"))

    assert ok(canary("--promote")).startswith(f"acme/bot:staging → {v2.ref}\n  canary_promote from {v1.ref} 60%")
    assert ok(adapterctl("aliases", "acme/bot")) == f"staging  {v2.ref}\n"
    no_canary = one_line(canary("--abort"))
    assert "no_canary" in no_canary and "adapterctl promote REF --to staging --canary 5" in no_canary


def test_bad_input_is_one_line_and_a_non_zero_exit(adapterctl, ready):  # noqa: F811
    v1 = ready[0]
    unknown = str(uuid.uuid4())
    assert "promotion_not_found" in one_line(adapterctl("promotion", unknown))
    assert "promotion_not_found" in one_line(adapterctl("approve", unknown, user="dave"))
    assert "promotion_not_found" in one_line(adapterctl("wait", unknown, "--promotion"))
    assert "is not a promotion request id" in one_line(adapterctl("promotion", "42"))
    assert "not an RFC 3339 time" in one_line(adapterctl("alias", "acme/bot", "production", "--at", "yesterday"))
    no_zone = one_line(adapterctl("inventory", "--at", "2026-01-31T12:00:00"))
    assert "has no time zone" in no_zone
    assert "alias_not_found" in one_line(adapterctl("alias", "acme/bot", "production"))
    assert "alias_invalid" in one_line(adapterctl("promote", v1.ref, "--to", "v2", "--reason", "x"))
    assert "canary takes 1 to 99" in one_line(
        adapterctl("promote", v1.ref, "--to", "x", "--canary", "0", "--reason", "x")
    )
    # A version's id is a UUID too: the promotions endpoint does not know it, so `wait` waits for its checks.
    checked = ok(adapterctl("wait", v1.id))
    assert "check static: pass" in checked or "check dynamic: pass" in checked
