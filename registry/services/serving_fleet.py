"""The serving fleet: register, change and remove serving workers; pin adapters warm on them.

Every write needs the global admin role, never through a scoped token: a serving worker's capacity
and a pin are shared by every namespace (a namespace admin pinning their adapters on every worker
would take GPU slots from everyone else's), so no namespace role can grant them. Each write
records its audit event in its own transaction (serving_worker.register/update/remove,
residency_pin.add/remove).
"""

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry import roles
from registry.audit.services import audit_chain_lock, audit_record
from registry.errors import Conflict, NotFound, RegistryError
from registry.models import AdapterAlias, BaseModelVersion, ResidencyPin, ServingWorker
from registry.models.residency import SERVING_WORKER_NAME
from registry.refs import parse_name, parse_ref
from registry.selectors import LATEST_ALIAS, adapter_version_get, base_version_get

# Fields a register or update may set (the name is the worker's identity, set once).
WORKER_FIELDS = (
    "engine",
    "endpoint",
    "gpu_slots",
    "gpu_bytes",
    "max_rank",
    "host_slots",
    "host_bytes",
    "disk_bytes",
    "labels",
)
SERVING_WORKER_NAME_PATTERN = re.compile(SERVING_WORKER_NAME)
# Which refusal code a model validation error on a field becomes.
_FIELD_CODES = {
    "name": "serving_worker_name_invalid",
    "engine": "serving_worker_engine_invalid",
    "endpoint": "serving_worker_endpoint_invalid",
    "labels": "serving_worker_labels_invalid",
}
_CAPACITY_FIELDS = {"gpu_slots", "gpu_bytes", "max_rank", "host_slots", "host_bytes", "disk_bytes"}


def require_fleet_admin(user, action: str) -> None:
    """403 for anyone but a global admin acting in person (a session or a personal token)."""
    roles.token_check(user, None, None, action)
    if not roles.is_admin(user):
        raise RegistryError("permission_denied", f"{action} needs the global admin role", status_code=403)


def _user_or_none(user):
    return user if getattr(user, "is_authenticated", False) else None


def serving_worker_get(name: str) -> ServingWorker:
    # A name that cannot exist is not looked up (a NUL or a 10 kB string never reaches PostgreSQL).
    valid = SERVING_WORKER_NAME_PATTERN.fullmatch(name or "")
    worker = valid and ServingWorker.objects.filter(name=name).prefetch_related("base_versions__base_model").first()
    if not worker:
        raise NotFound("serving_worker_not_found", f"no serving worker is named {name[:63]!r}", name=name[:63])
    return worker


def _bases_resolved(base_refs) -> list[BaseModelVersion]:
    """Each ref to one base version (any reference form); an unknown one is refused by name."""
    if not isinstance(base_refs, list) or not base_refs:
        raise RegistryError("serving_worker_bases_required", "base_versions: give at least one base model version")
    bases = {}
    for ref in base_refs:
        try:
            base = base_version_get(ref)
        except NotFound as exc:  # a malformed ref stays invalid_ref
            raise RegistryError(
                "base_not_found", f"base_versions: {str(ref)[:100]!r} does not resolve: {exc.message}", ref=str(ref)
            ) from None
        bases[base.pk] = base
    return list(bases.values())


