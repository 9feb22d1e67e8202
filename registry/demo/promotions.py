"""The demo's promotion history, so that a new user finds every promotion page filled.

What it records, each step through the promotion services as the demo user who would do it:
- demo/support-bot `production`: `engineer` asks for v1, `approver` approves, it is executed;
- demo/support-bot `staging`: `engineer` puts v2 there (the default policy wants no approval);
- demo/support-bot `production`: a canary of v2 at 10% (asked by `engineer`, approved by `approver`,
  executed), ramped to 50% and promoted to 100% by `approver`, then rolled back to v1 by `approver`;
- demo/minilm-sentiment `production`: `engineer`'s request, left pending in the approvals inbox.

Honest readiness, no override: the gates are evaluated on the versions' real checks and
evaluations. Those run on the worker, which `make run` starts after the seed; so on a first start
the seed finds the versions still checking and queues `demo.promotions` (registry/demo/tasks.py,
cpu queue), which looks again every RETRY_SECONDS until the versions are ready and evaluated.
On later starts the versions are ready and the seed finds the history there.

Idempotent: nothing is added once a demo name has any alias move or promotion request: the history
is seeded once, and from then on the aliases are the user's. A step that cannot be taken (a gate
fails on this machine's evaluation, an alias moved meanwhile) stops the history with a warning; the
seed itself never fails because of it.
"""

import logging
import time
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction

from registry.audit.context import acting_as, actor_for_user, actor_system
from registry.errors import RegistryError
from registry.models import AdapterVersion, AliasMove, Job, PromotionRequest, Status
from registry.services.promotions import alias_canary, alias_rollback, promotion_approve, promotion_execute
from registry.services.promotions import promotion_request as request_promotion

logger = logging.getLogger(__name__)

TASK_NAME = "demo.promotions"
RETRY_SECONDS = 10
# Sixty minutes of looking: the first start checks and evaluates every demo version on the CPU.
MAX_RETRIES = 360
# How long the seed waits for a promotion that a running worker took from it (the message that
# approval queues); the seed executes the request itself otherwise.
EXECUTION_WAIT_SECONDS = 60

# Job states that end an evaluation one way or the other.
_WAITING_JOB_STATES = (Job.State.QUEUED, Job.State.RUNNING)


@dataclass(frozen=True)
class Outcome:
    """What a seeding attempt did: "seeded", "present" (seeded before), "waiting" or "stopped"."""

    state: str
    detail: str

    @property
    def waiting(self) -> bool:
        return self.state == "waiting"

    def __str__(self) -> str:
        return f"demo promotion history: {self.state}: {self.detail}"


class _Stop(Exception):
    """A step of the history could not be taken; the message says which and why."""


@dataclass(frozen=True)
class DemoVersions:
    support_v1: AdapterVersion
    support_v2: AdapterVersion
    sentiment: AdapterVersion

    @classmethod
    def from_ids(cls, ids: list[str]) -> "DemoVersions | None":
        """The versions by id, in order; None when one of them is gone."""
        found = {str(k): v for k, v in AdapterVersion.objects.select_related("adapter").in_bulk(ids).items()}
        if any(str(i) not in found for i in ids):
            return None
        return cls(*(found[str(i)] for i in ids))

    def ids(self) -> list[str]:
        return [str(v.id) for v in (self.support_v1, self.support_v2, self.sentiment)]

    def all(self) -> tuple[AdapterVersion, ...]:
        return (self.support_v1, self.support_v2, self.sentiment)


def demo_promotions_start(versions: DemoVersions) -> Outcome:
    """Seed the history now when the versions are ready, else queue `demo.promotions` to do it later."""
    outcome = demo_promotions_seed(versions)
    if outcome.waiting:
        from registry.broker import publish_task

        ids = versions.ids()
        # On commit: the versions' own jobs are queued the same way, and a rolled-back seed queues nothing.
        transaction.on_commit(lambda: publish_task(TASK_NAME, [ids], "cpu", countdown=RETRY_SECONDS), robust=True)
        outcome = Outcome("waiting", f"{outcome.detail}; the worker seeds it once they are")
    logger.info("%s", outcome)
    return outcome


