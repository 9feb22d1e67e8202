"""The one write path for every state change of an adapter version, a job or a worker.

Every module that moves a state calls one of these, never a bare `.update(status=...)`:
the conditions that make concurrent writers safe (a worker finishing, the reaper, an
operator cancelling) live here once, and so will the audit event each move records.

Each function is a conditional UPDATE: it moves the row only from the states it names
and says whether it did, so of two writers racing for one transition exactly one wins.
(healthchecks' `Check.create_flip` is the model: one place that knows a state changed.)

Every move that happens writes its audit event here, in the same transaction. The chain
head is locked first, before the row: a transaction that records events always takes the
head before any row it moves, so two of them can never wait on each other in a cycle.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from registry.audit.services import audit_chain_lock, audit_record, audit_subject
from registry.errors import Conflict
from registry.models import Adapter, AdapterAlias, AdapterVersion, AliasMove, Job, Status, Worker
from registry.webhooks.services import webhook_version_status


@dataclass(frozen=True)
class Move:
    """What a transition did: the state before and after; `changed` False when it was already there."""

    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


# --- Adapter versions: received -> checking -> ready | rejected ------------------------------


# No savepoint (here and in the static check): an error rolls the caller's transaction back whole.
@transaction.atomic(savepoint=False)
def version_status_move(version: AdapterVersion, status: str, reason: str = "") -> Move:
    """Set an adapter version's status (and why). The row is locked, so `before` is the status it left.
    (A push inserts its version in the status its static check gives: checks.adapter_version_checks_start.)"""
    audit_chain_lock()
    current = AdapterVersion.objects.select_for_update().only("status", "status_reason").get(id=version.id)
    current_status, current_reason = current.status, current.status_reason
    reason = reason[:2000]
    if (current_status, current_reason) != (status, reason):
        AdapterVersion.objects.filter(id=version.id).update(status=status, status_reason=reason)
        audit_record(**version_status_event(version, current_status, current_reason, status, reason))
        webhook_version_status(version, before=current_status, after=status, reason=reason)  # version.ready|rejected
    version.status, version.status_reason = status, reason
    return Move(before=current_status, after=status)


def version_status_event(version: AdapterVersion, before: str, before_reason: str, status: str, reason: str) -> dict:
    """The `version.status` event of a move, as audit_record's arguments."""
    return {
        "type": "version.status",
        **audit_subject(version),
        "before": {"status": before, "reason": before_reason},
        "after": {"status": status, "reason": reason},
        "reason": reason,
    }


def version_rejected(version: AdapterVersion, reason: str) -> Move:
    return version_status_move(version, Status.REJECTED, reason)


# --- Jobs: queued -> running -> succeeded | failed; cancelled; running -> queued again -------


@transaction.atomic
def job_state_move(
    job: Job | str,
    to_state: str,
    *,
    event: str,
    from_states,
    where: dict | None = None,
    reason: str = "",
    evidence=None,
    **fields,
) -> bool:
    """Move a job from one of `from_states` to `to_state` (with `where` as extra conditions, e.g. the
    claiming worker) and record `event`; False when another writer moved it first."""
    job_id = job.id if isinstance(job, Job) else job
    audit_chain_lock()
    row = (
        Job.objects.select_for_update(of=("self",))
        .select_related("adapter_version__adapter")
        .filter(id=job_id, state__in=list(from_states), **(where or {}))
        .first()
    )
    if row is None:
        return False
    Job.objects.filter(id=row.id).update(state=to_state, **fields)
    audit_record(
        type=event,
        **audit_subject(row),
        before={"state": row.state, "worker": row.claimed_by_id and str(row.claimed_by_id)},
        after={"state": to_state, **{k: v for k, v in fields.items() if k in AUDITED_JOB_FIELDS}},
        reason=reason,
        evidence=evidence,
    )
    return True


# Job fields worth an event's `after` (the rest, e.g. timestamps, are in the event's own time).
AUDITED_JOB_FIELDS = {"ran_on", "error", "base_was_resident"}


