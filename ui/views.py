"""Server-rendered pages. A page and its htmx fragment share one URL and one view:
the fragment (a partialdef in the page template) is sent only to plain htmx requests."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Subquery
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from registry import keyset, selectors
from registry.api.tokens import login_locked_out_response
from registry.errors import RegistryError
from registry.metrics_display import metric_rows, run_facts, significant
from registry.models import AdapterVersion, BaseModel, BaseModelVersion, Job, Status
from registry.namespaces import adapter_version_distinct, namespace_suggestions
from registry.refs import parse_ref
from registry.residency.snapshot import ResidentSnapshot
from registry.roles import can_push, is_admin
from registry.services.checks import adapter_version_evaluate
from registry.services.jobs import job_cancel, job_dispatch
from registry.services.signatures import signing_policy_set, version_verify
from registry.services.suites import REQUIRED_HEAD, evaluation_suite_get, version_head
from ui.audit import history_context
from ui.lineage import lineage_svg
from ui.paging import CappedCount, UIPage, capped_count, keyset_page
from ui.promotions import version_aliases_context
from ui.signing import (
    NAMESPACE_PATTERN,
    namespaces_requiring_signatures,
    policy_context,
    policy_document_from_text,
    signing_context,
)
from ui.templatetags.recency import ago


def _wants_fragment(request) -> bool:
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


def _render(request, template: str, context: dict, fragment: str):
    name = f"{template}#{fragment}" if _wants_fragment(request) else template
    return render(request, name, context)


@require_GET
@login_required
def home(request):
    return redirect("ui:adapter-list")


# --- Base models --------------------------------------------------------------------


def _base_models_with_latest():
    latest = BaseModelVersion.objects.filter(base_model=OuterRef("pk")).order_by("-number")
    return BaseModel.objects.annotate(
        latest_number=Subquery(latest.values("number")[:1]),
        latest_architecture=Subquery(latest.values("architecture")[:1]),
        latest_parameters=Subquery(latest.values("parameter_count")[:1]),
    )


def _attach_adapter_counts(bases) -> None:
    """How many adapter versions are built on each base (any of its versions): the database keeps
    these counters (selectors.base_adapter_counts), so nothing is counted per read."""
    versions = list(BaseModelVersion.objects.filter(base_model__in=bases).values_list("id", "base_model_id"))
    counts = selectors.base_adapter_counts([version_id for version_id, _ in versions])
    totals: dict = {}
    for version_id, base_id in versions:
        totals[base_id] = totals.get(base_id, 0) + counts[version_id]
    for base in bases:
        base.adapter_count = f"{totals.get(base.id, 0):,}"


@require_GET
@login_required
def base_list(request):
    queryset = _base_models_with_latest()
    search = request.GET.get("q", "").strip()
    architecture = request.GET.get("architecture", "").strip()
    if search:
        queryset = queryset.filter(name__icontains=search) | queryset.filter(namespace__icontains=search)
    if architecture:
        of_architecture = BaseModelVersion.objects.filter(base_model=OuterRef("pk"), architecture=architecture)
        queryset = queryset.filter(Exists(of_architecture))
    page = keyset_page(request, queryset)
    _attach_adapter_counts(page.rows)
    context = {
        "page": page,
        "q": search,
        "architecture": architecture,
        # Base versions are few next to adapters (one per model release), so DISTINCT here is cheap.
        "architectures": BaseModelVersion.objects.exclude(architecture="")
        .values_list("architecture", flat=True)
        .distinct()
        .order_by("architecture"),
    }
    return _render(request, "ui/base_list.html", context, "results")


def _version_or_404(resolve, namespace: str, name: str, number: int):
    try:
        return resolve(f"{namespace}/{name}:v{number}")
    except RegistryError:
        raise Http404(f"{namespace}/{name}:v{number} does not exist") from None


@require_GET
@login_required
def base_detail(request, namespace: str, name: str, number: int):
    version = _version_or_404(selectors.base_version_get, namespace, name, number)
    built_on = (
        selectors.adapter_version_list(base=version)
        .defer(*LIST_DEFERRED)
        .annotate(signed=selectors.signed_by_someone())
    )
    adapters = keyset_page(request, built_on, count=False)
    adapters.count = f"{selectors.base_adapter_count(version.id):,}"  # kept by the database, not counted
    context = {
        "version": version,
        "adapters": adapters,
        "signing_required": namespaces_requiring_signatures(adapter.adapter.namespace for adapter in adapters),
    }
    if _wants_fragment(request):  # Newer / Older in place
        return render(request, "ui/base_detail.html#adapters", context)
    context |= {
        "files": list(version.files.select_related("blob")),
        "history": version.base_model.versions.order_by("-number"),
        "config_items": _config_summary(version.config),
        **history_context(version),
    }
    return render(request, "ui/base_detail.html", context)


def _config_summary(config: dict) -> list[tuple[str, object]]:
    keys = (
        "model_type",
        "architectures",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
        "torch_dtype",
        "dtype",
    )
    return [(key, config[key]) for key in keys if key in config]


# --- Adapters --------------------------------------------------------------------------


def _adapter_filters(request) -> dict:
    get = request.GET
    keys = ("q", "base", "status", "namespace", "peft_type", "r", "created_by")
    return {key: get.get(key, "").strip() for key in keys}


def _filtered_adapters(filters: dict):
    base = None
    if filters["base"]:
        try:
            base = selectors.base_version_get(filters["base"])
        except RegistryError:
            return AdapterVersion.objects.none()
    rank = int(filters["r"]) if filters["r"].isdigit() else None
    return selectors.adapter_version_list(
        namespace=filters["namespace"],
        base=base,
        status=filters["status"] if filters["status"] in Status.values else "",
        peft_type=filters["peft_type"],
        r=rank,
        search=filters["q"],
        created_by=filters["created_by"],
    )


# What a list row never shows: JSON documents (the base's tensor index alone is a few hundred
# entries per row at 7B parameters) that would be read and parsed once per row of every page.
LIST_DEFERRED = (
    "config",
    "card",
    "resolved_patterns",
    "training_params",
    "base_version__config",
    "base_version__card",
    "base_version__tensor_index",
)


def _filter_choices() -> dict:
    """The drop-downs' values, each a skip scan of its keyset index (registry/namespaces.py), never a
    DISTINCT over every version; namespaces are a type-ahead (namespace_suggestions) instead."""
    pusher_ids = adapter_version_distinct("created_by_id")
    return {
        "statuses": Status.values,
        "base_choices": selectors.base_version_queryset().order_by(
            "base_model__namespace", "base_model__name", "-number"
        ),
        "peft_types": adapter_version_distinct("peft_type"),
        "ranks": adapter_version_distinct("r"),
        "pushers": get_user_model()
        .objects.filter(id__in=pusher_ids)
        .order_by("username")
        .values_list("username", flat=True),
    }


@require_GET
@login_required
def adapter_list(request):
    filters = _adapter_filters(request)
    listed = _filtered_adapters(filters)
    shown = listed.defer(*LIST_DEFERRED).annotate(signed=selectors.signed_by_someone())
    page = keyset_page(request, shown, count=False)
    # Counted only when an index range serves the filters. A common search finds its matches by
    # walking the list, so counting 1,001 of them would cost forty pages' walk on every keystroke.
    page.count = capped_count(listed) if not filters["q"] else None
    context = {
        "page": page,
        "signing_required": namespaces_requiring_signatures(version.adapter.namespace for version in page),
        "filters": filters,
    }
    if not _wants_fragment(request):  # the live search swaps the results only: no drop-downs to fill
        context |= _filter_choices()
    return _render(request, "ui/adapter_list.html", context, "results")


@require_GET
@login_required
def namespace_suggestions_fragment(request):
    """The namespace type-ahead of the adapter list: links to the list filtered by each namespace that
    starts with what was typed, the other filters kept (GET /api/v1/namespaces answers the same)."""
    prefix = request.GET.get("namespace", "").strip()
    # The form's other filters, the empty ones and the page's cursor left out: the link opens page one.
    query = QueryDict(mutable=True)
    for key, value in request.GET.items():
        if value.strip() and key not in ("cursor", "namespace"):
            query[key] = value
    suggestions = []
    for namespace in namespace_suggestions(prefix):
        query["namespace"] = namespace
        suggestions.append({"namespace": namespace, "query": query.urlencode()})
    return render(request, "ui/adapter_list.html#namespace_suggestions", {"suggestions": suggestions, "prefix": prefix})


def _reference_of(result: dict) -> dict | None:
    """Which version the evaluation compared with and why (a bare ref in results recorded before the reason)."""
    reference = result.get("reference")
    if isinstance(reference, str):
        return {"ref": reference, "reason": "", "compared": True}
    return reference


def _evaluation(job) -> dict:
    result = (job.result or {}) if job.state == Job.State.SUCCEEDED else {}
    metrics = result.get("metrics", {})
    return {
        "job": job,
        "rows": metric_rows(metrics),
        "facts": run_facts(metrics),
        "reference": _reference_of(result),
        "notes": result.get("notes", []),
    }


def _readable_details(details: dict) -> list[tuple[str, list[str]]]:
    """Check details as labelled values a person reads: lists item by item, numbers to 4 digits."""
    items = []
    for key, value in (details or {}).items():
        values = value if isinstance(value, list) else [value]
        shown = [significant(v) if isinstance(v, float) or v is None else str(v) for v in values]
        items.append((key.replace("_", " ").capitalize(), shown or ["—"]))
    return items


def _checks_context(version) -> dict:
    # Not selectors.jobs_of: the section never shows a job's version (it is this page's), so its
    # full row and name are not joined in.
    jobs = list(Job.objects.filter(adapter_version=version).select_related("suite").order_by("created_at"))
    evaluations = [_evaluation(job) for job in jobs if job.kind == Job.Kind.EVALUATION]
    pending = any(job.state in (Job.State.QUEUED, Job.State.RUNNING) for job in jobs)
    checks = [(check, _readable_details(check.details)) for check in version.checks.all()]
    return {"checks": checks, "jobs": jobs, "evaluations": evaluations, "pending": pending}


# The versions table of an adapter page: its newest versions and those next to the one shown, not
# all of them (a name retrained nightly has thousands); any other is one number away in the URL.
HISTORY_NEWEST = 20
HISTORY_AROUND = 5


HISTORY_COLUMNS = (
    "id",
    "adapter",  # the related manager sets each row's adapter from it
    "number",
    "status",
    "created_at",
    "base_version__number",
    "base_version__base_model__namespace",
    "base_version__base_model__name",
)


def _version_history(version) -> tuple[list, int]:
    """The versions the table lists, newest first, and how many the name has (numbers run 1..N)."""
    # Only the columns a row shows: building the SQL for full rows of three tables (and reading the
    # bases' tensor index JSON) cost more than running it.
    versions = (
        version.adapter.versions.select_related("base_version__base_model")
        .only(*HISTORY_COLUMNS)
        .annotate(signed=selectors.signed_by_someone())
        .order_by("-number")
    )
    newest = list(versions[:HISTORY_NEWEST])
    around = versions.filter(number__range=(version.number - HISTORY_AROUND, version.number + HISTORY_AROUND))
    listed = {row.id: row for row in newest}
    if version.number < newest[-1].number:  # the one shown is older than the newest few
        listed |= {row.id: row for row in around}
    return sorted(listed.values(), key=lambda row: -row.number), newest[0].number


def _lineage_context(version) -> dict:
    return {"lineage_svg": lineage_svg(selectors.adapter_version_lineage(version), current_id=version.id)}


def _version_context(version, *, lineage: bool) -> dict:
    """What the status badge, lineage and versions table show; sent again when checks finish.
    Without `lineage` the page leaves the graph for htmx to fetch (?panel=lineage)."""
    history, history_total = _version_history(version)
    return {
        "version": version,
        "history": history,
        "history_total": history_total,
        **(_lineage_context(version) if lineage else {}),
        **signing_context(version),
        **history_context(version),  # its audit events: the polled checks bring new ones along
    }


def _suite_choices(request, version) -> list:
    """Suites an engineer may run on this version (those its base can run), for the picker."""
    if not can_push(request.user, version.adapter.namespace):
        return []
    head = version_head(version)
    runnable = [task for task, needed in REQUIRED_HEAD.items() if needed == head]
    return list(selectors.suite_list().filter(task_type__in=runnable))


VERSION_PANELS = ("lineage",)


@require_GET
@login_required
def adapter_detail(request, namespace: str, name: str, number: int):
    """The version page. Its lineage graph, far below the fold, is a lazy panel: htmx fetches it
    from ?panel=lineage once the page is shown (its five queries were a third of a page whose
    version has 10,000 children); without JavaScript that link renders the page with it."""
    version = _version_or_404(selectors.adapter_version_get, namespace, name, number)
    panel = request.GET.get("panel", "")
    if panel and panel not in VERSION_PANELS:
        raise Http404(f"no panel {panel[:40]!r}: the version page has {', '.join(VERSION_PANELS)}")
    if panel and _wants_fragment(request):
        return render(request, f"ui/adapter_detail.html#{panel}", {"version": version, **_lineage_context(version)})
    checks = _checks_context(version)
    if _wants_fragment(request):
        # Live progress: polled while jobs run; 286 tells htmx to stop once none is pending.
        # The badge, lineage and versions table come along out of band, so they change with it.
        context = {**_version_context(version, lineage=True), **checks, "oob": True}
        response = render(request, "ui/adapter_detail.html#checks", context)
        if not checks["pending"]:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    context = {
        **_version_context(version, lineage=panel == "lineage"),
        "files": list(version.files.select_related("blob")),
        **_children_context(request, version),
        "suites": _suite_choices(request, version),
        **checks,
        **version_aliases_context(version, request.user),  # the Aliases panel and the Promote form
    }
    return render(request, "ui/adapter_detail.html", context)


CHILDREN_PAGE = selectors.LINEAGE_CHILDREN_SHOWN
OLDEST_FIRST = keyset.Ordering.parse(("created_at", "id"))


def _children_page(request, version) -> UIPage:
    """CHILDREN_PAGE children of `version` from the request's cursor on, oldest first: one range scan
    of the (parent, created_at, id) index; the next link carries the filters."""
    children = (
        AdapterVersion.objects.select_related("adapter")
        .only("id", "number", "created_at", "adapter__namespace", "adapter__name")  # what a link shows
        .filter(parent=version)
    )
    return keyset_page(request, children, size=CHILDREN_PAGE, count=False, ordering=OLDEST_FIRST)


def _children_context(request, version) -> dict:
    """A page of a version's children, oldest first (the lineage graph's order), with how many are
    left: 10,000 children cost one page and a count that stops at LINEAGE_COUNT_CAP."""
    children = AdapterVersion.objects.filter(parent=version)
    page = _children_page(request, version)
    earlier = request.GET.get("shown", "")
    shown = (int(earlier) if earlier.isdigit() else 0) + len(page.rows)
    total = capped_count(children, cap=selectors.LINEAGE_COUNT_CAP)
    more_url = None
    if page.next_query is not None:
        query = QueryDict(page.next_query, mutable=True)
        query["shown"] = str(shown)
        more_url = f"{reverse('ui:adapter-children', args=[*_name_of(version), version.number])}?{query.urlencode()}"
    return {
        "children": page,
        "children_total": total,
        "children_remaining": CappedCount(max(total.value - shown, 0), total.more),
        "children_more_url": more_url,
    }


def _name_of(version) -> tuple[str, str]:
    return version.adapter.namespace, version.adapter.name


@require_GET
@login_required
def adapter_children(request, namespace: str, name: str, number: int):
    """The children the lineage graph collapses: htmx appends the next page in place ("+9,980 more");
    without JavaScript the link opens the same page of them on its own."""
    version = _version_or_404(selectors.adapter_version_get, namespace, name, number)
    context = {"version": version, **_children_context(request, version)}
    return _render(request, "ui/adapter_children.html", context, "children_page")


@require_POST
@login_required
def adapter_evaluate_action(request, namespace: str, name: str, number: int):
    """The version page's suite picker: the same service as POST /api/v1/adapters/<ref>/evaluations."""
    version = _version_or_404(selectors.adapter_version_get, namespace, name, number)
    if not can_push(request.user, version.adapter.namespace):
        raise PermissionDenied(f"starting an evaluation needs the engineer or admin role in {namespace}")
    try:
        suite = evaluation_suite_get(request.POST.get("suite", ""))
        adapter_version_evaluate(version=version, suite=suite)
    except RegistryError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(request, f"Evaluation on {suite.ref} queued; results appear below.")
    return redirect("ui:adapter-detail", namespace, name, number)


