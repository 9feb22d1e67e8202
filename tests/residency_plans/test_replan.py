"""residency_replan: what it stores (invariants of the plan), the canary split, hysteresis, the
webhook and audit event it writes, its debounce and its serialisation."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from registry.models import AuditEvent, ResidencyPin, ResidencyPlan, Webhook, WebhookDelivery, WorkerDesiredState
from registry.residency.actions import adapter_path
from registry.services.residency import REPLAN_LOCK_KEY, residency_replan
from tests.residency_plans.conftest import alias, one_version, traffic

TIERS = ("gpu", "host", "disk")


def states_of(plan: ResidencyPlan) -> dict:
    return {state.worker.name: state for state in plan.worker_states.select_related("worker")}


def refs(state: WorkerDesiredState, tier: str) -> list[str]:
    return [entry["ref"] for entry in state.desired[tier]]


def assert_invariants(plan: ResidencyPlan, fleet) -> None:
    """Capacity never exceeded, affinity and rank respected, nothing no alias serves, pins kept."""
    served = {version.digest_ref: version for version in fleet.served.values()}
    for name, state in states_of(plan).items():
        worker = fleet.workers[name]
        bases = set(worker.base_versions.values_list("id", flat=True))
        gpu = state.desired["gpu"]
        if worker.gpu_slots is not None:
            assert len(gpu) <= worker.gpu_slots
        if worker.gpu_bytes is not None:
            assert sum(entry["bytes"] for entry in gpu) <= worker.gpu_bytes
        host = state.desired["host"]
        assert len(host) <= (worker.host_slots if worker.host_slots is not None else len(host))
        assert sum(entry["bytes"] for entry in host) <= (worker.host_bytes or 0) or worker.host_bytes is None
        assert sum(entry["bytes"] for entry in state.desired["disk"]) <= (worker.disk_bytes or 0)
        for tier in TIERS:
            for entry in state.desired[tier]:
                version = served.get(entry["ref"])
                assert version is not None, f"{entry['ref']} is planned but no alias serves it on a served base"
                assert version.base_version_id in bases, f"{entry['ref']} on {name}, which does not serve its base"
                assert worker.max_rank is None or version.r <= worker.max_rank
                assert entry["path"] == adapter_path(entry["ref"]) and entry["bytes"] == version.total_bytes
    for name in ("w1", "w2"):  # a5 is pinned on every worker that serves llama
        assert fleet.served["a5"].digest_ref in refs(states_of(plan)[name], "gpu")
    assert fleet.served["b2"].digest_ref in refs(states_of(plan)["w3"], "gpu")  # the alias pin, on w3


def test_the_stored_plan_keeps_every_invariant(fleet):
    plan = residency_replan(trigger="manual")
    assert_invariants(plan, fleet)
    assert plan.candidates == 11  # a0..a7 and b0..b2: not phi's (no worker), not the unaliased version
    states = states_of(plan)
    assert set(states) == {"w1", "w2", "w3"} and all(s.changed for s in states.values())
    assert fleet.served["a1"].digest_ref not in [r for t in TIERS for r in refs(states["w1"], t)]  # rank 64 > 32
    unpinned = [e["demand"] for e in states["w1"].desired["gpu"] if e["ref"] != fleet.served["a5"].digest_ref]
    assert unpinned == sorted(unpinned, reverse=True) and fleet.served["a0"].digest_ref in refs(states["w1"], "gpu")
    assert 0 < plan.expected_gpu_hit_rate <= 1 and plan.summary["ignored_pins"] == []
    assert all(len(s.digest) == 64 for s in states.values())


def test_the_same_input_gives_the_same_states_and_no_change(fleet):
    first = states_of(residency_replan(trigger="manual"))
    second = states_of(residency_replan(trigger="alias.promote"))
    for name, state in second.items():
        assert state.digest == first[name].digest and not state.changed
        assert state.desired["evict"] == []


def test_a_periodic_replan_that_changes_nothing_stores_nothing_until_the_plan_is_old(fleet):
    from registry.services import residency

    first = residency_replan(trigger="manual")
    assert residency_replan(trigger="periodic") == first and ResidencyPlan.objects.count() == 1
    assert AuditEvent.objects.filter(type="residency.plan").count() == 1
    ResidencyPlan.objects.filter(id=first.id).update(
        created_at=first.created_at - timedelta(seconds=residency.PERIODIC_REFRESH_SECONDS + 1)
    )
    refreshed = residency_replan(trigger="periodic")
    assert refreshed != first and not any(s.changed for s in refreshed.worker_states.all())
    ResidencyPin.objects.create(adapter_version=fleet.served["b1"], worker=fleet.workers["w3"])
    changed = residency_replan(trigger="periodic")  # a change is stored at once
    assert changed != refreshed and changed.summary["changed_workers"] == ["w3"]


def roomy(worker) -> None:
    """Room on the GPU for everything its base has, so every demand figure shows in its state."""
    worker.gpu_slots = 8
    worker.save(update_fields=["gpu_slots"])


def test_a_brand_new_canary_takes_its_weight_of_the_alias_demand(fleet):
    roomy(fleet.workers["w3"])
    primary = fleet.served["b0"]
    canary = one_version(primary.base_version, "acme/b0")
    alias(primary, canary=canary, weight=25)
    desired = {
        entry["ref"]: entry for tier in TIERS for entry in states_of(residency_replan(trigger="t"))["w3"].desired[tier]
    }
    alias_demand = desired[primary.digest_ref]["demand"] + desired[canary.digest_ref]["demand"]
    assert alias_demand > 0
    assert desired[canary.digest_ref]["demand"] == pytest.approx(0.25 * alias_demand)
    assert desired[primary.digest_ref]["demand"] == pytest.approx(0.75 * alias_demand)


def test_the_canary_split_shares_what_both_versions_served(fleet):
    roomy(fleet.workers["w3"])
    primary = fleet.served["b1"]  # 250 requests over the window
    canary = one_version(primary.base_version, "acme/b1")
    alias(primary, canary=canary, weight=40)
    traffic(fleet.workers["w3"], canary, requests=250)
    plan = residency_replan(trigger="t")
    demand = {e["ref"]: e["demand"] for t in TIERS for e in states_of(plan)["w3"].desired[t]}
    assert demand[canary.digest_ref] == pytest.approx(demand[primary.digest_ref] * 40 / 60)


def test_a_pin_on_a_version_no_alias_serves_is_ignored_and_said_so(fleet):
    ResidencyPin.objects.create(adapter_version=fleet.others["unaliased"])
    plan = residency_replan(trigger="manual")
    assert plan.summary["ignored_pins"] == [fleet.others["unaliased"].digest_ref]
    assert_invariants(plan, fleet)


def test_the_webhook_fires_only_for_workers_whose_state_changed(fleet):
    Webhook.objects.create(url="https://hooks.example/residency", events=["residency.plan_changed"], secret="s" * 32)
    first = residency_replan(trigger="manual")
    announced = WebhookDelivery.objects.filter(event="residency.plan_changed")
    assert sorted(d.payload["worker"] for d in announced) == ["w1", "w2", "w3"]
    residency_replan(trigger="periodic")
    assert announced.count() == 3  # nothing changed, nothing announced

    # A pin on w3 changes its state only (demand, and so every other worker's share, stays as it was).
    ResidencyPin.objects.create(adapter_version=fleet.served["b1"], worker=fleet.workers["w3"])
    third = residency_replan(trigger="pin")
    changed = WebhookDelivery.objects.filter(event="residency.plan_changed").exclude(payload__plan__in=[first.id])
    assert [d.payload["worker"] for d in changed] == ["w3"]
    payload = changed.get().payload
    assert payload["plan"] == third.id and payload["previous_digest"] == states_of(first)["w3"].digest
    assert fleet.served["b1"].digest_ref in refs(states_of(third)["w3"], "gpu")
    assert payload["counts"]["evict"] == len(states_of(third)["w3"].desired["evict"]) >= 1
    assert {n: s.changed for n, s in states_of(third).items()} == {"w1": False, "w2": False, "w3": True}


def test_each_plan_is_one_audit_event_with_counts_not_the_plan(fleet):
    plan = residency_replan(trigger="manual")
    event = AuditEvent.objects.get(type="residency.plan")
    assert (event.object_type, event.object_id, event.reason) == (
        "residency_plan",
        str(plan.id),
        "residency re-plan (manual)",
    )
    assert event.after["gpu"] == plan.summary["gpu"] and event.after["changed_workers"] == ["w1", "w2", "w3"]
    assert "desired" not in str(event.after) and fleet.served["a0"].digest not in str(event.after)


def test_without_serving_workers_only_an_admins_replan_is_recorded(db):
    assert residency_replan(trigger="periodic") is None
    assert residency_replan(trigger="alias.promote") is None  # alias moves in a registry serving no fleet
    assert not ResidencyPlan.objects.exists() and not AuditEvent.objects.filter(type="residency.plan").exists()
    plan = residency_replan(trigger="manual")
    assert (plan.candidates, plan.worker_states.count(), plan.summary["workers"]) == (0, 0, 0)
    assert residency_replan(trigger="periodic") == plan


def test_a_fleet_without_candidates_plans_empty_states(fleet):
    from registry.models import AdapterAlias

    AdapterAlias.objects.all().delete()  # no alias serves anything any more
    plan = residency_replan(trigger="manual")
    assert plan.candidates == 0 and all(s.desired["gpu"] == [] for s in plan.worker_states.all())


def test_a_replan_asked_for_before_the_newest_plan_started_is_that_plan(fleet):
    asked = timezone.now()
    newest = residency_replan(trigger="periodic")
    assert residency_replan(trigger="alias.promote", unless_planned_since=asked) == newest
    assert ResidencyPlan.objects.count() == 1
    later = residency_replan(trigger="alias.promote", unless_planned_since=timezone.now() + timedelta(seconds=1))
    assert later != newest and ResidencyPlan.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_replans_never_interleave(fleet):
    """While another transaction holds the re-plan lock, a re-plan waits for it, then compares with
    the plan that transaction stored."""
    held, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REPLAN_LOCK_KEY])
            residency_replan(trigger="first")  # re-entrant within one transaction
            held.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert held.wait(30)
    finished = []
    waiter = threading.Thread(target=lambda: (finished.append(residency_replan(trigger="second")), connection.close()))
    waiter.start()
    time.sleep(1.0)
    assert not finished, "the second re-plan ran while the first held the lock"
    release.set()
    holder.join(30)
    waiter.join(30)
    first, second = ResidencyPlan.objects.order_by("created_at")
    assert (first.trigger, second.trigger) == ("first", "second")
    assert not any(state.changed for state in second.worker_states.all())  # it saw the first's states
