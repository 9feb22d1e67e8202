"""The residency plan API: the latest plan, a worker's desired state and its engine's calls, routing
hints, the admin's re-plan, and the 4xx answers (stable codes) when there is nothing to show."""

import pytest
from rest_framework.test import APIClient

from registry.models import ResidencyPin, ResidencyPlan
from registry.residency.actions import adapter_path
from registry.services.residency import residency_replan
from tests.conftest import _client_for
from tests.residency_plans.conftest import alias, one_version


@pytest.fixture
def carol_client(carol):
    return _client_for(carol)


def error(response, status: int) -> str:
    assert response.status_code == status, response.content
    return response.json()["error"]["code"]


def test_before_any_plan_every_read_is_a_404_saying_so(fleet, alice_client):
    assert error(alice_client.get("/api/v1/residency/plan"), 404) == "residency_plan_not_found"
    assert error(alice_client.get("/api/v1/residency/routes"), 404) == "residency_plan_not_found"
    answer = alice_client.get("/api/v1/residency/workers/w1/plan")
    assert error(answer, 404) == "residency_plan_not_found" and "next re-plan" in answer.json()["error"]["message"]


def test_bad_input_is_a_4xx_with_a_stable_code(fleet, alice_client, bob_client):
    residency_replan(trigger="manual")
    assert error(alice_client.get("/api/v1/residency/workers/nobody/plan"), 404) == "serving_worker_not_found"
    assert error(alice_client.get("/api/v1/residency/workers/w1/plan?format=lorax"), 400) == "validation_error"
    for bad in ("relative/dir", "/srv/../etc", "/srv/a\x01b"):
        answer = alice_client.get("/api/v1/residency/workers/w1/plan", {"format": "vllm", "dir": bad})
        assert error(answer, 400) == "invalid_dir"
    assert error(alice_client.get("/api/v1/residency/routes?adapter=not a ref"), 400) == "invalid_ref"
    assert error(alice_client.get("/api/v1/residency/routes?adapter=acme/nothing:v1"), 404) == "adapter_not_found"
    assert error(alice_client.get("/api/v1/residency/plan?full=maybe"), 400) == "validation_error"
    assert error(APIClient().get("/api/v1/residency/plan"), 401) == "not_authenticated"
    assert error(alice_client.post("/api/v1/residency/replan"), 403) == "permission_denied"  # an engineer
    assert error(bob_client.post("/api/v1/residency/replan"), 403) == "permission_denied"  # an auditor


def test_an_admins_replan_of_an_empty_fleet_is_an_empty_plan(carol_client):
    answer = carol_client.post("/api/v1/residency/replan")
    assert answer.status_code == 201 and (answer.json()["workers"], answer.json()["candidates"]) == ([], 0)


def test_an_admin_replans_and_everyone_reads_the_plan(fleet, carol_client, bob_client):
    made = carol_client.post("/api/v1/residency/replan")
    assert made.status_code == 201, made.content
    plan = made.json()
    assert plan["trigger"] == "manual" and plan["candidates"] == 11
    assert [w["name"] for w in plan["workers"]] == ["w1", "w2", "w3"] and "gpu" not in plan["workers"][0]
    latest = bob_client.get("/api/v1/residency/plan").json()
    assert latest["id"] == plan["id"] and latest["workers"][0]["counts"]["gpu"] == 3
    full = bob_client.get("/api/v1/residency/plan?full=1").json()
    w1 = full["workers"][0]
    assert len(w1["gpu"]) == w1["counts"]["gpu"] and {"ref", "path", "bytes", "rank", "demand"} <= set(w1["gpu"][0])


def test_a_workers_desired_state_has_refs_paths_sizes_ranks_and_its_plan(fleet, alice_client):
    plan = residency_replan(trigger="manual")
    answer = alice_client.get("/api/v1/residency/workers/w2/plan")
    assert answer.status_code == 200, answer.content
    desired = answer.json()
    assert (desired["worker"], desired["engine"], desired["format"]) == ("w2", "sglang", "desired")
    assert desired["plan"]["id"] == plan.id and desired["changed"] is True
    assert 0 <= desired["expected_gpu_hit_rate"] <= 1
    pinned = fleet.served["a5"]
    entry = next(e for e in desired["gpu"] if e["ref"] == pinned.digest_ref)
    assert entry == {**entry, "path": adapter_path(pinned.digest_ref), "bytes": pinned.total_bytes, "rank": 16}
    assert entry["pinned"] is True