def _validated(worker: ServingWorker) -> None:
    """The model's own rules (name, engine, URL, capacity, labels) as one refusal with a stable code."""
    try:
        worker.full_clean(exclude=["created_by"], validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        code = _FIELD_CODES.get(field, "serving_worker_capacity_invalid" if field in _CAPACITY_FIELDS else None)
        raise RegistryError(code or "serving_worker_invalid", f"{field}: {messages[0]}", field=field) from None


def _state(worker: ServingWorker, bases) -> dict:
    """What the audit event records of a worker."""
    return {
        "name": worker.name,
        **{field: getattr(worker, field) for field in WORKER_FIELDS},
        "base_versions": sorted(base.digest_ref for base in bases),
    }


def _subject(worker: ServingWorker) -> dict:
    return {"object_type": "serving_worker", "object_id": worker.name}


def serving_worker_register(*, by, name: str, base_refs: list[str], **fields) -> ServingWorker:
    """A new serving worker (409 serving_worker_exists when the name is taken)."""
    require_fleet_admin(by, "registering a serving worker")
    worker = ServingWorker(name=name, created_by=_user_or_none(by), **_known(fields))
    _validated(worker)
    bases = _bases_resolved(base_refs)
    try:
        with transaction.atomic():
            audit_chain_lock()
            worker.save()
            worker.base_versions.set(bases)
            audit_record(type="serving_worker.register", **_subject(worker), after=_state(worker, bases))
    except IntegrityError:
        if ServingWorker.objects.filter(name=name).exists():
            raise Conflict(
                "serving_worker_exists", f"a serving worker is already named {name!r}; PUT to change it", name=name
            ) from None
        raise
    return serving_worker_get(worker.name)


def _known(fields: dict) -> dict:
    unknown = sorted(set(fields) - set(WORKER_FIELDS))
    if unknown:
        raise RegistryError("serving_worker_invalid", f"unknown field {unknown[0]!r}")
    return fields


def serving_worker_update(*, by, worker: ServingWorker, changes: dict) -> ServingWorker:
    """Change any of the worker's fields (`base_refs` replaces its bases); the event shows what changed."""
    require_fleet_admin(by, f"changing serving worker {worker.name}")
    changes = dict(changes)
    new_bases = _bases_resolved(changes.pop("base_refs")) if "base_refs" in changes else None
    with transaction.atomic():
        audit_chain_lock()
        worker = ServingWorker.objects.select_for_update().get(pk=worker.pk)
        old_bases = list(worker.base_versions.all())
        before = _state(worker, old_bases)
        for field, value in _known(changes).items():
            setattr(worker, field, value)
        _validated(worker)
        if new_bases is not None:
            worker.base_versions.set(new_bases)
        after = _state(worker, new_bases if new_bases is not None else old_bases)
        changed = [field for field in after if before[field] != after[field]]
        if not changed:
            return serving_worker_get(worker.name)
        worker.save()
        audit_record(
            type="serving_worker.update",
            **_subject(worker),
            before={field: before[field] for field in changed},
            after={field: after[field] for field in changed},
        )
    return serving_worker_get(worker.name)


def serving_worker_remove(*, by, worker: ServingWorker) -> None:
    """Remove a worker with its telemetry, pins and planned states (the event keeps what it was)."""
    require_fleet_admin(by, f"removing serving worker {worker.name}")
    with transaction.atomic():
        audit_chain_lock()
        # Locked before its telemetry is deleted: a batch being ingested (which locks the row first)
        # finishes before, or finds the worker gone; none leaves rows behind it.
        worker = ServingWorker.objects.select_for_update().get(pk=worker.pk)
        before = _state(worker, list(worker.base_versions.all()))
        before["telemetry_windows"] = worker.telemetry.count()
        subject = _subject(worker)
        worker.delete()
        audit_record(type="serving_worker.remove", **subject, before=before)


# --- Pins ----------------------------------------------------------------------------------


def _pin_target(target: str) -> dict:
    """`ns/name:alias` pins whatever the alias serves; an exact reference pins that version."""
    ref = parse_ref(target)
    if ref.alias is not None and ref.alias != LATEST_ALIAS:
        namespace, name = parse_name(f"{ref.namespace}/{ref.name}")
        alias = AdapterAlias.objects.select_related("adapter").filter(
            adapter__namespace=namespace, adapter__name=name, name=ref.alias
        )
        found = alias.first()
        if found is None:
            raise NotFound("alias_not_found", f"{target!r}: the adapter has no alias {ref.alias!r}", ref=target)
        return {"adapter": found.adapter, "alias": ref.alias}
    if ref.id is None and ref.number is None and ref.digest is None:
        raise RegistryError(
            "pin_target_invalid",
            f"{target[:100]!r}: pin one version (ns/name@sha256:<hex>, ns/name:vN or its UUID) or an alias "
            "(ns/name:production), not whatever is newest",
        )
    return {"adapter_version": adapter_version_get(target)}


def _pin_state(pin: ResidencyPin) -> dict:
    return {"target": pin.target, "worker": pin.worker.name if pin.worker_id else None, "reason": pin.reason}


def _pin_adapter(pin: ResidencyPin) -> str:
    adapter = pin.adapter if pin.adapter_id else pin.adapter_version.adapter
    return adapter.full_name


def residency_pin_add(*, by, target: str, worker_name: str | None = None, reason: str = "") -> ResidencyPin:
    """Keep `target` warm on one worker (or on every worker serving its base); 409 when already pinned."""
    require_fleet_admin(by, "pinning an adapter")
    fields = _pin_target(target)
    worker = serving_worker_get(worker_name) if worker_name else None
    version = fields.get("adapter_version")
    if worker is not None and version is not None and not worker.base_versions.filter(pk=version.base_version_id):
        raise RegistryError(
            "pin_base_not_served",
            f"{worker.name} does not serve {version.base_version.ref}, the base of {version.digest_ref}",
        )
    pin = ResidencyPin(**fields, worker=worker, reason=reason, created_by=_user_or_none(by))
    try:
        with transaction.atomic():
            audit_chain_lock()
            pin.save()
            audit_record(
                type="residency_pin.add",
                object_type="residency_pin",
                object_id=str(pin.pk),
                adapter=_pin_adapter(pin),
                after=_pin_state(pin),
                reason=reason,
            )
    except IntegrityError:
        where = worker.name if worker else "every worker"
        raise Conflict("pin_exists", f"{target} is already pinned on {where}") from None
    return pin


def residency_pin_get(pin_id: int) -> ResidencyPin:
    pin = ResidencyPin.objects.select_related("adapter", "adapter_version__adapter", "worker").filter(pk=pin_id)
    found = pin.first()
    if found is None:
        raise NotFound("pin_not_found", f"no residency pin {pin_id}")
    return found


def residency_pin_remove(*, by, pin: ResidencyPin) -> None:
    require_fleet_admin(by, "removing a residency pin")
    with transaction.atomic():
        audit_chain_lock()
        before, adapter, pin_id = _pin_state(pin), _pin_adapter(pin), str(pin.pk)
        pin.delete()
        audit_record(
            type="residency_pin.remove", object_type="residency_pin", object_id=pin_id, adapter=adapter, before=before
        )