def _verification_summary(outcome) -> str:
    if outcome.code:
        return f"Verification failed: {outcome.code}: {outcome.reason}"
    if not outcome.verifications:
        return f"Nothing to verify: no signature, and policy v{outcome.policy_version} does not require one."
    return f"Verified: every signature holds against policy v{outcome.policy_version} and the stored files."


@require_POST
@login_required
def adapter_verify_action(request, namespace: str, name: str, number: int):
    """The Verify now button: the same service as POST /api/v1/adapters/<ref>/verify (blobs re-hashed, today's policy).

    htmx swaps the signature panel with the outcome in it; without JavaScript the page reloads with a message.
    """
    version = _version_or_404(selectors.adapter_version_get, namespace, name, number)
    outcome = version_verify(version, user=request.user)
    if _wants_fragment(request):
        context = {"version": version, **signing_context(version), "outcome": outcome}
        return render(request, "ui/adapter_detail.html#signatures", context)
    if outcome.code:
        messages.error(request, _verification_summary(outcome))
    else:
        messages.success(request, _verification_summary(outcome))
    return redirect("ui:adapter-detail", namespace, name, number)


@require_http_methods(["GET", "POST"])
@login_required
def signing_policy(request, namespace: str):
    """A namespace's signing policy and its history; admins save a new version (never an edit in place)."""
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise Http404("not a namespace")
    context = {**policy_context(namespace), "can_edit": is_admin(request.user, namespace)}
    if request.method == "GET":
        return render(request, "ui/signing_policy.html", context)
    if not context["can_edit"]:
        raise PermissionDenied(f"changing a signing policy needs the admin role, globally or in {namespace}")
    text, reason = request.POST.get("document", ""), request.POST.get("reason", "")
    try:
        document = policy_document_from_text(text)
        saved = signing_policy_set(namespace=namespace, document=document, user=request.user, reason=reason)
    except RegistryError as error:
        # Shown beside the form, the admin's text kept as typed so one typo costs nothing.
        context.update(error=error, document_text=text, reason=reason)
        return render(request, "ui/signing_policy.html", context, status=422)
    messages.success(request, f"Saved policy v{saved.version} of {namespace}.")
    return redirect("ui:signing-policy", namespace)


