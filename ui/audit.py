"""The Audit pages: the audit trail for auditors and admins, exports of it, and a version's history.

Everything here reads through registry/audit: the events list's filters
(AuditEventFilterSerializer, selectors.audit_event_list), its permission (IsAuditorOrAdmin) and
the export services the API calls, so the UI can neither see nor export more than the API, and an
export from the page is audited like one from the API.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from registry.audit import selectors
from registry.audit.api import AuditEventFilterSerializer, IsAuditorOrAdmin
from registry.audit.export import audit_export_request, audit_export_start
from registry.audit.services import audit_event_data
from registry.errors import RegistryError
from registry.models import AdapterVersion, AuditEvent, AuditExport, Job

PAGE_SIZE = 50
HISTORY_SIZE = 20
RECENT_EXPORTS = 10
FILTER_NAMES = ("after", "before", "namespace", "adapter", "type", "actor", "object_id", "outcome")
# The list's columns: the hashed body and the JSON fields stay in the database until an event is opened.
LIST_COLUMNS = (
    "seq",
    "time",
    "type",
    "actor_kind",
    "actor_name",
    "actor_role",
    "object_type",
    "object_id",
    "adapter",
    "outcome",
)
# The event types the registry writes (README, "Audit trail"), for the type select; a prefix
# ("job.*") matches all of a group. A type outside the list still works from the query string.
EVENT_TYPES = (
    ("Versions", ("base.upload", "base.upload_refused", "adapter.upload", "adapter.upload_refused", "version.status")),
    ("Checks and evaluations", ("check.*", "check.static", "check.dynamic", "evaluation.request")),
    ("Jobs", ("job.*", "job.dispatch", "job.redispatch", "job.claim", "job.finish", "job.release", "job.cancel")),
    ("Workers", ("worker.*", "worker.register", "worker.online", "worker.lost", "worker.stopped")),
    ("Signatures", ("signature.verify", "signing_policy.change")),
    ("Suites", ("suite.register", "suite.attach")),
    ("Files", ("file.download",)),
    (
        "Promotions",
        ("promotion.*", "promotion.requested", "promotion.approval", "promotion.approved", "promotion.rejected")
        + ("promotion.cancelled", "promotion.execute", "promotion.executed", "promotion.failed", "alias.move")
        + ("promotion_policy.change",),
    ),
    ("Webhooks", ("webhook.*", "webhook.create", "webhook.update", "webhook.delete", "webhook.test")),
    (
        "Accounts",
        ("user.*", "user.create", "user.update", "user.password_change", "user.delete", "user.roles")
        + ("user.permissions", "group.*", "token.issue", "token.revoke"),
    ),
    ("Access", ("access.denied",)),
    ("Audit", ("audit.*", "audit.export", "audit.export_expired", "audit.checkpoint")),
)
UNFINISHED_EXPORT_STATES = (AuditExport.State.QUEUED, AuditExport.State.RUNNING)


def _require_auditor(request) -> None:
    """The API's rule (IsAuditorOrAdmin), so the page and /api/v1/audit/ never disagree."""
    if not IsAuditorOrAdmin().has_permission(request, None):
        raise PermissionDenied(IsAuditorOrAdmin.message)


# --- Filters --------------------------------------------------------------------------------


@dataclass
class AuditFilters:
    """The filters as typed (for the form and links), as validated (for the selector), and what is wrong."""

    typed: dict[str, str]
    validated: dict = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def query_string(self) -> str:
        return urlencode(self.typed)


def audit_filters(data) -> AuditFilters:
    """Validate the filters in `data` (GET or POST) with the API's serializer. Empty fields are
    left out: a form sends every field, and an empty one means "any"."""
    typed = {name: data.get(name, "").strip() for name in FILTER_NAMES}
    typed = {name: value for name, value in typed.items() if value}
    filters = AuditFilters(typed=typed)
    _validate(filters, dict(typed))
    return filters


