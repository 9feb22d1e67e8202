"""Server-rendered pages. A page and its htmx fragment share one URL and one view:
the fragment (a partialdef in the page template) is sent only to plain htmx requests."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from registry import selectors
from registry.api.tokens import login_locked_out_response
from registry.errors import RegistryError
from registry.models import AdapterVersion, BaseModel, BaseModelVersion, Job, Status
from registry.roles import can_push, is_admin
from registry.services.jobs import job_cancel, job_redispatch
from ui.lineage import lineage_svg

PAGE_SIZE = 25


def _wants_fragment(request) -> bool:
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


def _render(request, template: str, context: dict, fragment: str):
    name = f"{template}#{fragment}" if _wants_fragment(request) else template
    return render(request, name, context)


def _without_page(query) -> str:
    query = query.copy()
    query.pop("page", None)
    return query.urlencode()


def _page_of(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


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
        adapter_count=Count("versions__adapter_versions", distinct=True),
    ).order_by("namespace", "name")


@require_GET
@login_required
def base_list(request):
    queryset = _base_models_with_latest()
    search = request.GET.get("q", "").strip()
    architecture = request.GET.get("architecture", "").strip()
    if search:
        queryset = queryset.filter(name__icontains=search) | queryset.filter(namespace__icontains=search)
    if architecture:
        queryset = queryset.filter(versions__architecture=architecture).distinct()
    architectures = (
        BaseModelVersion.objects.exclude(architecture="")
        .values_list("architecture", flat=True)
        .distinct()
        .order_by("architecture")
    )
    context = {
        "page": _page_of(request, queryset),
        "q": search,
        "architecture": architecture,
        "architectures": architectures,
        "query_string": _without_page(request.GET),
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
    context = {
        "version": version,
        "files": list(version.files.select_related("blob")),
        "adapters": selectors.adapter_version_list(base=version).order_by(
            "adapter__namespace", "adapter__name", "number"
        ),
        "history": version.base_model.versions.order_by("-number"),
        "config_items": _config_summary(version.config),
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


@require_GET
@login_required
def adapter_list(request):
    filters = _adapter_filters(request)
    context = {
        "page": _page_of(request, _filtered_adapters(filters)),
        "filters": filters,
        "statuses": Status.values,
        "base_choices": selectors.base_version_queryset().order_by(
            "base_model__namespace", "base_model__name", "-number"
        ),
        "namespaces": AdapterVersion.objects.values_list("adapter__namespace", flat=True)
        .distinct()
        .order_by("adapter__namespace"),
        "peft_types": AdapterVersion.objects.values_list("peft_type", flat=True).distinct().order_by("peft_type"),
        "ranks": AdapterVersion.objects.exclude(r=None).values_list("r", flat=True).distinct().order_by("r"),
        "pushers": AdapterVersion.objects.exclude(created_by=None)
        .values_list("created_by__username", flat=True)
        .distinct()
        .order_by("created_by__username"),
        "query_string": _without_page(request.GET),
    }
    return _render(request, "ui/adapter_list.html", context, "results")


NON_METRIC_KEYS = {"examples", "examples_per_second", "tokens"}


def _evaluation_rows(job) -> list[dict]:
    """One row per metric: adapter, base and reference values with the adapter's deltas."""
    metrics = job.result.get("metrics", {})
    adapter, base, reference = metrics.get("adapter", {}), metrics.get("base", {}), metrics.get("reference") or {}
    rows = []
    for key, value in adapter.items():
        if key in NON_METRIC_KEYS:
            continue
        rows.append(
            {
                "metric": key,
                "adapter": value,
                "base": base.get(key),
                "delta_base": round(value - base[key], 6) if key in base else None,
                "reference": reference.get(key),
                "delta_reference": round(value - reference[key], 6) if key in reference else None,
            }
        )
    return rows


def _checks_context(version) -> dict:
    jobs = list(selectors.jobs_of(version))
    evaluations = [
        {"job": job, "rows": _evaluation_rows(job) if job.state == Job.State.SUCCEEDED else []}
        for job in jobs
        if job.kind == Job.Kind.EVALUATION
    ]
    pending = any(job.state in (Job.State.QUEUED, Job.State.RUNNING) for job in jobs)
    return {"checks": list(version.checks.all()), "jobs": jobs, "evaluations": evaluations, "pending": pending}


@require_GET
@login_required
def adapter_detail(request, namespace: str, name: str, number: int):
    version = _version_or_404(selectors.adapter_version_get, namespace, name, number)
    checks = _checks_context(version)
    if _wants_fragment(request):
        # Live progress: polled while jobs run; 286 tells htmx to stop once none is pending.
        response = render(request, "ui/adapter_detail.html#checks", {"version": version, **checks})
        if not checks["pending"]:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    lineage = selectors.adapter_version_lineage(version)
    context = {
        "version": version,
        "files": list(version.files.select_related("blob")),
        "history": version.adapter.versions.select_related("base_version__base_model").order_by("-number"),
        "children": version.children.select_related("adapter").order_by("created_at"),
        "lineage_svg": lineage_svg(lineage, current_id=version.id),
        **checks,
    }
    return render(request, "ui/adapter_detail.html", context)


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


JOBS_SHOWN = 100


@require_GET
@login_required
def worker_list(request):
    waiting = list(selectors.jobs_waiting()[: JOBS_SHOWN + 1])
    context = {
        "workers": selectors.worker_list(),
        "queued": Job.objects.filter(state=Job.State.QUEUED).count(),
        "jobs": waiting[:JOBS_SHOWN],
        "more_jobs": len(waiting) > JOBS_SHOWN,
        "can_operate": is_admin(request.user),
    }
    return _render(request, "ui/workers.html", context, "table")


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
    if job_redispatch(job=job):
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


@require_GET
@login_required
def placeholder(request, section: str):
    return render(request, "ui/placeholder.html", {"section": section})


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