@login_required
def adapter_upload(request):
    """The form posts to the REST API from the browser (session auth), showing progress."""
    if not can_push(request.user):
        raise PermissionDenied("uploading needs the engineer or admin role")
    bases = (
        selectors.base_version_queryset()
        .filter(status=Status.READY)
        .order_by("base_model__namespace", "base_model__name", "-number")
    )
    return render(request, "ui/adapter_upload.html", {"bases": bases, "initial_base": request.GET.get("base", "")})


JOBS_SHOWN = 50


@require_GET
@login_required
def worker_list(request):
    """Workers and the jobs waiting for them, oldest first a page at a time: 10,000 queued jobs cost
    one page of 50 and a count that stops at COUNT_CAP, never a read of them all."""
    queued = Job.objects.filter(state=Job.State.QUEUED)
    workers = list(selectors.worker_list())
    for worker in workers:
        worker.snapshot = worker.resident_snapshot
        worker.resident_adapters = _resident_adapters(worker.snapshot)
    # Running jobs are at most one per worker; the queued ones page on the (state, created_at, id)
    # index (state IN (queued, running) would walk the whole job table in created_at order).
    running = list(selectors.job_rows().filter(state=Job.State.RUNNING).order_by("created_at", "id"))
    jobs = keyset_page(
        request,
        selectors.job_rows().filter(state=Job.State.QUEUED),
        size=JOBS_SHOWN,
        count=False,
        ordering=OLDEST_FIRST,
    )
    context = {
        "workers": workers,
        "now": timezone.now(),
        "queued": capped_count(queued),
        "jobs": jobs,  # the pager's links
        "job_rows": _job_table_rows([*running, *jobs]),
        "can_operate": is_admin(request.user),
    }
    return _render(request, "ui/workers.html", context, "table")


