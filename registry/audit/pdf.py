"""summary.pdf of an audit export: per adapter the exported events touch, who did what in the events,
its alias history and promotion approvals as the events tell them, and its versions, checks,
evaluations and signatures as the registry holds them now.

A reading aid for people. It is hashed in the signed manifest like every file of the export, but
the evidence is events.jsonl: this page is not recomputed by the verifier. Tables are capped
(MAX_ROWS) so that a million-event export still gives a readable document; the caps are stated
where they apply. Made with reportlab's built-in Helvetica, which covers Latin-1 only.
"""

import io
import json
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from registry.metrics_display import significant
from registry.models import Adapter, Check, Job, Signature

MAX_ADAPTERS = 200
MAX_ROWS = 50
NO_ADAPTER = ""


@dataclass
class ActivityRow:
    actor: str
    type: str
    outcome: str
    count: int
    first: str
    last: str


@dataclass
class Activity:
    """Who did what to one adapter (or to no adapter), aggregated from the exported events."""

    adapter: str
    events: int = 0
    rows: list[ActivityRow] = field(default_factory=list)


def add_activity(groups: dict, rows) -> None:
    """Fold (adapter, actor kind, actor name, type, outcome, count, first, last) rows, one interval's
    GROUP BY, into `groups`."""
    for adapter, kind, name, type_, outcome, count, first, last in rows:
        key = (adapter, kind, name, type_, outcome)
        known = groups.get(key)
        groups[key] = (
            [count, first, last] if known is None else [known[0] + count, min(known[1], first), max(known[2], last)]
        )


def activities(groups: dict) -> list[Activity]:
    """Per adapter (those with no adapter last), its actor and type pairs, the most frequent first."""
    per_adapter: dict[str, Activity] = {}
    for (adapter, kind, name, type_, outcome), (count, first, last) in groups.items():
        activity = per_adapter.setdefault(adapter, Activity(adapter))
        activity.events += count
        activity.rows.append(ActivityRow(f"{name or '?'} ({kind})", type_, outcome, count, _when(first), _when(last)))
    for activity in per_adapter.values():
        activity.rows.sort(key=lambda row: (-row.count, row.actor, row.type, row.outcome))
    return sorted(per_adapter.values(), key=lambda a: (a.adapter == NO_ADAPTER, a.adapter))


# --- Alias history and approvals, from the exported alias.move and promotion.* events -----------

# The events that say how an adapter's aliases moved and who asked and decided: what the summary's
# "Alias history" and "Approvals" tables are made of. promotion_policy.* is not one of them.
PROMOTION_EVENTS_SQL = "(type = 'alias.move' OR type LIKE 'promotion.%%')"


@dataclass
class MoveRow:
    when: str
    alias: str
    moved_from: str
    moved_to: str
    kind: str
    who: str
    reason: str
    request: str


@dataclass
class RequestRow:
    request: str
    alias: str = ""
    kind: str = ""
    version: str = ""
    requested_by: str = ""
    reason: str = ""
    decisions: list = field(default_factory=list)  # "name: approve" / "name: reject"
    comments: list = field(default_factory=list)
    state: str = ""


@dataclass
class Promotions:
    """One adapter's alias moves (the latest MAX_ROWS) and promotion requests (the latest MAX_ROWS)."""

    moves: deque = field(default_factory=lambda: deque(maxlen=MAX_ROWS))
    moves_total: int = 0
    requests: OrderedDict = field(default_factory=OrderedDict)
    requests_left_out: int = 0


def _json(value) -> dict:
    """A before/after column as read (jsonb as text, or NULL) as a dict."""
    value = json.loads(value) if isinstance(value, str) else value
    return value if isinstance(value, dict) else {}


def _short_ref(ref, adapter: str) -> str:
    """ "v3" for a version of this adapter (its full reference otherwise)."""
    if not ref:
        return ""
    return ref[len(adapter) + 1 :] if ref.startswith(f"{adapter}:") else ref


def _served(state: dict, adapter: str) -> str:
    """What an alias served, as an alias.move event's before/after says: "v1" or "v1 + v2 at 10%"."""
    version = _short_ref(state.get("version"), adapter)
    if not version:
        return "nothing"
    canary = _short_ref(state.get("canary"), adapter)
    return f"{version} + {canary} at {state.get('canary_weight', 0)}%" if canary else version


def _request_row(promotions: Promotions, request_id: str) -> RequestRow:
    row = promotions.requests.get(request_id)
    if row is None:
        if len(promotions.requests) >= MAX_ROWS:  # keep the latest requests; say how many are left out
            promotions.requests.popitem(last=False)
            promotions.requests_left_out += 1
        row = promotions.requests[request_id] = RequestRow(request_id[:8])
    return row


