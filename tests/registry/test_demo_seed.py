"""The demo seed registers real, trained models with lineage, and is idempotent; once the worker has
checked and evaluated its versions, it records a promotion history through the promotion services."""

import logging

import numpy as np
import pytest
from celery.exceptions import Retry
from django.contrib.auth.models import User
from django.utils import timezone
from safetensors.numpy import load_file

from registry import roles
from registry.demo.seed import DEMO_USERS, ensure_demo_users, ensure_roles, seed_demo
from registry.demo.tasks import seed_demo_promotions
from registry.models import (
    AdapterAlias,
    AdapterVersion,
    AliasMove,
    AuditEvent,
    BaseModelVersion,
    Blob,
    Job,
    PromotionApproval,
    PromotionRequest,
    Signature,
    SigningPolicy,
    Status,
    Worker,
)
from workers import execute
from workers.tasks import _run_job

# One xdist process for the module, so that both tests share the models built once.
pytestmark = pytest.mark.xdist_group("demo_seed")


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    """Models are built once for the module (the slow part); each test registers them in its own database."""
    return tmp_path_factory.mktemp("demo-build")


def _seeded(root) -> list[str]:
    ensure_roles()
    ensure_demo_users()
    return seed_demo(root)


def _promotion_counts() -> tuple[int, ...]:
    return (
        AliasMove.objects.count(),
        PromotionRequest.objects.count(),
        PromotionApproval.objects.count(),
        AuditEvent.objects.filter(type__startswith="promotion.").count(),
    )


def test_it_seeds_trained_adapters_with_lineage_once(db, build_root, caplog):
    with caplog.at_level(logging.INFO, logger="registry.demo.promotions"):
        refs = _seeded(build_root)
    counts = (
        BaseModelVersion.objects.count(),
        AdapterVersion.objects.count(),
        Blob.objects.count(),
        Job.objects.count(),
        Signature.objects.count(),
        SigningPolicy.objects.count(),
    )

    ensure_demo_users()
    assert seed_demo(build_root) == refs
    assert (
        BaseModelVersion.objects.count(),
        AdapterVersion.objects.count(),
        Blob.objects.count(),
        Job.objects.count(),
        Signature.objects.count(),
        SigningPolicy.objects.count(),
    ) == counts
    # One version arrives signed by the demo CI key, which the demo namespace's policy trusts.
    signed = Signature.objects.get()
    assert (signed.version.ref, signed.key_id, signed.trusted, signed.policy_version) == (
        "demo/support-bot:v2",
        "demo-ci",
        True,
        1,
    )
    # Every demo adapter passes the static check and is queued for the dynamic one and an evaluation.
    assert set(AdapterVersion.objects.values_list("status", flat=True)) == {"checking"}
    assert Job.objects.filter(kind="evaluation").count() == AdapterVersion.objects.count()

    minilm = BaseModelVersion.objects.get(base_model__name="all-minilm-l6-v2")
    assert minilm.architecture == "BertModel" and 22_000_000 < minilm.parameter_count < 23_000_000
    dora = AdapterVersion.objects.get(adapter__name="support-bot-dora")
    assert dora.use_dora and dora.parent.ref == "demo/support-bot:v1"
    assert AdapterVersion.objects.get(adapter__name="minilm-sentiment").modules_to_save == ["classifier"]
    assert AdapterVersion.objects.filter(adapter__name="support-bot").count() == 2

    # Trained, not just initialised: peft starts lora_B at zero.
    weights = load_file(str(build_root / "support-v1" / "adapter_model.safetensors"))
    assert any(np.abs(t).max() > 0 for name, t in weights.items() if "lora_B" in name)

    for username, role in DEMO_USERS.items():
        user = User.objects.get(username=username)
        assert user.check_password(username) and role in roles.roles_of(user)

    # Nothing is ready yet, so no promotion is forced: the history waits for the worker.
    assert _promotion_counts() == (0, 0, 0, 0)
    assert "demo promotion history: waiting: demo/support-bot:v1 is checking, not ready yet" in caplog.text
    with pytest.raises(Retry):  # the worker's task looks again later
        seed_demo_promotions(_demo_ids())