# The jobs table's links are reversed once a page, with stand-ins that the URL patterns accept, and
# made into format strings; each row fills in its own values: three reverse() calls, an {% include %}
# and two filters per row were most of the page's time with 50 rows. Ids are UUIDs and namespaces
# and names are refs.SEGMENT ([A-Za-z0-9._-]), so the values need no quoting that reverse() would do.
_SOME_JOB = "00000000-0000-0000-0000-000000000000"
_SOME_VERSION = ("namespace-slot", "name-slot", 999999999)


def _link_templates() -> dict[str, str]:
    detail = reverse("ui:adapter-detail", args=_SOME_VERSION)
    for stand_in, field in zip(_SOME_VERSION, ("{namespace}", "{name}", "{number}"), strict=True):
        detail = detail.replace(str(stand_in), field, 1)
    return {
        "redispatch": reverse("ui:job-redispatch", args=[_SOME_JOB]).replace(_SOME_JOB, "{id}", 1),
        "cancel": reverse("ui:job-cancel", args=[_SOME_JOB]).replace(_SOME_JOB, "{id}", 1),
        "detail": detail,
    }


def _job_table_rows(jobs: list[Job]) -> list[dict]:
    """What a row of the jobs table shows, links and ages made here rather than in the template."""
    links = _link_templates()
    rows = []
    for job in jobs:
        version, job_id = job.adapter_version, str(job.id)
        adapter = version.adapter
        rows.append(
            {
                "id": job_id,
                "kind": job.kind,
                "suite": job.suite.ref if job.suite_id else "",
                "adapter_ref": version.ref,
                "adapter_url": links["detail"].format(
                    namespace=adapter.namespace, name=adapter.name, number=version.number
                ),
                "state": job.state,
                "ran_on": job.ran_on,
                "age": ago(job.created_at),
                "queue": job.queue,
                "attempts": job.attempts,
                "dispatch_attempts": job.dispatch_attempts,
                "last_sent": ago(job.dispatched_at) if job.dispatched_at else "",
                "redispatch_url": links["redispatch"].format(id=job_id) if job.state == Job.State.QUEUED else "",
                "cancel_url": links["cancel"].format(id=job_id),
            }
        )
    return rows