def _validate(filters: AuditFilters, data: dict) -> None:
    serializer = AuditEventFilterSerializer(data=data)
    try:
        valid = serializer.is_valid()
    except RegistryError as error:
        # The adapter name's own check (parse_name) raises rather than reports; the other fields
        # are validated again without it, so every error shows at once.
        filters.errors["adapter"] = [f"{error.message} ({error.code})"]
        data.pop("adapter", None)
        return _validate(filters, data) if data else None
    if valid:
        filters.validated = serializer.validated_data
    else:
        for name, problems in serializer.errors.items():
            # A time input cannot show text that is not a time: the message quotes it.
            given = f"{data[name][:40]!r}: " if name in ("after", "before") else ""
            filters.errors[name] = [given + str(message) for message in problems]


# --- Keyset pages -----------------------------------------------------------------------------


@dataclass
class EventPage:
    """One page of events, newest first, and where the pages beside it start (by seq, never by count)."""

    events: list
    newer_than: int | None = None
    older_than: int | None = None


def _seq_param(data, name: str, errors: dict) -> int | None:
    text = data.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= selectors.MAX_SEQ:
        errors[name] = [f"{name} takes an event's sequence number (1, 2, 3, ...), not {text[:40]!r}"]
        return None
    return int(text)


def _event_page(events, *, older: int | None, newer: int | None) -> EventPage:
    """PAGE_SIZE events before `older`, or after `newer`, or the newest: one bounded query on seq."""
    events = events.only(*LIST_COLUMNS)
    if newer is not None:
        rows = list(events.filter(seq__gt=newer).order_by("seq")[: PAGE_SIZE + 1])
        more_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        # `newer` is a row of the page this link came from, which matched: that page is still older.
        older_than = rows[-1].seq if rows else newer + 1
        return EventPage(rows, newer_than=rows[0].seq if more_newer else None, older_than=older_than)
    if older is not None:
        events = events.filter(seq__lt=older)
    rows = list(events.order_by("-seq")[: PAGE_SIZE + 1])
    more_older = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    # Likewise, `older` came from a row of a newer page.
    newer_than = None if older is None else (rows[0].seq if rows else older - 1)
    return EventPage(rows, newer_than=newer_than, older_than=rows[-1].seq if more_older else None)


# --- Views --------------------------------------------------------------------------------------


@require_GET
@login_required
def audit_list(request):
    _require_auditor(request)
    filters = audit_filters(request.GET)
    older = _seq_param(request.GET, "older", filters.errors)
    newer = _seq_param(request.GET, "newer", filters.errors)
    page = None
    if not filters.errors:
        page = _event_page(selectors.audit_event_list(**filters.validated), older=older, newer=newer)
    context = {
        "filters": filters,
        "page": page,
        "event_types": _event_type_choices(filters.typed.get("type", "")),
        "outcomes": AuditEvent.Outcome.values,
        "zone": timezone.get_current_timezone_name(),
        "form_times": _form_times(filters),
        "exports": _recent_exports(request.user),
    }
    return render(request, "ui/audit_list.html", context, status=400 if filters.errors else 200)


def _event_type_choices(selected: str) -> list:
    """The known types in groups; a type given in the query string but not known is kept, so a
    linked view shows what it filters by."""
    known = {name for _, names in EVENT_TYPES for name in names}
    groups = list(EVENT_TYPES)
    if selected and selected not in known:
        groups.insert(0, ("From the link", (selected,)))
    return groups


def _form_times(filters: AuditFilters) -> dict[str, str]:
    """The time filters as a datetime-local input shows them: in the page's time zone, without one.
    An RFC 3339 time from a link ("...Z") is shown converted, so the form sends the same instant back."""
    shown = {}
    for name in ("after", "before"):
        moment = filters.validated.get(name)
        if moment is not None:
            local = timezone.localtime(moment)
            # The input takes milliseconds at most; whole seconds are shown without them.
            fraction = f".{local.microsecond // 1000:03d}" if local.microsecond else ""
            shown[name] = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction
    return shown