def add_promotions(groups: dict, rows) -> None:
    """Fold (adapter, time, type, actor kind, actor name, object_id, before, after, reason) rows of
    alias.move and promotion.* events, in seq order, into `groups` (adapter -> Promotions)."""
    for adapter, moment, type_, kind, name, object_id, before, after, reason in rows:
        promotions = groups.setdefault(adapter, Promotions())
        before, after, who = _json(before), _json(after), f"{name or '?'} ({kind})"
        if type_ == "alias.move":
            promotions.moves_total += 1
            request = after.get("request") or ""
            promotions.moves.append(
                MoveRow(_when(moment), after.get("alias", ""), _served(before, adapter), _served(after, adapter),
                        after.get("kind", ""), who, reason, request[:8])
            )  # fmt: skip
            continue
        row = _request_row(promotions, object_id)
        row.state = after.get("state", row.state)
        if type_ == "promotion.requested":
            row.alias, row.kind = after.get("alias", ""), after.get("kind", "")
            row.version, row.requested_by, row.reason = _short_ref(after.get("version"), adapter), who, reason
        elif type_ in ("promotion.approval", "promotion.rejected"):
            decision = after.get("decision") or "reject"
            row.decisions.append(f"{name}: {decision}")
            if reason:
                row.comments.append(f"{name}: {reason}")
        elif type_ == "promotion.cancelled":
            row.decisions.append(f"{name}: cancel")
            if reason:
                row.comments.append(f"{name}: {reason}")
        elif type_ == "promotion.failed" and reason:
            row.comments.append(f"failed: {reason}")


# --- Layout ------------------------------------------------------------------------------------

_styles = getSampleStyleSheet()
_small = _styles["BodyText"].clone("small", fontSize=7.5, leading=9)
_GRID = TableStyle(
    [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 7.5),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
)


def _cell(value) -> Paragraph:
    return Paragraph(escape(str(value if value not in (None, "") else "—")), _small)


def _table(header: list[str], rows: list[list], widths: list[float], what: str) -> list:
    shown = rows[:MAX_ROWS]
    flow = [Table([header, *[[_cell(v) for v in row] for row in shown]], colWidths=[w * mm for w in widths])]
    flow[0].setStyle(_GRID)
    if len(rows) > MAX_ROWS:
        flow.append(Paragraph(f"… and {len(rows) - MAX_ROWS} more {what}, not shown.", _small))
    return [*flow, Spacer(1, 3 * mm)]