def _resident_adapters(snapshot: ResidentSnapshot) -> list[dict]:
    """The worker's attached adapters (its heartbeat's snapshot) with a page link and the base each sits on."""
    adapters = []
    for adapter in snapshot.adapters:
        base = snapshot.base(adapter.base)
        try:
            ref = parse_ref(adapter.ref)
            url = reverse("ui:adapter-detail", args=[ref.namespace, ref.name, ref.number]) if ref.number else None
        except RegistryError:  # a snapshot from an older worker: show the text, without a link
            url = None
        adapters.append(
            {
                "ref": adapter.ref,
                "url": url,
                "slot": adapter.slot,
                "base": base.ref,
                "head": base.head.replace("_", " "),
            }
        )
    return adapters


def _job_for_admin(request, job_id) -> Job:
    if not is_admin(request.user):
        raise PermissionDenied("re-dispatching and cancelling jobs needs the admin role")
    try:
        return selectors.job_get(job_id)
    except RegistryError:
        raise Http404("no such job") from None


@require_POST
@login_required
def job_redispatch_action(request, job_id):
    job = _job_for_admin(request, job_id)
    if job_dispatch(job.id):
        messages.success(request, f"Job {job.id} was sent to its queue again.")
    else:
        messages.error(request, f"Job {job.id} is {job.state} or the broker did not answer; nothing was sent.")
    return redirect("ui:workers")