def job_claimed(job_id, worker: Worker) -> bool:
    return job_state_move(
        job_id,
        Job.State.RUNNING,
        event="job.claim",
        from_states=[Job.State.QUEUED],
        claimed_by=worker,
        ran_on=worker.hostname,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )


def job_finished(job: Job, worker: Worker, state: str, **fields) -> bool:
    """succeeded or failed, only while this worker still holds the claim (the reaper may have taken it)."""
    return job_state_move(
        job,
        state,
        event="job.finish",
        from_states=[Job.State.RUNNING],
        where={"claimed_by": worker},
        evidence=fields.get("result"),
        finished_at=timezone.now(),
        **fields,
    )


def job_released(job: Job, worker: Worker | None = None) -> bool:
    """Back to queued: a transient error on the worker, or the reaper taking a lost worker's job."""
    where = {"claimed_by": worker} if worker is not None else None
    return job_state_move(
        job,
        Job.State.QUEUED,
        event="job.release",
        from_states=[Job.State.RUNNING],
        where=where,
        reason="the worker was lost" if worker is None else "a transient error on the worker",
        claimed_by=None,
        started_at=None,
    )


def job_cancelled(job: Job, reason: str) -> bool:
    return job_state_move(
        job,
        Job.State.CANCELLED,
        event="job.cancel",
        from_states=[Job.State.QUEUED, Job.State.RUNNING],
        reason=reason,
        claimed_by=None,
        finished_at=timezone.now(),
        error=reason[:4000],
    )


# --- Workers: online <-> lost, stopped -----------------------------------------------------------


@transaction.atomic
def worker_state_move(hostname: str, state: str, *, from_states=None, reason: str = "", **fields) -> bool:
    """Set a worker's state (a heartbeat passes its report as fields); False when no row matched.
    Only a change of state is an event: a heartbeat that keeps a worker online records nothing."""
    rows = Worker.objects.filter(hostname=hostname)
    if from_states is not None:
        rows = rows.filter(state__in=list(from_states))
    before = rows.values_list("state", flat=True).first()
    if before is None:
        return False
    if before != state:
        audit_chain_lock()
        before = rows.select_for_update().values_list("state", flat=True).first()
        if before is None:
            return False
    rows.update(state=state, **fields)
    if before != state:
        audit_record(
            type=f"worker.{state}",
            object_type="worker",
            object_id=hostname,
            before={"state": before},
            after={"state": state},
            reason=reason,
        )
    return True


@transaction.atomic
def worker_registered(hostname: str, **fields) -> Worker:
    """A worker process started (or restarted under the same name): online, with its report."""
    audit_chain_lock()
    worker, created = Worker.objects.update_or_create(hostname=hostname, defaults=fields)
    audit_record(
        type="worker.register",
        object_type="worker",
        object_id=hostname,
        after={"state": worker.state, "queues": worker.queues, "device": worker.device_type},
        reason="a new worker" if created else "the worker restarted",
    )
    return worker


def worker_lost(worker: Worker) -> bool:
    """The reaper's verdict on a silent worker; its resident models are gone with it."""
    return worker_state_move(
        worker.hostname,
        Worker.State.LOST,
        from_states=[Worker.State.ONLINE],
        reason=f"no heartbeat since {worker.last_heartbeat_at.isoformat()}",
        resident={},
    )


def worker_stopped(hostname: str) -> bool:
    return worker_state_move(hostname, Worker.State.STOPPED, reason="the worker shut down", resident={})


# --- Aliases: every move of `ns/name:<alias>`, recorded as an AliasMove -------------------------

UNSET = object()  # `expected`: do not compare with what the alias serves now


@dataclass(frozen=True)
class AliasTarget:
    """Where an alias points: the primary version and an optional canary taking `canary_weight` percent."""

    version: AdapterVersion
    canary_version: AdapterVersion | None = None
    canary_weight: int = 0


