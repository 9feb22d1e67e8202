"""Promotions over the API: requests, four eyes, execution, gates, overrides, rollback, canaries, history."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from registry.audit.services import audit_chain_verify
from registry.models import AdapterAlias, AliasMove, AuditEvent, PromotionRequest
from registry.services.promotions import promotion_execute
from tests.promotions.conftest import evaluated, pass_checks, push, suite

pytestmark = pytest.mark.django_db


def request(client, version, alias="production", reason="better answers", **extra):
    return client.post(
        "/api/v1/promotions", {"version": version.ref, "alias": alias, "reason": reason, **extra}, format="json"
    )


def promoted(client, approver_client, version, alias="production") -> dict:
    """Request, approve when needed, execute as the worker does; the request as the API shows it then."""
    created = request(client, version, alias)
    assert created.status_code == 201, created.content
    body = created.json()
    if body["state"] == "pending":
        approved = approver_client.post(f"/api/v1/promotions/{body['id']}/approve", {"comment": "ok"}, format="json")
        assert approved.status_code == 200, approved.content
    promotion_execute(body["id"])
    return client.get(f"/api/v1/promotions/{body['id']}").json()


def alias_now(client, alias="production", name="acme/bot") -> dict:
    response = client.get(f"/api/v1/adapters/{name}/aliases/{alias}")
    assert response.status_code == 200, response.content
    return response.json()


def test_production_needs_an_approval_by_someone_else_then_a_worker_moves_it(
    alice_client, dave_client, bob_client, ready
):
    v1 = ready[0]
    created = request(alice_client, v1)
    assert created.status_code == 201
    body = created.json()
    assert (body["state"], body["approvals_required"], body["gates_passed"], body["expected_version"]) == (
        "pending",
        1,
        True,
        None,
    )
    assert {gate["gate"] for gate in body["gates"]} == {"ready", "compatibility", "signatures", "base"}
    assert alice_client.get("/api/v1/adapters/acme/bot/aliases/production").status_code == 404

    # Four eyes: the requester cannot approve; an auditor has no say.
    own = alice_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json")
    assert own.status_code == 403 and own.json()["error"]["code"] == "permission_denied"
    assert bob_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json").status_code == 403

    approved = dave_client.post(f"/api/v1/promotions/{body['id']}/approve", {"comment": "lgtm"}, format="json")
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert approved.json()["approvals"][0]["by"] == "dave"
    again = dave_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "promotion_not_pending"

    promotion_execute(body["id"])
    done = alice_client.get(f"/api/v1/promotions/{body['id']}").json()
    assert done["state"] == "executed"
    assert [(step["name"], step["state"]) for step in done["steps"]] == [("verify", "succeeded"), ("move", "succeeded")]
    served = alias_now(bob_client)
    assert (served["version"], served["split"]) == (
        v1.ref,
        [{"ref": v1.ref, "digest_ref": v1.digest_ref, "weight": 100}],
    )
    assert alice_client.get("/api/v1/adapters/acme/bot:production").json()["id"] == str(v1.id)

    [move] = AliasMove.objects.all()
    assert (move.kind, move.from_version, move.to_version_id, str(move.request_id)) == (
        "promote",
        None,
        v1.id,
        body["id"],
    )
    types = list(
        AuditEvent.objects.filter(type__startswith="promotion.").order_by("seq").values_list("type", flat=True)
    )
    assert types == [
        "promotion.requested",
        "promotion.approval",
        "promotion.approved",
        "promotion.execute",
        "promotion.executed",
    ]
    assert AuditEvent.objects.filter(type="alias.move").count() == 1
    audit_chain_verify()


def test_even_an_admin_cannot_approve_their_own_request(carol_client, dave_client, ready):
    body = request(carol_client, ready[0]).json()
    own = carol_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json")
    assert own.status_code == 403
    assert "four eyes" in own.json()["error"]["message"]
    assert AuditEvent.objects.filter(type="access.denied").count() == 1
    assert dave_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json").status_code == 200


def test_staging_needs_no_approval(alice_client, ready):
    created = request(alice_client, ready[0], alias="staging")
    assert created.json()["state"] == "approved"
    promotion_execute(created.json()["id"])
    assert alias_now(alice_client, "staging")["version"] == ready[0].ref


def test_one_open_request_per_alias(alice_client, dave_client, ready):
    first = request(alice_client, ready[0])
    second = request(alice_client, ready[1])
    assert second.status_code == 409 and second.json()["error"]["code"] == "alias_conflict"
    assert first.json()["id"] in second.json()["error"]["message"]
    cancel = alice_client.post(
        f"/api/v1/promotions/{first.json()['id']}/cancel", {"reason": "wrong one"}, format="json"
    )
    assert cancel.status_code == 200 and cancel.json()["state"] == "cancelled"
    assert request(alice_client, ready[1]).status_code == 201


def test_reject_needs_a_reason_and_closes_the_request(alice_client, dave_client, ready):
    body = request(alice_client, ready[0]).json()
    no_reason = dave_client.post(f"/api/v1/promotions/{body['id']}/reject", {}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["error"]["code"] == "reason_required"
    rejected = dave_client.post(f"/api/v1/promotions/{body['id']}/reject", {"reason": "not yet"}, format="json")
    assert rejected.json()["state"] == "rejected"
    assert rejected.json()["approvals"][0]["decision"] == "reject"
    assert AdapterAlias.objects.count() == 0


def test_a_stale_request_fails_and_leaves_the_alias_where_it_was(alice_client, dave_client, ready):
    v1, v2, v3 = ready
    promoted(alice_client, dave_client, v1)
    body = request(alice_client, v2).json()
    dave_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json")
    # Before the worker runs it, someone rolls back... to nothing earlier; so move it another way:
    alias = AdapterAlias.objects.get()
    from registry.services.transitions import AliasTarget, alias_move

    alias_move(alias.adapter, "production", AliasTarget(v3), kind="promote", reason="hotfix")
    promotion_execute(body["id"])
    failed = alice_client.get(f"/api/v1/promotions/{body['id']}").json()
    assert (failed["state"], failed["error_code"]) == ("failed", "alias_conflict")
    assert v3.ref in failed["error"]
    assert alias_now(alice_client)["version"] == v3.ref
    assert AuditEvent.objects.filter(type="promotion.failed").count() == 1


def test_execution_is_idempotent_and_resumes_after_a_worker_died(alice_client, dave_client, ready, settings):
    from registry.services.promotions import promotion_claim, promotions_resume

    body = request(alice_client, ready[0], alias="staging").json()
    assert promotion_claim(body["id"]) is not None  # a worker took it ... and died before moving
    assert promotion_execute(body["id"]) is None  # a redelivery while it is fresh: not taken twice
    PromotionRequest.objects.filter(id=body["id"]).update(
        started_at=PromotionRequest.objects.get(id=body["id"]).started_at - timedelta(minutes=5)
    )
    assert promotions_resume() == [body["id"]]
    assert promotion_execute(body["id"]).state == "executed"
    assert promotion_execute(body["id"]) is None
    assert AliasMove.objects.count() == 1


def test_rollback_goes_back_at_once_and_is_recorded(alice_client, dave_client, bob_client, ready):
    v1, v2, _ = ready
    promoted(alice_client, dave_client, v1)
    promoted(alice_client, dave_client, v2)
    assert alias_now(alice_client)["version"] == v2.ref

    refused = alice_client.post(
        "/api/v1/adapters/acme/bot/aliases/production/rollback", {"reason": "bad"}, format="json"
    )
    assert refused.status_code == 403
    no_reason = dave_client.post("/api/v1/adapters/acme/bot/aliases/production/rollback", {}, format="json")
    assert no_reason.status_code == 400

    rolled = dave_client.post(
        "/api/v1/adapters/acme/bot/aliases/production/rollback", {"reason": "errors up 3x"}, format="json"
    )
    assert rolled.status_code == 200, rolled.content
    assert (rolled.json()["kind"], rolled.json()["from_version"], rolled.json()["to_version"]) == (
        "rollback",
        v2.ref,
        v1.ref,
    )
    assert alias_now(alice_client)["version"] == v1.ref
    history = bob_client.get("/api/v1/adapters/acme/bot/aliases/production/history").json()["results"]
    assert [(m["kind"], m["to_version"], m["moved_by"]) for m in history] == [
        ("rollback", v1.ref, "dave"),
        ("promote", v2.ref, "alice"),
        ("promote", v1.ref, "alice"),
    ]
    never = dave_client.post(
        "/api/v1/adapters/acme/bot/aliases/production/rollback",
        {"reason": "x", "to": ready[2].ref},
        format="json",
    )
    assert never.status_code == 400 and never.json()["error"]["code"] == "rollback_target_invalid"


def test_what_an_alias_served_at_a_time_is_exact_at_move_boundaries(alice_client, dave_client, ready):
    v1, v2, _ = ready
    promoted(alice_client, dave_client, v1)
    promoted(alice_client, dave_client, v2)
    first, second = AliasMove.objects.order_by("moved_at")

    def at(moment):
        text = moment.isoformat().replace("+00:00", "Z")
        response = alice_client.get("/api/v1/adapters/acme/bot/aliases/production", {"at": text})
        assert response.status_code == 200, response.content
        return response.json()["version"]

    tick = timedelta(microseconds=1)
    assert at(first.moved_at - tick) is None
    assert at(first.moved_at) == v1.ref
    assert at(second.moved_at - tick) == v1.ref
    assert at(second.moved_at) == v2.ref
    nobody = alice_client.get("/api/v1/adapters/acme/nobody/aliases/production", {"at": "2026-01-01T00:00:00Z"})
    assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "adapter_not_found"
    unset = alice_client.get("/api/v1/adapters/acme/bot/aliases/canary")
    assert unset.status_code == 404 and unset.json()["error"]["code"] == "alias_not_found"
    bad = alice_client.get("/api/v1/adapters/acme/bot/aliases/production", {"at": "yesterday"})
    assert bad.status_code == 400 and "at" in bad.json()["error"]["detail"]


def test_the_inventory_lists_what_was_live_across_names(alice_client, dave_client, ready, zoo):
    v1, v2, _ = ready
    promoted(alice_client, dave_client, v1)
    other = pass_checks(push(alice_client, zoo, "rslora", name="acme/other")["id"])
    promoted(alice_client, dave_client, other)
    between = AliasMove.objects.order_by("-moved_at").first().moved_at
    promoted(alice_client, dave_client, v2)

    now = alice_client.get("/api/v1/inventory").json()
    assert {(row["adapter"], row["version"]) for row in now["rows"]} == {
        ("acme/bot", v2.ref),
        ("acme/other", other.ref),
    }
    then = alice_client.get("/api/v1/inventory", {"at": between.isoformat().replace("+00:00", "Z"), "format": "csv"})
    assert then["Content-Type"].startswith("text/csv")
    lines = then.content.decode().splitlines()
    assert lines[0] == "adapter,alias,version,digest_ref,canary,canary_weight,moved_at,moved_by"
    assert sorted(line.split(",")[2] for line in lines[1:]) == sorted([v1.ref, other.ref])


def test_a_canary_ramps_promotes_and_aborts_each_a_recorded_move(alice_client, dave_client, ready):
    v1, v2, v3 = ready
    promoted(alice_client, dave_client, v1)
    created = request(alice_client, v2, canary_weight=5)
    assert created.json()["kind"] == "canary"
    dave_client.post(f"/api/v1/promotions/{created.json()['id']}/approve", {}, format="json")
    promotion_execute(created.json()["id"])
    served = alias_now(alice_client)
    assert (served["version"], served["canary"], served["canary_weight"]) == (v1.ref, v2.ref, 5)
    assert [part["weight"] for part in served["split"]] == [95, 5]

    url = "/api/v1/adapters/acme/bot/aliases/production/canary"
    assert alice_client.post(url, {"action": "ramp", "weight": 50, "reason": "fine"}, format="json").status_code == 403
    bad = dave_client.post(url, {"action": "ramp", "weight": 100, "reason": "all"}, format="json")
    assert bad.status_code == 400
    assert dave_client.post(url, {"action": "ramp", "weight": 50, "reason": "fine"}, format="json").status_code == 200
    assert alias_now(alice_client)["canary_weight"] == 50
    assert dave_client.post(url, {"action": "promote", "reason": "good"}, format="json").status_code == 200
    served = alias_now(alice_client)
    assert (served["version"], served["canary"]) == (v2.ref, None)
    none_left = dave_client.post(url, {"action": "abort", "reason": "x"}, format="json")
    assert none_left.status_code == 409 and none_left.json()["error"]["code"] == "no_canary"

    canary = request(alice_client, v3, canary_weight=10).json()
    dave_client.post(f"/api/v1/promotions/{canary['id']}/approve", {}, format="json")
    promotion_execute(canary["id"])
    assert dave_client.post(url, {"action": "abort", "reason": "latency"}, format="json").status_code == 200
    assert (alias_now(alice_client)["version"], alias_now(alice_client)["canary"]) == (v2.ref, None)
    kinds = list(AliasMove.objects.order_by("moved_at").values_list("kind", flat=True))
    assert kinds == ["promote", "canary_start", "canary_ramp", "canary_promote", "canary_start", "canary_abort"]


# --- Gates ------------------------------------------------------------------------------------


def _gate(body: dict, name: str) -> dict:
    return next(gate for gate in body["gates"] if gate["gate"].startswith(name))


def test_a_version_still_checking_fails_the_ready_gate(alice_client, dave_client, ready, zoo):
    checking = push(alice_client, zoo, "modules_to_save")
    body = alice_client.post(
        "/api/v1/promotions", {"version": checking["ref"], "alias": "production", "reason": "r"}, format="json"
    ).json()
    assert body["gates_passed"] is False
    assert _gate(body, "ready")["passed"] is False and "checking" in _gate(body, "ready")["detail"]
    assert _gate(body, "compatibility")["passed"] is False
    refused = dave_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "gates_failed"
    assert PromotionRequest.objects.get(id=body["id"]).state == "pending"


def test_a_ready_version_without_its_dynamic_check_fails_only_the_compatibility_gate(alice_client, ready):
    ready[0].checks.filter(kind="dynamic").delete()
    body = request(alice_client, ready[0], alias="staging").json()
    failed = [gate["gate"] for gate in body["gates"] if not gate["passed"]]
    assert failed == ["compatibility"] and body["state"] == "pending"


@pytest.mark.parametrize(
    "metric,served,candidate,passes",
    [
        ("accuracy", 0.90, 0.896, True),  # within half a point
        ("accuracy", 0.90, 0.89, False),  # a full point lower
        ("perplexity", 10.0, 10.19, True),  # +1.9%
        ("perplexity", 10.0, 10.3, False),  # +3%
    ],
)
def test_metric_thresholds_against_the_served_version(
    alice_client, dave_client, ready, metric, served, candidate, passes
):
    v1, v2, _ = ready
    suite_ref = suite(alice_client)
    alice_client.post(f"/api/v1/suites/{suite_ref}/attach", {"adapter": "acme/bot"}, format="json")
    evaluated(alice_client, v1, suite_ref, {metric: served})
    promoted(alice_client, dave_client, v1)
    evaluated(alice_client, v2, suite_ref, {metric: candidate})
    body = request(alice_client, v2).json()
    gate = _gate(body, "evaluation")
    assert gate["passed"] is passes, gate
    assert gate["numbers"]["candidate"] == {metric: candidate} and gate["numbers"]["served"] == {metric: served}


def test_a_required_suite_without_an_evaluation_fails(alice_client, ready):
    suite_ref = suite(alice_client)
    alice_client.post(f"/api/v1/suites/{suite_ref}/attach", {"adapter": "acme/bot"}, format="json")
    body = request(alice_client, ready[0], alias="staging").json()
    assert [gate["gate"] for gate in body["gates"] if not gate["passed"]] == [f"evaluation {suite_ref}"]


def test_signatures_are_re_verified_under_the_namespace_policy(alice_client, carol_client, ready):
    changed = carol_client.put("/api/v1/namespaces/acme/signing-policy", {"require_signature": True}, format="json")
    assert changed.status_code == 200, changed.content
    body = request(alice_client, ready[0], alias="staging").json()
    gate = _gate(body, "signatures")
    assert gate["passed"] is False and "signature_required" in gate["detail"]


def test_a_base_change_fails_unless_the_policy_allows_it(alice_client, carol_client, dave_client, ready, zoo):
    promoted(alice_client, dave_client, ready[0])
    other_base = "acme/llama-sharded"
    from tests.helpers import directory_files, upload

    assert (
        upload(alice_client, "/api/v1/bases/", {"name": other_base}, directory_files(zoo.llama_sharded)).status_code
        == 201
    )
    moved = pass_checks(push(alice_client, zoo, "rslora", base=f"{other_base}:v1")["id"])
    body = request(alice_client, moved).json()
    assert _gate(body, "base")["passed"] is False
    alice_client.post(f"/api/v1/promotions/{body['id']}/cancel", {}, format="json")

    policy = {"approvals": 1, "allow_base_change": True}
    assert (
        carol_client.put("/api/v1/namespaces/acme/promotion-policy/production", policy, format="json").status_code
        == 200
    )
    assert _gate(request(alice_client, moved).json(), "base")["passed"] is True


def test_an_admin_override_needs_a_reason_and_is_marked(alice_client, carol_client, dave_client, ready, zoo):
    checking = push(alice_client, zoo, "modules_to_save")
    engineer = alice_client.post(
        "/api/v1/promotions",
        {"version": checking["ref"], "alias": "staging", "reason": "r", "override_reason": "trust me"},
        format="json",
    )
    assert engineer.status_code == 403
    body = carol_client.post(
        "/api/v1/promotions",
        {"version": checking["ref"], "alias": "staging", "reason": "r", "override_reason": "incident 42: hotfix"},
        format="json",
    ).json()
    assert (body["state"], body["gates_passed"], body["override"]) == (
        "approved",
        False,
        {"by": "carol", "reason": "incident 42: hotfix"},
    )
    promotion_execute(body["id"])
    assert alias_now(alice_client, "staging")["version"] == checking["ref"]
    move = AliasMove.objects.get()
    assert move.evidence["override"] == "incident 42: hotfix"


# --- Roles and policies ------------------------------------------------------------------------


def test_role_checks_on_every_write(bob_client, alice_client, dave_client, ready):
    promoted(alice_client, dave_client, ready[0])
    body = request(alice_client, ready[1]).json()
    writes = [
        ("/api/v1/promotions", {"version": ready[1].ref, "alias": "staging", "reason": "r"}),
        (f"/api/v1/promotions/{body['id']}/approve", {}),
        (f"/api/v1/promotions/{body['id']}/reject", {"reason": "r"}),
        (f"/api/v1/promotions/{body['id']}/cancel", {}),
        ("/api/v1/adapters/acme/bot/aliases/production/rollback", {"reason": "r"}),
        ("/api/v1/adapters/acme/bot/aliases/production/canary", {"action": "abort", "reason": "r"}),
    ]
    for url, data in writes:
        response = bob_client.post(url, data, format="json")
        assert response.status_code == 403, url
    assert bob_client.put("/api/v1/namespaces/acme/promotion-policy/production", {}, format="json").status_code == 403
    anonymous = APIClient()
    for url in ("/api/v1/promotions", "/api/v1/inventory", "/api/v1/adapters/acme/bot/aliases/production"):
        assert anonymous.get(url).status_code == 401, url
    # Auditors read everything.
    assert bob_client.get(f"/api/v1/promotions/{body['id']}").status_code == 200
    assert bob_client.get("/api/v1/promotions", {"state": "pending"}).json()["results"][0]["id"] == body["id"]


@pytest.mark.parametrize(
    "document,field",
    [
        ({"approvals": 9}, "approvals"),
        ({"approvals": True}, "approvals"),
        ({"colour": "blue"}, "colour"),
        ({"thresholds": {"accuracy": {"max_drop": 1}}}, "thresholds.accuracy"),
        ({"suites": "acme/corpus"}, "suites"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(carol_client, document, field):
    response = carol_client.put("/api/v1/namespaces/acme/promotion-policy/production", document, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "promotion_policy_invalid" and error["detail"]["field"] == field


def test_policy_defaults_and_changes_are_audited(carol_client, alice_client):
    assert alice_client.get("/api/v1/namespaces/acme/promotion-policy/production").json()["policy"]["approvals"] == 1
    assert alice_client.get("/api/v1/namespaces/acme/promotion-policy/staging").json()["policy"]["approvals"] == 0
    carol_client.put("/api/v1/namespaces/acme/promotion-policy/*", {"approvals": 2}, format="json")
    assert alice_client.get("/api/v1/namespaces/acme/promotion-policy/staging").json()["policy"]["approvals"] == 2
    event = AuditEvent.objects.get(type="promotion_policy.change")
    assert (event.before["approvals"], event.after["approvals"]) == (0, 2)


def test_two_approvals_when_the_policy_says_so(alice_client, carol_client, dave_client, erin_client, ready):
    carol_client.put("/api/v1/namespaces/acme/promotion-policy/production", {"approvals": 2}, format="json")
    body = request(alice_client, ready[0]).json()
    assert dave_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json").json()["state"] == "pending"
    assert erin_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json").json()["state"] == "approved"


def test_a_policy_can_require_approval_for_rollbacks(alice_client, carol_client, dave_client, erin_client, ready):
    v1, v2, _ = ready
    suite_ref = suite(alice_client)
    alice_client.post(f"/api/v1/suites/{suite_ref}/attach", {"adapter": "acme/bot"}, format="json")
    evaluated(alice_client, v1, suite_ref, {"accuracy": 0.80})
    promoted(alice_client, dave_client, v1)
    evaluated(alice_client, v2, suite_ref, {"accuracy": 0.90})
    promoted(alice_client, dave_client, v2)
    carol_client.put(
        # Promotions need none, rollbacks one: the request counts the rollback's approvals.
        "/api/v1/namespaces/acme/promotion-policy/production",
        {"approvals": 0, "rollback_approvals": 1},
        format="json",
    )
    asked = dave_client.post(
        "/api/v1/adapters/acme/bot/aliases/production/rollback", {"reason": "complaints"}, format="json"
    )
    assert asked.status_code == 202, asked.content
    body = asked.json()
    # Going back to a version it served: held to be intact, not to beat v2's accuracy.
    assert (body["kind"], body["version"], body["state"], body["gates_passed"]) == ("rollback", v1.ref, "pending", True)
    assert {gate["gate"] for gate in body["gates"]} == {"ready", "compatibility", "signatures"}
    assert alias_now(alice_client)["version"] == v2.ref
    assert erin_client.post(f"/api/v1/promotions/{body['id']}/approve", {}, format="json").status_code == 200
    promotion_execute(body["id"])
    assert alias_now(alice_client)["version"] == v1.ref
    assert AliasMove.objects.order_by("-moved_at").first().kind == "rollback"


def test_a_rollback_while_a_canary_runs_drops_the_canary(alice_client, dave_client, ready):
    v1, v2, _ = ready
    promoted(alice_client, dave_client, v1, alias="staging")
    canary = request(alice_client, v2, alias="staging", canary_weight=20).json()
    promotion_execute(canary["id"])
    assert alias_now(alice_client, "staging")["canary"] == v2.ref
    rolled = dave_client.post("/api/v1/adapters/acme/bot/aliases/staging/rollback", {"reason": "5xx"}, format="json")
    assert rolled.status_code == 200, rolled.content
    assert (rolled.json()["kind"], rolled.json()["from_canary"], rolled.json()["canary"]) == ("rollback", v2.ref, None)
    served = alias_now(alice_client, "staging")
    assert (served["version"], served["canary"], served["split"][0]["weight"]) == (v1.ref, None, 100)
