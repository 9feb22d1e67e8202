"""Alias moves re-plan residency through a real Celery worker (cpu queue) and the real broker, once per
burst: each move asks after it commits; the first message plans, the others find that plan newer
than their request and skip."""

import time

from registry.models import ResidencyPlan
from tests.residency_plans.conftest import alias, one_version
from tests.workers.conftest import pool, wait_for  # noqa: F401  (real worker processes)


def test_a_burst_of_alias_moves_is_one_replan_after_they_commit(fleet, pool, settings):  # noqa: F811
    settings.RESIDENCY_REPLAN_DEBOUNCE_SECONDS = 2
    pool.start("planner", queues="cpu")  # the pool purged what the fleet's own moves had queued
    assert not ResidencyPlan.objects.exists()

    primary = fleet.served["b0"]
    promoted = one_version(primary.base_version, "acme/b0")
    canary = one_version(primary.base_version, "acme/b1")
    alias(promoted)  # promote
    alias(fleet.served["b1"], canary=canary, weight=10)  # canary start
    alias(fleet.served["b1"], canary=canary, weight=50)  # and again, at a new weight

    plan = wait_for(lambda: ResidencyPlan.objects.first(), 60, "the re-plan after the moves", pool)
    assert plan.trigger in ("alias.promote", "alias.canary_start")
    assert plan.candidates == 12  # it saw every move: b0's new version instead of its old one, b1's canary
    time.sleep(settings.RESIDENCY_REPLAN_DEBOUNCE_SECONDS + 3)  # the other two messages have run by now
    assert ResidencyPlan.objects.count() == 1, pool.logs()
