"""Promotions: requests to move an alias, their gates, four-eyes approvals, execution, rollback, canaries.

A request freezes what it is about (the version, the alias, what the alias served then) and the
policy that applied; its gates are evaluated at each decision (request, approval, execution) and the
latest results are stored on it. The move itself is `transitions.alias_move`, a compare-and-swap
from what the alias served when the request was made, so a stale request can never overwrite a
newer move. An alias has at most one open request at a time: a second one is 409 `alias_conflict`.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry import roles
from registry.audit.services import audit_chain_lock, audit_record, audit_subject
from registry.errors import Conflict, NotFound, RegistryError
from registry.metrics_display import direction
from registry.models import (
    Adapter,
    AdapterAlias,
    AdapterVersion,
    AliasMove,
    Check,
    Job,
    PromotionApproval,
    PromotionPolicy,
    PromotionRequest,
    Signature,
    Status,
)
from registry.refs import REF_PATTERN
from registry.selectors import LATEST_ALIAS, adapter_version_get
from registry.services.transitions import AliasTarget, alias_move

logger = logging.getLogger(__name__)

State = PromotionRequest.State

# --- Policies --------------------------------------------------------------------------------

# The defaults, also the keys a policy document may hold. Thresholds compare a candidate's metric
# with the served version's on the same suite: "max_decrease" in the metric's own units for metrics
# where higher is better (0.005 = half a point of a 0-1 accuracy), "max_increase_percent" for
# metrics where lower is better (2 = perplexity at most 2% higher).
DEFAULT_POLICY = {
    "approvals": 0,
    "suites": None,  # None: every suite attached to the adapter name
    "thresholds": {},
    "default_max_decrease": 0.005,
    "default_max_increase_percent": 2.0,
    "allow_base_change": False,
    "rollback_approvals": 0,
}
DEFAULT_ALIAS_POLICIES = {"production": {"approvals": 1}}
MAX_APPROVALS = 5


class PolicyInvalid(RegistryError):
    status_code = 400

    def __init__(self, message: str, **detail):
        super().__init__("promotion_policy_invalid", message, **detail)


def _number(document: dict, key: str, *, minimum: float, maximum: float, integer: bool = False):
    value = document[key]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not minimum <= value <= maximum:
        kind = "an integer" if integer else "a number"
        raise PolicyInvalid(f"{key} must be {kind} from {minimum} to {maximum}, got {value!r}", field=key)
    return value


def promotion_policy_parse(document) -> dict:
    """A policy document, checked and completed with the defaults; PolicyInvalid names what is wrong."""
    if not isinstance(document, dict):
        raise PolicyInvalid("a promotion policy is a JSON object")
    unknown = sorted(set(document) - set(DEFAULT_POLICY))
    if unknown:
        raise PolicyInvalid(f"unknown policy keys {unknown}; known: {sorted(DEFAULT_POLICY)}", field=unknown[0])
    policy = {**DEFAULT_POLICY, **document}
    _number(policy, "approvals", minimum=0, maximum=MAX_APPROVALS, integer=True)
    _number(policy, "rollback_approvals", minimum=0, maximum=MAX_APPROVALS, integer=True)
    _number(policy, "default_max_decrease", minimum=0, maximum=1e9)
    _number(policy, "default_max_increase_percent", minimum=0, maximum=1e6)
    if not isinstance(policy["allow_base_change"], bool):
        raise PolicyInvalid("allow_base_change must be true or false", field="allow_base_change")
    suites = policy["suites"]
    if suites is not None and (not isinstance(suites, list) or not all(isinstance(s, str) for s in suites)):
        raise PolicyInvalid("suites must be null (the attached suites) or a list of suite references", field="suites")
    thresholds = policy["thresholds"]
    if not isinstance(thresholds, dict):
        raise PolicyInvalid("thresholds must map metric names to {max_decrease | max_increase_percent}")
    for metric, rule in thresholds.items():
        if not isinstance(rule, dict) or len(rule) != 1 or not set(rule) <= {"max_decrease", "max_increase_percent"}:
            raise PolicyInvalid(
                f'thresholds.{metric} must be {{"max_decrease": N}} or {{"max_increase_percent": N}}',
                field=f"thresholds.{metric}",
            )
        _number(rule, next(iter(rule)), minimum=0, maximum=1e9)
    return policy


def promotion_policy_for(namespace: str, alias: str) -> dict:
    """The policy that applies to moving `alias` in `namespace`: its own row, the namespace's "*"
    row, or the built-in defaults (production: one approval)."""
    rows = {
        row.alias: row.document for row in PromotionPolicy.objects.filter(namespace=namespace, alias__in=[alias, "*"])
    }
    document = rows.get(alias, rows.get("*", DEFAULT_ALIAS_POLICIES.get(alias, {})))
    return {**DEFAULT_POLICY, **document}


@transaction.atomic
def promotion_policy_set(*, namespace: str, alias: str, document, user) -> PromotionPolicy:
    roles.token_check(user, None, namespace, "changing a promotion policy")
    if not roles.is_admin(user, namespace):
        raise RegistryError("permission_denied", "only admins change promotion policies", status_code=403)
    if alias != "*":
        alias_name_check(alias)
    policy = promotion_policy_parse(document)
    audit_chain_lock()
    before = promotion_policy_for(namespace, alias)
    row, _ = PromotionPolicy.objects.update_or_create(
        namespace=namespace, alias=alias, defaults={"document": policy, "updated_by": user}
    )
    audit_record(
        type="promotion_policy.change",
        object_type="promotion_policy",
        object_id=f"{namespace}:{alias}",
        namespace=namespace,
        before=before,
        after=policy,
    )
    return row


def alias_name_check(alias: str) -> None:
    if not REF_PATTERN.fullmatch(f"a/b:{alias}") or alias == LATEST_ALIAS or alias[1:].isdigit() and alias[0] == "v":
        raise RegistryError(
            "alias_invalid",
            f"{alias!r} cannot be an alias: use lowercase letters, digits, '-' and '_', starting with a letter "
            "(not 'latest' and not vN, which name versions)",
        )


# --- Gates -----------------------------------------------------------------------------------


def _gate(name: str, passed: bool, detail: str, **numbers) -> dict:
    return {"gate": name, "passed": passed, "detail": detail, **({"numbers": numbers} if numbers else {})}


def _gate_ready(version: AdapterVersion) -> dict:
    if version.status == Status.READY:
        return _gate("ready", True, f"{version.ref} is ready")
    reason = f": {version.status_reason}" if version.status_reason else ""
    return _gate("ready", False, f"{version.ref} is {version.status}, not ready{reason}")


def _gate_compatibility(version: AdapterVersion) -> dict:
    verdicts = dict(version.checks.values_list("kind", "verdict"))
    missing = [kind for kind in (Check.Kind.STATIC, Check.Kind.DYNAMIC) if kind not in verdicts]
    failed = [kind for kind, verdict in verdicts.items() if verdict != Check.Verdict.PASS]
    if failed:
        return _gate("compatibility", False, f"the {' and '.join(failed)} check failed")
    if missing:
        return _gate("compatibility", False, f"the {' and '.join(missing)} check has not run yet")
    return _gate("compatibility", True, "static and dynamic checks passed")


def _gate_base(version: AdapterVersion, serving: AdapterVersion | None, policy: dict) -> dict:
    if serving is None or serving.base_version_id == version.base_version_id:
        return _gate("base", True, f"built on {version.base_version.ref}" + ("" if serving is None else ", as served"))
    if policy["allow_base_change"]:
        return _gate(
            "base", True, f"base changes from {serving.base_version.ref} to {version.base_version.ref} (allowed)"
        )
    return _gate(
        "base",
        False,
        f"{version.ref} is built on {version.base_version.ref}, the served {serving.ref} on "
        f"{serving.base_version.ref}; the policy does not allow a base change",
    )


def _latest_evaluation(version: AdapterVersion, suite_id) -> Job | None:
    return (
        Job.objects.filter(
            adapter_version=version, kind=Job.Kind.EVALUATION, suite_id=suite_id, state=Job.State.SUCCEEDED
        )
        .order_by("-finished_at")
        .first()
    )


def _served_metrics(serving: AdapterVersion, suite_id, candidate_job: Job) -> dict | None:
    """The served version's metrics on the suite: its own evaluation, or the candidate's run measuring it."""
    own = _latest_evaluation(serving, suite_id)
    if own is not None:
        return own.result.get("metrics", {}).get("adapter")
    reference = candidate_job.result.get("reference", {})
    if reference.get("compared") and reference.get("ref") == serving.ref:
        return candidate_job.result.get("metrics", {}).get("reference")
    return None


def _threshold_check(metric: str, candidate: float, served: float, policy: dict) -> tuple[bool, str] | None:
    rule = policy["thresholds"].get(metric)
    better = direction(metric)
    if rule is None and better is None:
        return None  # a metric with no known direction and no rule is shown, not gated
    if rule is None:
        rule = (
            {"max_decrease": policy["default_max_decrease"]}
            if better == "higher"
            else {"max_increase_percent": policy["default_max_increase_percent"]}
        )
    if "max_decrease" in rule:
        allowed = rule["max_decrease"]
        drop = served - candidate
        return (
            drop <= allowed + 1e-12,
            f"{metric} {candidate:.4g} vs {served:.4g} (drop {drop:.4g}, allowed {allowed:g})",
        )
    allowed = rule["max_increase_percent"]
    increase = (candidate - served) / abs(served) * 100 if served else (0.0 if candidate <= served else float("inf"))
    return (
        increase <= allowed + 1e-9,
        f"{metric} {candidate:.4g} vs {served:.4g} ({increase:+.2f}%, allowed +{allowed:g}%)",
    )


def _required_suites(version: AdapterVersion, policy: dict) -> list:
    from registry.services.suites import evaluation_suite_get

    if policy["suites"] is None:
        return [attachment.suite for attachment in version.adapter.suite_attachments.select_related("suite")]
    return [evaluation_suite_get(ref) for ref in policy["suites"]]


def _gate_evaluations(version: AdapterVersion, serving: AdapterVersion | None, policy: dict) -> list[dict]:
    gates = []
    for suite in _required_suites(version, policy):
        name = f"evaluation {suite.ref}"
        job = _latest_evaluation(version, suite.id)
        if job is None:
            gates.append(_gate(name, False, f"{version.ref} has no finished evaluation on {suite.ref}"))
            continue
        candidate = job.result.get("metrics", {}).get("adapter") or {}
        if serving is None or serving.id == version.id:
            gates.append(_gate(name, True, "evaluated; nothing served yet to compare with", **_numeric(candidate)))
            continue
        served = _served_metrics(serving, suite.id, job)
        if served is None:
            gates.append(
                _gate(name, False, f"no evaluation of the served {serving.ref} on {suite.ref} to compare with")
            )
            continue
        results = [
            outcome
            for metric, value in _numeric(candidate).items()
            if metric in served and (outcome := _threshold_check(metric, value, float(served[metric]), policy))
        ]
        failed = [text for ok, text in results if not ok]
        texts = [text for _, text in results] or ["no comparable metric"]
        gates.append(
            _gate(
                name,
                not failed,
                "; ".join(failed) if failed else "; ".join(texts),
                candidate=_numeric(candidate),
                served=_numeric(served),
                served_ref=serving.ref,
            )
        )
    return gates


def _numeric(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _gate_signatures(version: AdapterVersion, user) -> dict:
    from registry.services.signatures import Trigger, version_verify

    outcome = version_verify(version, trigger=Trigger.PROMOTION, user=user)
    if not outcome.files_intact:
        return _gate("signatures", False, "a stored file no longer matches its recorded SHA-256")
    if outcome.code:
        return _gate("signatures", False, f"{outcome.code}: {outcome.reason}")
    signed = len([row for row in outcome.verifications if row.result == Signature.Result.PASSED])
    if signed:
        return _gate(
            "signatures", True, f"{signed} signature(s) re-verified from storage, policy v{outcome.policy_version}"
        )
    return _gate("signatures", True, f"unsigned; policy v{outcome.policy_version} does not require a signature")


def gates_evaluate(
    version: AdapterVersion, serving: AdapterVersion | None, policy: dict, *, user=None, kind: str = "promote"
) -> list[dict]:
    """Every gate for moving an alias from `serving` to `version`, each passed or failed with why.

    A rollback goes back to a version the alias has served: it must still be intact (ready, checked,
    signatures re-verified), but is not held to beat the version it replaces on metrics or base.
    """
    if kind == PromotionRequest.Kind.ROLLBACK:
        return [_gate_ready(version), _gate_compatibility(version), _gate_signatures(version, user)]
    return [
        _gate_ready(version),
        _gate_compatibility(version),
        *_gate_evaluations(version, serving, policy),
        _gate_signatures(version, user),
        _gate_base(version, serving, policy),
    ]


# --- Requests --------------------------------------------------------------------------------


def _can_request(user, namespace: str | None = None) -> bool:
    """In `namespace`; without one, in some namespace (checked first, before anything is looked up)."""
    roles.token_check(user, roles.SCOPE_PROMOTION_REQUEST, namespace, "requesting a promotion")
    return roles.can_request_promotion(user, namespace)


def _can_decide(user, namespace: str | None = None) -> bool:
    roles.token_check(user, None, namespace, "deciding on a promotion")  # no scoped token decides
    return roles.can_decide_promotion(user, namespace)


def _denied(message: str) -> RegistryError:
    return RegistryError("permission_denied", message, status_code=403)


def _serving(adapter: Adapter, alias: str) -> AdapterAlias | None:
    return (
        AdapterAlias.objects.select_related("version__adapter", "version__base_version__base_model", "canary_version")
        .filter(adapter=adapter, name=alias)
        .first()
    )


def _payload(request: PromotionRequest) -> dict:
    return {
        "id": str(request.id),
        "adapter": request.adapter.full_name,
        "alias": request.alias,
        "kind": request.kind,
        "version": request.version.ref,
        "digest_ref": request.version.digest_ref,
        "canary_weight": request.canary_weight,
        "state": request.state,
        "requested_by": request.requested_by_name,
        "reason": request.reason,
        "error_code": request.error_code,
        "error": request.error,
    }


def _subject(request: PromotionRequest) -> dict:
    """The request as an audit subject: its id, with the version's digest, namespace and adapter name."""
    return {**audit_subject(request.version), "object_type": "promotion_request", "object_id": str(request.id)}