def test_the_engine_formats_are_the_calls_from_the_previous_plan_to_this_one(fleet, alice_client):
    first = residency_replan(trigger="manual")
    vllm = alice_client.get("/api/v1/residency/workers/w1/plan", {"format": "vllm", "dir": "/srv/adapters/"}).json()
    assert vllm["previous_plan"] is None and vllm["directory"] == "/srv/adapters"
    w1 = first.worker_states.get(worker__name="w1").desired
    assert [(a["op"], a["ref"]) for a in vllm["actions"]] == [("load", e["ref"]) for e in w1["gpu"] + w1["host"]]
    assert vllm["actions"][0]["path"] == "/v1/load_lora_adapter"
    assert vllm["actions"][0]["body"]["lora_path"] == f"/srv/adapters/{w1['gpu'][0]['path']}"

    # Pin b1 on w3: its GPU takes b1 and drops b0; the calls are exactly that change.
    ResidencyPin.objects.create(adapter_version=fleet.served["b1"], worker=fleet.workers["w3"])
    second = residency_replan(trigger="pin")
    sglang = alice_client.get("/api/v1/residency/workers/w3/plan", {"format": "sglang"}).json()
    assert sglang["previous_plan"] == first.id and sglang["plan"]["id"] == second.id
    b0, b1 = fleet.served["b0"].digest_ref, fleet.served["b1"].digest_ref
    assert [(a["op"], a["ref"], a["body"].get("pinned")) for a in sglang["actions"]] == [
        ("unload", b0, None),
        ("load", b1, True),
    ]
    assert sglang["actions"][1]["body"]["lora_path"] == adapter_path(b1)  # no dir: relative
    unchanged = alice_client.get("/api/v1/residency/workers/w1/plan", {"format": "sglang"}).json()
    assert unchanged["actions"] == []


def test_routes_list_gpu_holders_by_planned_load_then_host_then_disk(fleet, alice_client):
    plan = residency_replan(trigger="manual")
    states = {s.worker.name: s.desired for s in plan.worker_states.select_related("worker")}
    routes = {r["adapter"]: r["workers"] for r in alice_client.get("/api/v1/residency/routes").json()["routes"]}
    a5 = fleet.served["a5"].digest_ref  # pinned on w1 and w2
    lighter, heavier = sorted(("w1", "w2"), key=lambda name: (states[name]["planned_load"], name))
    assert [(h["name"], h["tier"]) for h in routes[a5]] == [(lighter, "gpu"), (heavier, "gpu")]
    assert routes[a5][0]["endpoint"] == f"http://{lighter}.internal:8000"
    for ref, holders in routes.items():
        tiers = [h["tier"] for h in holders]
        assert tiers == sorted(tiers, key=("gpu", "host", "disk").index), ref
    planned = {e["ref"] for d in states.values() for t in ("gpu", "host", "disk") for e in d[t]}
    assert set(routes) == planned


def test_routes_for_one_adapter_and_for_an_alias_with_its_canary(fleet, alice_client):
    roomy = fleet.workers["w3"]
    roomy.gpu_slots = 8
    roomy.save(update_fields=["gpu_slots"])
    canary = one_version(fleet.served["b0"].base_version, "acme/b0")
    alias(fleet.served["b0"], canary=canary, weight=10)
    residency_replan(trigger="manual")
    one = alice_client.get("/api/v1/residency/routes", {"adapter": fleet.served["b0"].ref}).json()["routes"]
    assert one == [{"adapter": fleet.served["b0"].digest_ref, "workers": [
        {"name": "w3", "tier": "gpu", "endpoint": "http://w3.internal:8000"}]}]  # fmt: skip
    both = alice_client.get("/api/v1/residency/routes", {"adapter": "acme/b0:production"}).json()["routes"]
    assert [r["adapter"] for r in both] == [fleet.served["b0"].digest_ref, canary.digest_ref]
    assert both[1]["workers"][0]["name"] == "w3"
    nowhere = alice_client.get("/api/v1/residency/routes", {"adapter": fleet.others["unaliased"].ref}).json()
    assert nowhere["routes"] == [{"adapter": fleet.others["unaliased"].digest_ref, "workers": []}]


def test_the_manual_replan_is_recorded_as_the_admin_did_it(fleet, carol_client):
    from registry.models import AuditEvent

    carol_client.post("/api/v1/residency/replan")
    event = AuditEvent.objects.get(type="residency.plan")
    assert event.actor_name == "carol" and event.object_id == str(ResidencyPlan.objects.get().id)
