"""Reading the audit chain: the filters the events list, the UI and the exports share."""

from datetime import datetime

from django.db.models import QuerySet

from registry.errors import NotFound
from registry.models import AuditEvent

MAX_SEQ = 2**63 - 1  # PostgreSQL bigint


def audit_event_list(
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    namespace: str = "",
    adapter: str = "",
    type: str = "",
    actor: str = "",
    object_id: str = "",
    outcome: str = "",
) -> QuerySet[AuditEvent]:
    """Events at or after `after` and before `before`, whose other fields equal the given ones;
    `type` ending in ".*" matches every type under that prefix ("job.*")."""
    events = AuditEvent.objects.all()
    if after is not None:
        events = events.filter(time__gte=after)
    if before is not None:
        events = events.filter(time__lt=before)
    if type.endswith(".*"):
        events = events.filter(type__startswith=type[:-1])
    elif type:
        events = events.filter(type=type)
    exact = {"namespace": namespace, "adapter": adapter, "actor_name": actor, "object_id": object_id}
    exact["outcome"] = outcome
    return events.filter(**{field: value for field, value in exact.items() if value})


def audit_event_get(seq: int) -> AuditEvent:
    event = AuditEvent.objects.filter(seq=seq).first() if 1 <= seq <= MAX_SEQ else None
    if event is None:
        raise NotFound("audit_event_not_found", f"no audit event has sequence number {seq}")
    return event