def _record(request: PromotionRequest, event: str, *, before=None, reason: str = "", evidence=None, outcome="success"):
    """The request's audit event and its webhook, in the caller's transaction."""
    from registry.webhooks.services import webhook_emit

    audit_record(
        type=f"promotion.{event}",
        **_subject(request),
        before=before,
        after={"state": request.state, "alias": request.alias, "kind": request.kind, "version": request.version.ref},
        reason=reason,
        evidence=evidence,
        outcome=outcome,
    )
    if event in {"requested", "approved", "rejected", "executed", "failed"}:
        webhook_emit(f"promotion.{event}", _payload(request))


def _gates_store(request: PromotionRequest, gates: list[dict]) -> bool:
    """Freeze gate results into the request; True when it may move (all passed, or an admin's override)."""
    request.gates = gates
    request.gates_passed = all(gate["passed"] for gate in gates)
    request.gates_evaluated_at = timezone.now()
    return request.gates_passed or bool(request.override_reason)


def _override_checked(override_reason: str, user, namespace: str) -> str:
    override_reason = (override_reason or "").strip()
    if override_reason and not roles.is_admin(user, namespace):
        raise _denied("only admins may override failing gates")
    return override_reason


def promotion_request(
    *,
    version_ref: str,
    alias: str,
    reason: str,
    user,
    kind: str = PromotionRequest.Kind.PROMOTE,
    canary_weight: int = 0,
    override_reason: str = "",
) -> PromotionRequest:
    """Ask to point `alias` at a version (kind promote) or to send it `canary_weight` percent (kind canary).

    Gates are evaluated now and stored; with no approvals required and passing gates (or an admin's
    override) the request is approved at once and its execution queued.
    """
    if not _can_request(user):
        raise _denied("requesting a promotion needs the engineer, approver or admin role")
    alias_name_check(alias)
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError("reason_required", "say why: a promotion request needs a reason")
    version = adapter_version_get(version_ref)
    adapter = version.adapter
    if not _can_request(user, adapter.namespace):
        raise _denied(f"requesting a promotion needs the engineer, approver or admin role in {adapter.namespace}")
    override_reason = _override_checked(override_reason, user, adapter.namespace)
    policy = promotion_policy_for(adapter.namespace, alias)
    # Gates re-hash the version's files: evaluated before taking the chain's lock, against what the
    # alias serves now, and only kept if the alias still serves that under the lock.
    current = _serving(adapter, alias)
    serving = current.version if current is not None else None
    _request_checked(adapter, alias, version, serving, kind, canary_weight)
    gates = gates_evaluate(version, serving, policy, user=user, kind=kind)
    with transaction.atomic():
        audit_chain_lock()  # serialises requests: of two for one alias, the second sees the first
        _request_checked(adapter, alias, version, serving, kind, canary_weight)
        _still_serving(adapter, alias, serving)
        request = PromotionRequest(
            adapter=adapter,
            alias=alias,
            kind=kind,
            version=version,
            canary_weight=canary_weight if kind == PromotionRequest.Kind.CANARY else 0,
            expected_version=serving,
            requested_by=user,
            requested_by_name=user.get_username(),
            reason=reason[:4000],
            policy=policy,
            approvals_required=policy["rollback_approvals" if kind == PromotionRequest.Kind.ROLLBACK else "approvals"],
            override_reason=override_reason,
            override_by_name=user.get_username() if override_reason else "",
        )
        movable = _gates_store(request, gates)
        request.save()
        _record(request, "requested", reason=reason, evidence={"gates": request.gates, "policy": policy})
        if movable and request.approvals_required == 0:
            _approve_and_queue(request, reason="no approval required by the policy")
    return request