def _when(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _versions(adapter: Adapter) -> list:
    versions = list(adapter.versions.select_related("created_by").order_by("-number")[: MAX_ROWS + 1])
    rows = [
        [f"v{v.number}", v.digest[:16] + "…", v.status, v.status_reason[:120], _when(v.created_at), _user(v.created_by)]
        for v in versions
    ]
    return _table(
        ["version", "digest", "status", "reason", "created (UTC)", "by"], rows, [16, 32, 18, 110, 32, 30], "versions"
    )


def _checks(adapter: Adapter) -> list:
    checks = Check.objects.filter(adapter_version__adapter=adapter).select_related("adapter_version")
    checks = checks.order_by("-adapter_version__number", "kind")[: MAX_ROWS + 1]
    rows = [
        [f"v{c.adapter_version.number}", c.kind, c.verdict, "; ".join(map(str, c.reasons))[:200], _when(c.created_at)]
        for c in checks
    ]
    return _table(["version", "check", "verdict", "reasons", "at (UTC)"], rows, [16, 20, 16, 150, 32], "checks")


def _evaluations(adapter: Adapter) -> list:
    jobs = Job.objects.filter(adapter_version__adapter=adapter, kind=Job.Kind.EVALUATION)
    jobs = jobs.select_related("adapter_version", "suite").order_by("-created_at")[: MAX_ROWS + 1]
    rows = []
    for job in jobs:
        metrics = ((job.result or {}).get("metrics") or {}).get("adapter") or {}
        shown = ", ".join(f"{name} {significant(value)}" for name, value in sorted(metrics.items())[:4])
        suite = f"{job.suite.namespace}/{job.suite.name}:v{job.suite.number}" if job.suite else ""
        rows.append(
            [f"v{job.adapter_version.number}", suite, job.state, shown or job.error[:120], _when(job.finished_at)]
        )
    return _table(
        ["version", "suite", "state", "metrics (adapter)", "finished (UTC)"], rows, [16, 50, 20, 112, 32], "evaluations"
    )


def _signatures(adapter: Adapter) -> list:
    signatures = Signature.objects.filter(version__adapter=adapter).select_related("version")
    signatures = signatures.order_by("-version__number", "created_at")[: MAX_ROWS + 1]
    rows = [
        [
            f"v{s.version.number}",
            "registry" if s.is_registry else (s.signer_identity or s.key_fingerprint[:16] or "?"),
            s.method,
            s.result + ("" if s.trusted else " (untrusted)"),
            s.code or s.reason[:80],
            _when(s.verified_at),
        ]
        for s in signatures
    ]
    header = ["version", "signer", "method", "result", "code / reason", "verified (UTC)"]
    return _table(header, rows, [16, 70, 18, 26, 70, 32], "signatures")


def _activity(activity: Activity) -> list:
    rows = [[r.actor, r.type, r.outcome, r.count, r.first, r.last] for r in activity.rows]
    header = ["actor", "event type", "outcome", "events", "first (UTC)", "last (UTC)"]
    return _table(header, rows, [60, 50, 20, 18, 32, 32], "actor and event type pairs")


def _alias_history(promotions: Promotions) -> list:
    rows = [
        [m.when, m.alias, m.moved_from, m.moved_to, m.kind, m.who, m.reason[:300], m.request]
        for m in reversed(promotions.moves)
    ]
    header = ["moved (UTC)", "alias", "from", "to", "kind", "by", "reason", "request"]
    flow = _table(header, rows, [30, 22, 34, 34, 24, 34, 72, 20], "moves")
    earlier = promotions.moves_total - len(promotions.moves)
    if earlier:
        flow.insert(1, Paragraph(f"… and {earlier} earlier move(s), not shown.", _small))
    return flow


def _approvals(promotions: Promotions) -> list:
    rows = [
        [
            r.request,
            " ".join(part for part in (r.alias, r.kind, r.version) if part),
            r.requested_by,
            r.reason[:300],
            "; ".join(r.decisions),
            r.state,
            " | ".join(r.comments)[:600],
        ]
        for r in reversed(promotions.requests.values())
    ]
    header = ["request", "alias, kind, version", "requested by", "reason", "decisions", "state", "comments"]
    flow = _table(header, rows, [18, 40, 30, 50, 40, 18, 74], "requests")
    if promotions.requests_left_out:
        flow.insert(1, Paragraph(f"… and {promotions.requests_left_out} earlier request(s), not shown.", _small))
    return flow


def _promotion_flow(promotions: Promotions | None) -> list:
    """The adapter's alias history and approvals, when the exported events hold any."""
    if promotions is None:
        return []
    flow = []
    if promotions.moves_total:
        flow += [Paragraph("Alias history, from the events (newest first)", _styles["Heading4"])]
        flow += _alias_history(promotions)
    if promotions.requests:
        flow += [Paragraph("Promotion requests and approvals, from the events (newest first)", _styles["Heading4"])]
        flow += _approvals(promotions)
    return flow


def _user(user) -> str:
    return user.get_username() if user else ""


def _adapter_section(activity: Activity, promotions: Promotions | None = None) -> list:
    heading = activity.adapter or "Events not tied to an adapter"
    flow = [Paragraph(escape(heading), _styles["Heading2"])]
    flow.append(Paragraph(f"{activity.events} exported event(s). Who did what, from the events:", _small))
    flow += _activity(activity)
    flow += _promotion_flow(promotions)
    if not activity.adapter:
        return flow
    namespace, _, name = activity.adapter.partition("/")
    adapter = Adapter.objects.filter(namespace=namespace, name=name).first()
    if adapter is None:
        flow.append(Paragraph("The registry holds no adapter of this name (e.g. only refused uploads).", _small))
        return flow
    flow.append(Paragraph("As the registry holds it at the time of the export:", _small))
    for title, part in (
        ("Versions", _versions),
        ("Checks", _checks),
        ("Evaluations", _evaluations),
        ("Signatures", _signatures),
    ):
        flow += [Paragraph(title, _styles["Heading4"]), *part(adapter)]
    return flow


def summary_pdf(*, title_lines: list[str], activities: list[Activity], promotions: dict | None = None) -> bytes:
    """The PDF: a title page with what was exported, then a section per adapter (`promotions`: adapter ->
    Promotions, folded by add_promotions)."""
    buffer = io.BytesIO()
    # invariant: no creation date or random document id, so the same export gives the same bytes.
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        invariant=1,
        title="Audit export summary",
        author="Adapter Registry",
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
    )
    flow = [Paragraph("Audit export summary", _styles["Title"])]
    flow += [Paragraph(escape(line), _styles["BodyText"]) for line in title_lines]
    if not activities:
        flow.append(Paragraph("No events were exported.", _styles["BodyText"]))
    if len(activities) > MAX_ADAPTERS:
        flow.append(
            Paragraph(f"The first {MAX_ADAPTERS} of {len(activities)} adapters are shown.", _styles["BodyText"])
        )
    for activity in activities[:MAX_ADAPTERS]:
        flow += [PageBreak(), *_adapter_section(activity, (promotions or {}).get(activity.adapter))]
    document.build(flow)
    return buffer.getvalue()