def _recent_exports(user):
    return list(AuditExport.objects.filter(requested_by=user).order_by("-created_at")[:RECENT_EXPORTS])


@require_GET
@login_required
def audit_event(request, seq: int):
    _require_auditor(request)
    try:
        event = selectors.audit_event_get(seq)
    except RegistryError:
        raise Http404(f"no audit event has sequence number {seq}") from None
    hashed = audit_event_data(event)
    context = {
        "event": event,
        "hashed_time": hashed["time"],
        "changes": event_changes(event.before, event.after),
        "before_json": _pretty(event.before),
        "after_json": _pretty(event.after),
        "evidence_json": _pretty(event.evidence),
        "body": event.body,
        "has_next": AuditEvent.objects.filter(seq=event.seq + 1).exists(),
    }
    return render(request, "ui/audit_event.html", context)


_ABSENT = object()


def event_changes(before, after) -> list[dict]:
    """before and after side by side, key by key when both are objects (changed keys marked), else whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        pairs = [(key, before.get(key, _ABSENT), after.get(key, _ABSENT)) for key in keys]
    elif before is None and after is None:
        return []
    else:
        pairs = [("", _ABSENT if before is None else before, _ABSENT if after is None else after)]
    return [
        {"key": key, "before": _compact(old), "after": _compact(new), "changed": old != new} for key, old, new in pairs
    ]


def _compact(value) -> str:
    if value is _ABSENT:
        return "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _pretty(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2)


# --- Exports ----------------------------------------------------------------------------------


@require_POST
@login_required
def audit_export_create(request):
    """The page's "Export these events": the API's services, so the request is an `audit.export` event."""
    _require_auditor(request)
    filters = audit_filters(request.POST)
    back = f"{reverse('ui:audit')}?{filters.query_string}" if filters.typed else reverse("ui:audit")
    if filters.errors:
        messages.error(request, "Nothing was exported: fix the filters first.")
        return redirect(back)
    try:
        export = audit_export_request(
            user=request.user,
            filters=filters.validated,
            registry_url=request.build_absolute_uri("/").rstrip("/"),
        )
        export = audit_export_start(export)
    except RegistryError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(request, f"Export {export.id} requested; its progress is shown under Exports.")
    return redirect(f"{back}#exports")


@require_GET
@login_required
def audit_export(request, export_id):
    """An export's state: the polled fragment for htmx (286 once it is finished, so polling stops),
    else a page of its own."""
    _require_auditor(request)
    export = AuditExport.objects.filter(pk=export_id).first()
    if export is None:
        raise Http404(f"no audit export has id {export_id}")
    context = {"export": export}
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        response = render(request, "ui/_audit_export.html", context)
        if export.state not in UNFINISHED_EXPORT_STATES:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "ui/audit_export.html", context)


# --- A version's history --------------------------------------------------------------------


def version_history(version) -> list[AuditEvent]:
    """The latest events whose object is this version, or (for an adapter version) one of its jobs:
    its upload, status moves, checks, evaluation requests, signature verifications, and the jobs
    that checked and evaluated it. Two queries, whatever the number of events."""
    object_ids = [str(version.id)]
    if isinstance(version, AdapterVersion):
        # The job ids as a list, not a subquery: `object_id = ANY(list)` is an index scan of
        # (object_id, seq), where `object_id IN (SELECT ...)` under an OR had PostgreSQL walk the
        # whole table backwards by seq (0.6 s at 1,000,000 events).
        object_ids += [
            str(job_id) for job_id in Job.objects.filter(adapter_version=version).values_list("id", flat=True)
        ]
    columns = (*LIST_COLUMNS, "reason", "after")
    return list(AuditEvent.objects.filter(object_id__in=object_ids).only(*columns).order_by("-seq")[:HISTORY_SIZE])


def history_context(version) -> dict:
    return {
        "audit_history": version_history(version),
        "history_size": HISTORY_SIZE,
        "history_includes_jobs": isinstance(version, AdapterVersion),
    }