def demo_promotions_seed(versions: DemoVersions) -> Outcome:
    """Record the demo's promotion history once the versions are ready; never raises for a failed step."""
    names = {v.adapter_id for v in versions.all()}
    if (
        AliasMove.objects.filter(adapter_id__in=names).exists()
        or PromotionRequest.objects.filter(adapter_id__in=names).exists()
    ):
        return Outcome("present", "the demo names already have alias moves or promotion requests")
    waiting, impossible = _readiness(versions)
    if impossible:
        return Outcome("stopped", impossible)
    if waiting:
        return Outcome("waiting", waiting)
    try:
        _history(versions)
    except (_Stop, RegistryError) as stop:
        message = stop.message if isinstance(stop, RegistryError) else str(stop)
        logger.warning("the demo promotion history stopped: %s", message)
        return Outcome("stopped", message)
    except Exception as exc:  # demo data is optional: `make run` must start without it
        logger.exception("the demo promotion history failed")
        return Outcome("stopped", f"{exc.__class__.__name__}: {exc}")
    return Outcome("seeded", "requests, approvals, a canary, a rollback and a pending request")


def _readiness(versions: DemoVersions) -> tuple[str, str]:
    """(why to wait, why it cannot be done): both empty when every version is ready and evaluated."""
    for version in versions.all():
        version.refresh_from_db(fields=["status", "status_reason"])
        if version.status == Status.REJECTED:
            return "", f"{version.ref} was rejected: {version.status_reason}"
        if version.status != Status.READY:
            return f"{version.ref} is {version.status}, not ready yet", ""
        evaluations = Job.objects.filter(adapter_version=version, kind=Job.Kind.EVALUATION)
        if evaluations.filter(state__in=_WAITING_JOB_STATES).exists():
            return f"{version.ref} is still being evaluated", ""
        if not evaluations.filter(state=Job.State.SUCCEEDED).exists():
            return "", f"{version.ref} has no finished evaluation (it failed); its gates cannot pass"
    return "", ""


def _users() -> tuple[User, User]:
    return User.objects.get(username="engineer"), User.objects.get(username="approver")


def _history(versions: DemoVersions) -> None:
    engineer, approver = _users()
    v1, v2 = versions.support_v1, versions.support_v2
    support = v1.adapter

    first = _ask(engineer, v1, "production", "demo: first release of the support bot")
    _approve(approver, first, "demo: gates pass; ship it")
    _run(first)

    staging = _ask(engineer, v2, "staging", "demo: v2 (12 training steps instead of 4) for staging")
    _run(staging)  # staging needs no approval: the policy approved it at once

    canary = _ask(engineer, v2, "production", "demo: v2 on 10% of production traffic first", canary_weight=10)
    _approve(approver, canary, "demo: canary at 10% approved")
    _run(canary)
    with acting_as(actor_for_user(approver)):
        alias_canary(adapter=support, alias="production", user=approver, action="ramp", weight=50,
                     reason="demo: the canary looks healthy at 10%; ramp to 50%")  # fmt: skip
        alias_canary(adapter=support, alias="production", user=approver, action="promote",
                     reason="demo: the canary looks healthy at 50%; promote v2 to 100%")  # fmt: skip
        alias_rollback(adapter=support, alias="production", user=approver,
                       reason="demo: a rollback drill: production goes back to v1 in one call")  # fmt: skip

    _ask(engineer, versions.sentiment, "production", "demo: first release of the sentiment classifier")


def _ask(user: User, version: AdapterVersion, alias: str, reason: str, canary_weight: int = 0) -> PromotionRequest:
    kind = PromotionRequest.Kind.CANARY if canary_weight else PromotionRequest.Kind.PROMOTE
    with acting_as(actor_for_user(user)):
        request = request_promotion(
            version_ref=str(version.id), alias=alias, reason=reason, user=user, kind=kind, canary_weight=canary_weight
        )
    if not request.gates_passed:
        failed = next(gate for gate in request.gates if not gate["passed"])
        raise _Stop(f"{version.ref} → {alias}: gate {failed['gate']} failed: {failed['detail']}")
    return request


def _approve(user: User, request: PromotionRequest, comment: str) -> None:
    with acting_as(actor_for_user(user)):
        promotion_approve(request_id=request.id, user=user, comment=comment)


def _run(request: PromotionRequest) -> None:
    """Execute an approved request here, as the cpu-queue task would (a worker may have taken it)."""
    with acting_as(actor_system("promotions")):
        promotion_execute(request.id)
    deadline = time.monotonic() + EXECUTION_WAIT_SECONDS
    request.refresh_from_db()
    while request.state in PromotionRequest.OPEN_STATES and time.monotonic() < deadline:
        time.sleep(0.5)
        request.refresh_from_db()
    if request.state != PromotionRequest.State.EXECUTED:
        raise _Stop(f"promotion {request.id} of {request.version.ref} is {request.state}: {request.error}")
