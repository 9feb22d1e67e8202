"""Checks and evaluations started for every new adapter version.

The static check reads headers only, so it runs right away in the pushing
request: a misfit adapter is rejected with reasons before anything is queued.
When it passes, the dynamic check (a forward pass on a worker) is queued, and so
is an evaluation on every suite attached to the adapter's name.

A push computes the static check's finding before its transaction, from the headers it has
already validated and the base's stored tensor index, and inserts the version in the status
that finding gives; `adapter_version_checks_start` then records it and queues the jobs inside
the push's transaction, opening no savepoint (an error rolls the whole push back anyway).
"""

from django.db import transaction

from registry.audit.services import audit_record, audit_subject
from registry.compat import StaticResult, static_compatibility
from registry.formats.peft_config import peft_overrides
from registry.formats.safetensors_header import TensorInfo
from registry.models import AdapterVersion, Check, EvaluationSuite, Job, Status
from registry.services.jobs import base_tensor_index, job_create, job_router, version_tensor_headers
from registry.services.suites import suite_check_fits, suite_misfit
from registry.services.transitions import version_rejected, version_status_event, version_status_move
from registry.webhooks.services import webhook_version_status

Tensors = dict[str, TensorInfo]


@transaction.atomic(savepoint=False)
def adapter_version_static_check(
    version: AdapterVersion,
    *,
    adapter_tensors: Tensors | None = None,
    base_tensors: Tensors | None = None,
) -> Check:
    """Compare the version's headers with its base's; tensors not given are read from the store."""
    if adapter_tensors is None:
        adapter_tensors = version_tensor_headers(version)
    if base_tensors is None:
        base_tensors = base_tensor_index(version.base_version)
    result = static_check_result(version, adapter_tensors=adapter_tensors, base_tensors=base_tensors)
    check = static_check_row(version, result)
    # An upsert in one statement (update_or_create takes four and two savepoints).
    Check.objects.bulk_create(
        [check],
        update_conflicts=True,
        unique_fields=["adapter_version", "kind"],
        update_fields=["verdict", "reasons", "details"],
    )
    audit_record(**static_check_event(version, result))
    status, reason = static_check_status(result)
    if status == Status.REJECTED:
        version_rejected(version, reason)
    else:
        version_status_move(version, status)
    return check


def static_check_result(version: AdapterVersion, *, adapter_tensors: Tensors, base_tensors: Tensors) -> StaticResult:
    """The static check's finding; it reads nothing and writes nothing (a bulk push writes many at once)."""
    # The ranks resolved at ingest, not the stored rank_pattern: PostgreSQL's jsonb does not keep
    # key order, and peft takes the first matching key, so the stored dict could pick another one.
    config = {**version.config, **peft_overrides(version.resolved_patterns or {})}
    return static_compatibility(adapter_tensors, config, base_tensors)


def static_check_event(version: AdapterVersion, result: StaticResult) -> dict:
    """The `check.static` event, as audit_record's arguments."""
    return {
        "type": "check.static",
        **audit_subject(version),
        "after": {"verdict": result.verdict},
        "evidence": {"reasons": result.reasons},
    }


def static_check_row(version: AdapterVersion, result: StaticResult) -> Check:
    """The static check's row for the finding (not saved: a bulk push inserts many at once)."""
    return Check(
        adapter_version=version,
        kind=Check.Kind.STATIC,
        verdict=result.verdict,
        reasons=result.reasons,
        details=result.details,
    )


def static_check_status(result: StaticResult) -> tuple[str, str]:
    """The status (and reason, cut to what the column holds) the static check moves a new version
    to: rejected, or checking by workers."""
    if result.verdict == Check.Verdict.FAIL:
        return Status.REJECTED, f"static check: {result.reasons[0]}"[:2000]
    return Status.CHECKING, ""


@transaction.atomic(savepoint=False)
def adapter_version_checks_start(version: AdapterVersion, static: StaticResult, *, new_name: bool = False) -> None:
    """The checks of a version its push has just inserted, in the status the static check's finding
    gives (`static_check_status`): the static check's row and events (`version.status` from
    received, as a move records it), then the dynamic check and attached evaluations on the worker
    pool. `new_name`: the adapter's name is new too, so no suite can be attached to it yet."""
    static_check_row(version, static).save(force_insert=True)
    audit_record(**static_check_event(version, static))
    audit_record(**version_status_event(version, Status.RECEIVED, "", version.status, version.status_reason))
    if version.status == Status.REJECTED:
        webhook_version_status(version, before=Status.RECEIVED, after=version.status, reason=version.status_reason)
        return
    route = job_router()  # the live workers read once for the push's jobs
    job_create(kind=Job.Kind.COMPATIBILITY, adapter_version=version, route=route)
    if new_name:
        return
    for suite in EvaluationSuite.objects.filter(attachments__adapter=version.adapter_id):
        if suite_misfit(suite, version):  # e.g. a version on another base: nothing a worker could run
            continue
        job_create(kind=Job.Kind.EVALUATION, adapter_version=version, suite=suite, route=route)


@transaction.atomic
def adapter_version_evaluate(*, version: AdapterVersion, suite: EvaluationSuite) -> Job:
    """An evaluation on demand; a suite the adapter's base cannot run is refused now, not on a worker."""
    suite_check_fits(suite, version)
    job = job_create(kind=Job.Kind.EVALUATION, adapter_version=version, suite=suite)
    audit_record(type="evaluation.request", **audit_subject(version), after={"suite": suite.ref, "job": str(job.id)})
    return job
