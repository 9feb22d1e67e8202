"""Beat: every periodic entry is applied the way `celery beat` applies it, so a
misconfigured entry (a soft time limit above the task's hard limit, a task that
does not exist, a missing queue) fails here instead of logging every 10 s."""

import pytest
from celery import beat
from django.conf import settings

from registry import (
    promotion_tasks,  # noqa: F401  (as the worker's CELERY_INCLUDE does)
    residency_tasks,  # noqa: F401  (as the worker's CELERY_INCLUDE does)
    telemetry_tasks,  # noqa: F401  (as the worker's CELERY_INCLUDE does)
)
from registry.audit import tasks as audit_tasks  # noqa: F401  (as the worker's autodiscovery does)
from registry.webhooks import tasks as webhook_tasks  # noqa: F401  (as the worker's CELERY_INCLUDE does)
from tests.workers.conftest import purge_queues
from workers import tasks  # noqa: F401  (registers the tasks, as the beat process does)
from workers.celery import app


@pytest.fixture
def scheduler():
    purge_queues()
    scheduler = beat.Scheduler(app=app, lazy=True)
    scheduler.setup_schedule()
    yield scheduler
    purge_queues()


def test_it_applies_every_beat_entry_as_beat_does(scheduler):
    entries = [scheduler.data[name] for name in settings.CELERY_BEAT_SCHEDULE]
    assert {entry.task for entry in entries} >= {
        "workers.reap",
        "workers.redispatch",
        "audit.checkpoint",
        "audit.exports_expire",
        "webhooks.redeliver",
        "promotions.resume",
        "residency.telemetry_rollup",
        "residency.replan",
    }
    with app.producer_or_acquire() as producer:
        for entry in entries:
            # Raises SchedulingError ("Couldn't apply scheduled task ...") where beat would log it.
            result = scheduler.apply_async(entry, producer=producer, advance=False)
            assert result.id


def test_every_beat_entry_names_a_registered_task_and_its_queue():
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, f"{name}: unknown task {entry['task']}"
        assert entry["options"].get("queue"), f"{name}: beat entries name their queue"


def test_no_task_has_a_soft_limit_above_its_hard_limit():
    ours = [
        task
        for name, task in app.tasks.items()
        if name.startswith(("workers.", "audit.", "webhooks.", "promotions.", "residency."))
    ]
    assert ours
    for task in ours:
        assert task.time_limit and task.soft_time_limit, f"{task.name} sets both limits"
        assert task.soft_time_limit <= task.time_limit, task.name