def _still_serving(adapter: Adapter, alias: str, serving: AdapterVersion | None) -> None:
    now = adapter_alias_version_id(adapter, alias)
    if now != (serving.id if serving is not None else None):
        raise Conflict("alias_conflict", f"{adapter.full_name}:{alias} moved while the gates were evaluated; ask again")


def adapter_alias_version_id(adapter: Adapter, alias: str):
    return AdapterAlias.objects.filter(adapter=adapter, name=alias).values_list("version_id", flat=True).first()


def _request_checked(adapter, alias, version, serving, kind, canary_weight) -> None:
    open_request = PromotionRequest.objects.filter(adapter=adapter, alias=alias, state__in=PromotionRequest.OPEN_STATES)
    other = open_request.first()
    if other is not None:
        raise Conflict(
            "alias_conflict",
            f"{adapter.full_name}:{alias} already has an open promotion request {other.id} ({other.state}) for "
            f"{other.version.ref}; wait for it, or cancel or reject it first",
            request=str(other.id),
        )
    if kind == PromotionRequest.Kind.CANARY:
        if serving is None:
            raise RegistryError(
                "canary_without_alias", f"{adapter.full_name}:{alias} serves nothing yet; promote first"
            )
        if not isinstance(canary_weight, int) or isinstance(canary_weight, bool) or not 1 <= canary_weight <= 99:
            raise RegistryError("canary_weight_invalid", "a canary weight is a whole percent from 1 to 99")
    if serving is not None and serving.id == version.id:
        raise Conflict("alias_unchanged", f"{adapter.full_name}:{alias} already serves {version.ref}")