@require_POST
@login_required
def job_cancel_action(request, job_id):
    job = _job_for_admin(request, job_id)
    if job_cancel(job=job, reason=f"cancelled by {request.user.username} from the Workers page"):
        messages.success(request, f"Job {job.id} was cancelled.")
    else:
        messages.error(request, f"Job {job.id} is already {job.state}.")
    return redirect("ui:workers")


# --- Login throttling ---------------------------------------------------------------


def login_locked_out(request, original_response, credentials):
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE) for every login: 429 with Retry-After.

    A failure during the lockout starts the cool-off again, so the whole cool-off is the wait.
    """
    retry_after = settings.LOGIN_COOL_OFF_SECONDS
    if request.path.startswith("/api/"):
        return login_locked_out_response(retry_after)
    context = {"minutes": max(1, round(retry_after / 60)), "failure_limit": settings.AXES_FAILURE_LIMIT}
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


# --- A version's files ---------------------------------------------------------------

# Config files are shown whole or not at all: past this size the page says to download them.
FILE_VIEW_MAX_BYTES = 256 * 1024


@require_GET
@login_required
def version_file(request, kind: str, namespace: str, name: str, number: int, path: str):
    """A config file of a version, pretty-printed JSON (escaped by the template), with its download link."""
    from ui.templatetags.version_files import file_download_url, is_viewable

    resolve = selectors.base_version_get if kind == "base" else selectors.adapter_version_get
    version = _version_or_404(resolve, namespace, name, number)
    file = selectors.version_file(version, path)
    if file is None or not is_viewable(path):
        raise Http404(f"{version.ref} has no viewable file {path!r}")
    too_large = file.size > FILE_VIEW_MAX_BYTES
    content = "" if too_large else _pretty_json(_blob_text(file.sha256))
    detail = "ui:base-detail" if kind == "base" else "ui:adapter-detail"
    context = {
        "version": version,
        "file": file,
        "path": path,
        "content": content,
        "too_large": too_large,
        "max_bytes": FILE_VIEW_MAX_BYTES,
        "download_url": file_download_url(version, file),
        "version_url": reverse(detail, args=[namespace, name, number]),
    }
    return render(request, "ui/file_view.html", context)


def _blob_text(sha256: str) -> str:
    from registry.storage import get_blob_store

    with get_blob_store().open(sha256) as handle:
        return handle.read(FILE_VIEW_MAX_BYTES + 1).decode("utf-8", errors="replace")


def _pretty_json(text: str) -> str:
    import json

    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text  # shown as stored (escaped), rather than hidden