def _demo_ids() -> list[str]:
    return [str(AdapterVersion.objects.get(adapter__name=n, number=k).id) for n, k in DEMO_PROMOTED]


DEMO_PROMOTED = (("support-bot", 1), ("support-bot", 2), ("minilm-sentiment", 1))


def _worker_runs_every_job(tmp_path, settings, monkeypatch) -> None:
    """What the worker does after the seed: each queued check, then each evaluation, with its own code."""
    settings.WORKER_CACHE_DIR = tmp_path / "worker-cache"
    monkeypatch.setattr(execute, "_cache", None)  # a fresh resident cache in that folder
    worker = Worker.objects.create(
        hostname="demo-test", direct_queue="worker.demo-test", device_type="cpu", last_heartbeat_at=timezone.now()
    )
    for kind in (Job.Kind.COMPATIBILITY, Job.Kind.EVALUATION):
        for job_id in Job.objects.filter(kind=kind, state=Job.State.QUEUED).order_by("created_at").values_list("id"):
            assert _run_job(str(job_id[0]), worker) == "done"


def test_once_the_worker_has_checked_and_evaluated_them_it_records_a_promotion_history(
    db, build_root, tmp_path, settings, monkeypatch
):
    _seeded(build_root)
    _worker_runs_every_job(tmp_path, settings, monkeypatch)
    assert set(AdapterVersion.objects.values_list("status", flat=True)) == {Status.READY}

    # The task the first seed queued finds them ready now and records the history.
    assert seed_demo_promotions(_demo_ids()).startswith("demo promotion history: seeded")

    support = AliasMove.objects.filter(adapter__name="support-bot").order_by("moved_at")
    assert [(m.alias, m.kind, m.to_version.number, m.canary_weight, m.actor_name) for m in support] == [
        ("production", "promote", 1, 0, "engineer"),
        ("staging", "promote", 2, 0, "engineer"),
        ("production", "canary_start", 1, 10, "engineer"),
        ("production", "canary_ramp", 1, 50, "approver"),
        ("production", "canary_promote", 2, 0, "approver"),
        ("production", "rollback", 1, 0, "approver"),
    ]
    assert all(m.reason.startswith("demo: ") for m in support)
    production = AdapterAlias.objects.get(adapter__name="support-bot", name="production")
    assert (production.version.number, production.canary_version) == (1, None)

    # Requests by engineer; production ones approved by approver (four eyes), all executed by the task's code.
    requests = PromotionRequest.objects.order_by("created_at")
    assert [(r.adapter.name, r.alias, r.kind, r.state, r.requested_by_name, r.gates_passed) for r in requests] == [
        ("support-bot", "production", "promote", "executed", "engineer", True),
        ("support-bot", "staging", "promote", "executed", "engineer", True),
        ("support-bot", "production", "canary", "executed", "engineer", True),
        ("minilm-sentiment", "production", "promote", "pending", "engineer", True),
    ]
    assert not any(r.override_reason for r in requests)  # honest gates, never an override
    assert [(a.request.alias, a.request.kind, a.user_name, a.decision) for a in PromotionApproval.objects.all()] == [
        ("production", "promote", "approver", "approve"),
        ("production", "canary", "approver", "approve"),
    ]
    # The audit trail names the demo users who acted, and the promotions executor for the moves it made.
    actors = set(AuditEvent.objects.filter(type__startswith="promotion.").values_list("type", "actor_name"))
    assert {("promotion.requested", "engineer"), ("promotion.approval", "approver")} <= actors
    assert ("promotion.executed", "promotions") in actors
    assert set(AuditEvent.objects.filter(type="alias.move").values_list("actor_name", flat=True)) == {
        "promotions",
        "approver",
    }

    # Idempotent: the next `make run` seeds again and adds nothing.
    counts = _promotion_counts()
    seed_demo(build_root)
    assert seed_demo_promotions(_demo_ids()).startswith("demo promotion history: present")
    assert _promotion_counts() == counts