def _approve_and_queue(request: PromotionRequest, *, reason: str) -> None:
    request.state = State.APPROVED
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_at"])
    _record(request, "approved", before={"state": State.PENDING}, reason=reason)
    transaction.on_commit(lambda: _queue(request.id), robust=True)


def _queue(request_id) -> None:
    from registry.promotion_tasks import execute_promotion

    try:
        execute_promotion.delay(str(request_id))
    except Exception:  # the periodic resume task re-sends it; the request stays approved
        logger.exception("could not queue promotion %s; promotions.resume will", request_id)


def _request_locked(request_id) -> PromotionRequest:
    try:
        return (
            PromotionRequest.objects.select_for_update(of=("self",))
            .select_related("adapter", "version__adapter", "version__base_version__base_model", "expected_version")
            .get(id=request_id)
        )
    except (PromotionRequest.DoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound("promotion_not_found", f"no promotion request {request_id}") from None


def _pending(request: PromotionRequest, action: str) -> None:
    if request.state != State.PENDING:
        raise Conflict(
            "promotion_not_pending",
            f"promotion {request.id} is {request.state}; only a pending request can be {action}",
        )


def promotion_approve(*, request_id, user, comment: str = "", override_reason: str = "") -> PromotionRequest:
    """An approver's approval. Never the requester's own (four eyes, admins included); the gates are
    evaluated again and must pass (or an admin overrides with a reason); enough approvals queue it."""
    if not _can_decide(user):
        raise _denied("approving needs the approver or admin role")
    request = _request_get(request_id)
    if not _can_decide(user, request.adapter.namespace):
        raise _denied(f"approving needs the approver or admin role in {request.adapter.namespace}")
    override_reason = _override_checked(override_reason, user, request.adapter.namespace)
    _approvable(request, user)
    current = _serving(request.adapter, request.alias)
    serving = current.version if current is not None else None
    # Outside the lock: the signature gate re-hashes the files.
    gates = gates_evaluate(request.version, serving, request.policy, user=user, kind=request.kind)
    with transaction.atomic():
        audit_chain_lock()
        request = _request_locked(request_id)
        _approvable(request, user)
        _still_serving(request.adapter, request.alias, serving)
        if override_reason:
            request.override_reason, request.override_by_name = override_reason, user.get_username()
        movable = _gates_store(request, gates)
        request.save(
            update_fields=["gates", "gates_passed", "gates_evaluated_at", "override_reason", "override_by_name"]
        )
        if not movable:
            failed = [gate for gate in request.gates if not gate["passed"]]
            error = GatesFailed(request, failed)
        else:
            error = None
            _approval_record(request, user, comment)
    if error is not None:
        raise error  # the fresh gate results are kept on the request; the approval is not recorded
    return request


def _approvable(request: PromotionRequest, user) -> None:
    _pending(request, "approved")
    if request.requested_by_id == user.id:
        raise _denied("four eyes: you requested this promotion, so someone else must approve it")
    if request.approvals.filter(user=user).exists():
        raise Conflict("already_decided", f"you already decided on promotion {request.id}")


def _approval_record(request: PromotionRequest, user, comment: str) -> None:
    PromotionApproval.objects.create(
        request=request, user=user, user_name=user.get_username(), decision=PromotionApproval.Decision.APPROVE,
        comment=comment[:4000],
    )  # fmt: skip
    approvals = request.approvals.filter(decision=PromotionApproval.Decision.APPROVE).count()
    audit_record(
        type="promotion.approval",
        **_subject(request),
        after={"decision": "approve", "approvals": approvals, "required": request.approvals_required},
        reason=comment,
        evidence={"gates": request.gates, "override": request.override_reason or None},
    )
    if approvals >= request.approvals_required:
        _approve_and_queue(request, reason=comment or "approved")


def _request_get(request_id) -> PromotionRequest:
    try:
        return PromotionRequest.objects.select_related("adapter", "version__adapter").get(id=request_id)
    except (PromotionRequest.DoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound("promotion_not_found", f"no promotion request {request_id}") from None


class GatesFailed(RegistryError):
    status_code = 422

    def __init__(self, request: PromotionRequest, failed: list[dict]):
        names = ", ".join(gate["gate"] for gate in failed)
        super().__init__(
            "gates_failed",
            f"promotion {request.id} cannot move {request.adapter.full_name}:{request.alias}: failing gate(s) {names}. "
            f"{failed[0]['detail']}",
            gates=request.gates,
        )


@transaction.atomic
def promotion_reject(*, request_id, user, reason: str) -> PromotionRequest:
    if not _can_decide(user):
        raise _denied("rejecting needs the approver or admin role")
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError("reason_required", "say why: a rejection needs a reason")
    audit_chain_lock()
    request = _request_locked(request_id)
    if not _can_decide(user, request.adapter.namespace):
        raise _denied(f"rejecting needs the approver or admin role in {request.adapter.namespace}")
    _pending(request, "rejected")
    if request.requested_by_id == user.id:
        raise _denied("you requested this promotion: cancel it instead of rejecting it")
    PromotionApproval.objects.create(
        request=request, user=user, user_name=user.get_username(), decision=PromotionApproval.Decision.REJECT,
        comment=reason[:4000],
    )  # fmt: skip
    request.state, request.decided_at, request.finished_at = State.REJECTED, timezone.now(), timezone.now()
    request.save(update_fields=["state", "decided_at", "finished_at"])
    _record(request, "rejected", before={"state": State.PENDING}, reason=reason)
    return request


@transaction.atomic
def promotion_cancel(*, request_id, user, reason: str = "") -> PromotionRequest:
    """The requester (or an admin) withdraws a request that has not started executing."""
    audit_chain_lock()
    request = _request_locked(request_id)
    if request.requested_by_id != user.id and not roles.is_admin(user, request.adapter.namespace):
        raise _denied("only the requester or an admin can cancel a promotion request")
    if request.state not in (State.PENDING, State.APPROVED):
        raise Conflict(
            "promotion_not_pending", f"promotion {request.id} is {request.state}; it can no longer be cancelled"
        )
    before = request.state
    request.state, request.finished_at = State.CANCELLED, timezone.now()
    request.save(update_fields=["state", "finished_at"])
    _record(request, "cancelled", before={"state": before}, reason=reason)
    return request


# --- Execution (a Celery task on the cpu queue: registry/promotion_tasks.py) --------------------


def _step(request: PromotionRequest, name: str, state: str, detail: str = "") -> None:
    steps = [step for step in request.steps if step["name"] != name]
    steps.append({"name": name, "state": state, "at": timezone.now().isoformat(), "detail": detail})
    request.steps = steps
    PromotionRequest.objects.filter(id=request.id).update(steps=steps)


def promotion_claim(request_id) -> PromotionRequest | None:
    """Take an approved request (or one left executing by a worker that died) for execution."""
    stale = timezone.now() - timezone.timedelta(seconds=settings.PROMOTION_STALE_SECONDS)
    with transaction.atomic():
        audit_chain_lock()
        claimable = Q(state=State.APPROVED) | Q(state=State.EXECUTING, started_at__lt=stale)
        request = (
            PromotionRequest.objects.select_for_update(of=("self",))
            .filter(claimable, id=request_id)
            .select_related("adapter", "version__adapter", "expected_version")
            .first()
        )
        if request is None:
            return None
        before = request.state
        request.state, request.started_at = State.EXECUTING, timezone.now()
        request.save(update_fields=["state", "started_at"])
        _record(request, "execute", before={"state": before}, reason="execution started" if before == State.APPROVED
                else "execution resumed after a worker stopped mid-way")  # fmt: skip
    return request


def promotion_execute(request_id) -> PromotionRequest | None:
    """Re-verify from storage, re-check the gates, move the alias in one short transaction.

    Any failure leaves the alias where it was and says why on the request. Idempotent: a request
    whose move already happened (a worker died after it) is marked executed without moving again.
    """
    request = promotion_claim(request_id)
    if request is None:
        return None
    try:
        if request.moves.exists():
            return _finish(request, State.EXECUTED, detail="the alias had already moved for this request")
        _step(request, "verify", "running")
        current = _serving(request.adapter, request.alias)
        serving = current.version if current is not None else None
        movable = _gates_store(request, gates_evaluate(request.version, serving, request.policy, kind=request.kind))
        PromotionRequest.objects.filter(id=request.id).update(
            gates=request.gates, gates_passed=request.gates_passed, gates_evaluated_at=request.gates_evaluated_at
        )
        if not movable:
            failed = [gate for gate in request.gates if not gate["passed"]]
            _step(request, "verify", "failed", failed[0]["detail"])
            return _finish(request, State.FAILED, code="gates_failed", detail=failed[0]["detail"])
        _step(request, "verify", "succeeded", "signatures re-verified from storage; gates pass")
        _step(request, "move", "running")
        _move(request, current)
        _step(request, "move", "succeeded", f"{request.adapter.full_name}:{request.alias} → {request.version.ref}")
        return _finish(request, State.EXECUTED)
    except Conflict as conflict:
        _step(request, "move", "failed", conflict.message)
        return _finish(request, State.FAILED, code=conflict.code, detail=conflict.message)
    except Exception as exc:  # recorded on the request, which is what its requester polls
        logger.exception("promotion %s failed", request.id)
        return _finish(request, State.FAILED, code="promotion_error", detail=f"{exc.__class__.__name__}: {exc}")


def _move(request: PromotionRequest, current: AdapterAlias | None) -> None:
    evidence = {"gates": request.gates, "override": request.override_reason or None}
    if request.kind == PromotionRequest.Kind.CANARY:
        target = AliasTarget(current.version, request.version, request.canary_weight)
        kind = AliasMove.Kind.CANARY_START
    else:
        target = AliasTarget(request.version)
        kind = AliasMove.Kind.ROLLBACK if request.kind == PromotionRequest.Kind.ROLLBACK else AliasMove.Kind.PROMOTE
    alias_move(
        request.adapter,
        request.alias,
        target,
        kind=kind,
        reason=request.reason,
        user=request.requested_by,
        request=request,
        evidence=evidence,
        expected=request.expected_version,
    )


@transaction.atomic
def _finish(request: PromotionRequest, state: str, *, code: str = "", detail: str = "") -> PromotionRequest:
    audit_chain_lock()
    request.state, request.error_code, request.error, request.finished_at = state, code, detail[:4000], timezone.now()
    request.save(update_fields=["state", "error_code", "error", "finished_at"])
    outcome = "success" if state == State.EXECUTED else "failed"
    _record(request, "executed" if state == State.EXECUTED else "failed", before={"state": State.EXECUTING},
            reason=detail, outcome=outcome)  # fmt: skip
    return request


def promotions_resume() -> list[str]:
    """Re-queue approved requests whose message was lost and executions a dead worker left (beat)."""
    stale = timezone.now() - timezone.timedelta(seconds=settings.PROMOTION_STALE_SECONDS)
    due = PromotionRequest.objects.filter(
        Q(state=State.APPROVED, decided_at__lt=stale) | Q(state=State.EXECUTING, started_at__lt=stale)
    ).values_list("id", flat=True)
    resumed = [str(request_id) for request_id in due[:100]]
    for request_id in resumed:
        _queue(request_id)
    return resumed


# --- Direct moves: rollback and canary steps --------------------------------------------------


@dataclass
class DirectMove:
    move: AliasMove | None
    request: PromotionRequest | None = None


def _alias_or_404(adapter: Adapter, alias: str) -> AdapterAlias:
    current = _serving(adapter, alias)
    if current is None:
        raise NotFound("alias_not_found", f"{adapter.full_name} has no alias {alias!r}")
    return current


def alias_rollback(*, adapter: Adapter, alias: str, user, reason: str, to_ref: str | None = None) -> DirectMove:
    """Point the alias back at the version it served before (or `to_ref`, one it served earlier), at once
    and with no canary; when the policy wants approvals for rollbacks, a rollback request instead.

    With a canary running and no `to_ref`, the last change was the canary: the alias goes back to its
    primary alone, at once whatever the policy (it only takes traffic away from the newer version).
    """
    if not _can_decide(user, adapter.namespace):
        raise _denied("rolling back needs the approver or admin role")
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError("reason_required", "say why: a rollback needs a reason")
    current = _alias_or_404(adapter, alias)
    target = rollback_target(adapter, alias, current, to_ref)
    if target.id == current.version_id and current.canary_version is None:
        raise Conflict("alias_unchanged", f"{adapter.full_name}:{alias} already serves {target.ref}")
    policy = promotion_policy_for(adapter.namespace, alias)
    if policy["rollback_approvals"] > 0 and target.id != current.version_id:
        request = promotion_request(
            version_ref=str(target.id), alias=alias, reason=reason, user=user, kind=PromotionRequest.Kind.ROLLBACK
        )
        return DirectMove(None, request)
    move = alias_move(
        adapter, alias, AliasTarget(target), kind=AliasMove.Kind.ROLLBACK, reason=reason, user=user,
        expected=current.version,
    )  # fmt: skip
    return DirectMove(move)


def rollback_target(adapter: Adapter, alias: str, current: AdapterAlias, to_ref: str | None = None) -> AdapterVersion:
    """The version a rollback of `alias` goes to: `to_ref` (a version the alias has served), else its
    primary alone when a canary runs (the last change was the canary), else what it served before
    its current version. The UI's confirmation names the same version."""
    if to_ref:
        target = adapter_version_get(to_ref)
        served = AliasMove.objects.filter(adapter=adapter, alias=alias).values_list("to_version_id", flat=True)
        if target.adapter_id != adapter.id or target.id not in set(served):
            raise RegistryError(
                "rollback_target_invalid", f"{to_ref} is not a version {adapter.full_name}:{alias} has served"
            )
        return target
    if current.canary_version is not None:
        return current.version
    previous = (
        AliasMove.objects.filter(adapter=adapter, alias=alias, from_version__isnull=False)
        .exclude(from_version=current.version)
        .select_related("from_version__adapter")
        .order_by("-moved_at", "-id")
    )
    last_change = next((move for move in previous if move.to_version_id == current.version_id), None)
    if last_change is None:
        raise Conflict("nothing_to_roll_back", f"{adapter.full_name}:{alias} has served no earlier version")
    return last_change.from_version


def alias_canary(
    *, adapter: Adapter, alias: str, user, action: str, reason: str, weight: int | None = None
) -> AliasMove:
    """Ramp the running canary to `weight` percent, promote it to 100%, or abort it; each a recorded move."""
    if not _can_decide(user, adapter.namespace):
        raise _denied("changing a canary needs the approver or admin role")
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError("reason_required", "say why: a canary change needs a reason")
    current = _alias_or_404(adapter, alias)
    if current.canary_version is None:
        raise Conflict("no_canary", f"{adapter.full_name}:{alias} runs no canary; request one with a promotion")
    if action == "ramp":
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 99:
            raise RegistryError("canary_weight_invalid", "a canary weight is a whole percent from 1 to 99")
        target, kind = AliasTarget(current.version, current.canary_version, weight), AliasMove.Kind.CANARY_RAMP
    elif action == "promote":
        target, kind = AliasTarget(current.canary_version), AliasMove.Kind.CANARY_PROMOTE
    elif action == "abort":
        target, kind = AliasTarget(current.version), AliasMove.Kind.CANARY_ABORT
    else:
        raise RegistryError("canary_action_invalid", f"unknown canary action {action!r}: ramp, promote or abort")
    return alias_move(adapter, alias, target, kind=kind, reason=reason, user=user, expected=current.version)