def _alias_state(alias: AdapterAlias | None) -> dict:
    if alias is None:
        return {"version": None, "canary": None, "canary_weight": 0}
    canary = alias.canary_version
    return {
        "version": alias.version.ref,
        "canary": canary.ref if canary is not None else None,
        "canary_weight": alias.canary_weight,
    }


@transaction.atomic
def alias_move(
    adapter: Adapter,
    alias: str,
    target: AliasTarget,
    *,
    kind: str,
    reason: str,
    user=None,
    request=None,
    evidence: dict | None = None,
    expected=UNSET,
) -> AliasMove:
    """Point `adapter`'s `alias` at `target` and record the move (AliasMove, audit event, webhook).

    Moves of all aliases are serialised by the audit chain's lock, taken first; `expected` (a version
    or None for an unset alias) makes it a compare-and-swap: when the alias serves something else by
    now, nothing moves and Conflict `alias_conflict` says what it serves. Once the move commits, the
    serving fleet's residency is re-planned (promotion, rollback and every canary step alike).
    """
    from registry.services.residency import residency_replan_soon
    from registry.webhooks.services import webhook_emit

    audit_chain_lock()
    current = (
        AdapterAlias.objects.select_for_update(of=("self",))
        .select_related("version__adapter", "canary_version__adapter")
        .filter(adapter=adapter, name=alias)
        .first()
    )
    serving = current.version if current is not None else None
    if expected is not UNSET and (serving.id if serving else None) != (expected.id if expected else None):
        raise Conflict(
            "alias_conflict",
            f"{adapter.full_name}:{alias} now serves {serving.ref if serving else 'nothing'}, not "
            f"{expected.ref if expected else 'nothing'} as this move expected; another move came first",
            alias=alias,
            serving=serving.ref if serving else None,
        )
    before = _alias_state(current)
    canary_before = current.canary_version if current is not None else None
    last = AliasMove.objects.filter(adapter=adapter, alias=alias).order_by("-moved_at", "-id").first()
    moved_at = timezone.now()
    if last is not None and moved_at <= last.moved_at:  # keep each alias's history strictly ordered in time
        moved_at = last.moved_at + timedelta(microseconds=1)
    fields = {
        "version": target.version,
        "canary_version": target.canary_version,
        "canary_weight": target.canary_weight if target.canary_version is not None else 0,
    }
    if current is None:
        current = AdapterAlias.objects.create(adapter=adapter, name=alias, **fields)
    else:
        for name, value in fields.items():
            setattr(current, name, value)
        current.save(update_fields=[*fields, "updated_at"])
    move = AliasMove.objects.create(
        adapter=adapter,
        alias=alias,
        kind=kind,
        from_version=serving,
        to_version=target.version,
        from_canary_version=canary_before,
        from_canary_weight=before["canary_weight"],
        canary_version=fields["canary_version"],
        canary_weight=fields["canary_weight"],
        actor=user if user is not None and user.is_authenticated else None,
        actor_name=user.get_username() if user is not None and user.is_authenticated else "",
        reason=reason,
        request=request,
        evidence=evidence or {},
        moved_at=moved_at,
    )
    after = _alias_state(current)
    audit_record(
        type="alias.move",
        **audit_subject(adapter),
        object_digest=target.version.digest,
        before=before,
        # The alias is named here: the event's subject is the adapter, and production's moves must be
        # told from staging's by whoever reads the trail (the export's summary.pdf does).
        after={**after, "alias": alias, "kind": kind, "request": str(request.id) if request is not None else None},
        reason=reason,
        evidence=evidence or {},
    )
    webhook_emit(
        "alias.moved",
        {
            "adapter": adapter.full_name,
            "alias": alias,
            "kind": kind,
            "from": before,
            "to": after,
            "to_digest_ref": target.version.digest_ref,
            "reason": reason,
            "request": str(request.id) if request is not None else None,
            "moved_at": moved_at.isoformat(),
            "moved_by": move.actor_name,
        },
    )
    residency_replan_soon(trigger=f"alias.{kind}")
    return move
