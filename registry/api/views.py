"""REST API views: validate input, call a service or selector, serialize the result."""

from contextlib import contextmanager

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import selectors
from registry.api import serializers as s
from registry.api.pagination import VersionCursorPagination
from registry.api.permissions import CanPushOrReadOnly, IsAdminRole
from registry.api.schema import error_responses
from registry.api.tokens import token_issue
from registry.errors import Conflict, RegistryError, UploadRefused
from registry.models import AdapterVersion, Job
from registry.refs import parse_name
from registry.roles import SCOPE_PUSH, require_push
from registry.services.checks import adapter_version_evaluate
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest, upload_refusal_record
from registry.services.jobs import job_cancel, job_dispatch
from registry.services.suites import evaluation_suite_attach, evaluation_suite_get, evaluation_suite_register
from registry.uploads import StreamingMultiPartParser, incoming_files, incoming_signature, upload_scope


class TokenObtainView(APIView):
    """Exchange a username and password for an API token."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=AuthTokenSerializer,
        responses={200: {"type": "object", "properties": {"token": {"type": "string"}}}, **error_responses(429)},
    )
    def post(self, request):
        # authenticate() gets Django's own request, so django-axes counts the failure on the
        # object its middleware sees and answers 429 once the limit is reached.
        serializer = AuthTokenSerializer(data=request.data, context={"request": request._request})
        serializer.is_valid(raise_exception=True)
        token = token_issue(request._request, serializer.validated_data["user"])
        return Response({"token": token.key})


def _paginated(view: APIView, request, rows, row_data) -> Response:
    # The view's pagination_class is also what the OpenAPI schema documents as the envelope.
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response([row_data(row) for row in page])


@contextmanager
def refusal_recorded(request, kind: str):
    """A refused upload leaves an audit event (in its own transaction: the upload's is rolled back)."""
    try:
        yield
    except (RegistryError, ValidationError, ParseError) as exc:
        code = getattr(exc, "code", None) or ("validation_error" if isinstance(exc, ValidationError) else "parse_error")
        message = getattr(exc, "message", None) or str(getattr(exc, "detail", exc))
        upload_refusal_record(kind=kind, name=_submitted_name(request), code=code, message=message)
        raise


def _submitted_name(request) -> str:
    """The `name` field of the upload, when the body could be read."""
    try:
        return str(request.data.get("name", ""))
    except Exception:  # the body itself was refused: no name to tell
        return ""


def _upload_response(result, serializer_class) -> Response:
    code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return Response(s.represent(serializer_class, result.version), status=code)


class BaseVersionListView(APIView):
    permission_classes = [CanPushOrReadOnly]
    required_scope = SCOPE_PUSH  # what a scoped CI token needs to POST here
    parser_classes = [StreamingMultiPartParser]
    pagination_class = VersionCursorPagination

    @extend_schema(parameters=[s.BaseListFilterSerializer], responses=s.BaseVersionSerializer(many=True))
    def get(self, request):
        filters = s.BaseListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = selectors.base_version_list(**filters.validated_data)
        return _paginated(self, request, selectors.base_version_rows(queryset), s.base_row_data)

    @extend_schema(
        request={"multipart/form-data": s.BaseUploadSerializer},
        responses={201: s.BaseVersionDetailSerializer, 200: s.BaseVersionDetailSerializer},
    )
    def post(self, request):
        """Upload a base model version (Hugging Face layout); re-uploading the same files returns the existing version."""
        with refusal_recorded(request, "base"), upload_scope(request):
            form = s.BaseUploadSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            if incoming_signature(request) is not None:  # refused rather than silently dropped
                raise UploadRefused(
                    "signature_unsupported", "signatures are verified for adapter versions; push the base without one"
                )
            result = base_model_version_ingest(
                name=form.validated_data["name"], files=incoming_files(request), user=request.user
            )
        version = selectors.base_version_queryset().prefetch_related("files").get(pk=result.version.pk)
        version.adapter_count = selectors.base_adapter_count(version.pk)
        result.version = version
        return _upload_response(result, s.BaseVersionDetailSerializer)


class BaseVersionDetailView(APIView):
    @extend_schema(responses=s.BaseVersionDetailSerializer)
    def get(self, request, ref):
        version = selectors.base_version_get(ref)
        version.adapter_count = selectors.base_adapter_count(version.pk)  # a counter, not a scan
        return Response(s.represent(s.BaseVersionDetailSerializer, version))


class BaseVersionAdaptersView(APIView):
    """Adapter versions trained on this base version."""

    pagination_class = VersionCursorPagination

    @extend_schema(parameters=[s.BaseAdaptersFilterSerializer], responses=s.AdapterVersionSerializer(many=True))
    def get(self, request, ref):
        filters = s.BaseAdaptersFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        base = selectors.base_version_get(ref)
        rows = selectors.adapter_version_rows(selectors.adapter_version_list(base=base, **filters.validated_data))
        return _paginated(self, request, rows, s.adapter_row_data)


class AdapterVersionListView(APIView):
    permission_classes = [CanPushOrReadOnly]
    required_scope = SCOPE_PUSH
    parser_classes = [StreamingMultiPartParser]
    pagination_class = VersionCursorPagination

    @extend_schema(parameters=[s.AdapterListFilterSerializer], responses=s.AdapterVersionSerializer(many=True))
    def get(self, request):
        filters = s.AdapterListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = dict(filters.validated_data)
        base_ref = params.pop("base", "")
        base = selectors.base_version_get(base_ref) if base_ref else None
        queryset = selectors.adapter_version_list(base=base, **params)
        return _paginated(self, request, selectors.adapter_version_rows(queryset), s.adapter_row_data)

    @extend_schema(
        request={"multipart/form-data": s.AdapterUploadSerializer},
        responses={201: s.AdapterVersionDetailSerializer, 200: s.AdapterVersionDetailSerializer},
    )
    def post(self, request):
        """Upload an adapter version (PEFT layout) trained on `base`; re-uploading the same files returns the existing version."""
        with refusal_recorded(request, "adapter"), upload_scope(request):
            form = s.AdapterUploadSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            data = form.validated_data
            result = adapter_version_ingest(
                name=data["name"],
                files=incoming_files(request),
                base_ref=data["base"],
                parent_ref=data.get("parent") or None,
                provenance=data.get("provenance"),
                signature=incoming_signature(request),
                user=request.user,
            )
        if not result.created:  # a new version comes back from the push with all the response reads
            result.version = selectors.adapter_version_queryset().prefetch_related("files").get(pk=result.version.pk)
        return _upload_response(result, s.AdapterVersionDetailSerializer)


class AdapterVersionDetailView(APIView):
    @extend_schema(responses=s.AdapterVersionDetailSerializer)
    def get(self, request, ref):
        return Response(s.represent(s.AdapterVersionDetailSerializer, selectors.adapter_version_get(ref)))


def _lineage_payload(lineage: selectors.Lineage) -> dict:
    nodes = [
        {"id": b.id, "kind": "base", "ref": b.ref, "digest": b.digest, "status": b.status} for b in lineage.bases
    ] + [
        {"id": a.id, "kind": "adapter", "ref": a.ref, "digest": a.digest, "status": a.status} for a in lineage.adapters
    ]
    return s.LineageSerializer({"root": lineage.root.id, "nodes": nodes, "edges": lineage.edges}).data


def _lineage_response(lineage: selectors.Lineage) -> Response:
    response = Response(_lineage_payload(lineage))
    if lineage.truncated:  # the graph's shape is unchanged; this says some children were left out
        response["Lineage-Truncated"] = "true"
    return response


LINEAGE_LIMITS = (
    f"At most {selectors.LINEAGE_API_CHILDREN} children of each node (the oldest) and "
    f"{selectors.LINEAGE_MAX_NODES} descendants in all; when children were left out the response "
    "carries `Lineage-Truncated: true` (`bases/<ref>/adapters` pages through everything built on a base)."
)


class AdapterVersionLineageView(APIView):
    @extend_schema(
        responses=s.LineageSerializer,
        description="Ancestors (parents and base) and descendants (children, recursively) of an adapter version. "
        + LINEAGE_LIMITS,
    )
    def get(self, request, ref):
        version: AdapterVersion = selectors.adapter_version_get(ref)
        return _lineage_response(selectors.adapter_version_lineage(version, per_node=selectors.LINEAGE_API_CHILDREN))


class BaseVersionLineageView(APIView):
    @extend_schema(
        responses=s.LineageSerializer,
        description="A base version and the adapter versions built on it. " + LINEAGE_LIMITS,
    )
    def get(self, request, ref):
        version = selectors.base_version_get(ref)
        return _lineage_response(selectors.base_version_lineage(version, per_node=selectors.LINEAGE_API_CHILDREN))


# --- Worker pool, checks, evaluations --------------------------------------------------------


class WorkerListView(APIView):
    """Workers with their device, memory, resident models and current job."""

    @extend_schema(responses={200: s.WorkerSerializer(many=True), **error_responses(400)})
    def get(self, request):
        s.NoFilterSerializer(data=request.query_params).is_valid(raise_exception=True)
        return Response(s.WorkerSerializer(selectors.worker_list(), many=True).data)


class JobListView(APIView):
    """Jobs, newest first, for operators looking for stuck work."""

    pagination_class = VersionCursorPagination

    @extend_schema(parameters=[s.JobListFilterSerializer], responses=s.JobSerializer(many=True))
    def get(self, request):
        filters = s.JobListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return _paginated_serialized(self, request, selectors.job_list(**filters.validated_data), s.JobSerializer)


def _paginated_serialized(view: APIView, request, rows, serializer_class) -> Response:
    """A page of model rows through one `many=True` serializer: building a ModelSerializer per row
    cost 4 ms each, most of a 50-row page (BENCHMARKS.md, scale)."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class JobRedispatchView(APIView):
    """Send a queued job's message again now (admin)."""

    permission_classes = [IsAdminRole]

    @extend_schema(request=None, responses={200: s.JobSerializer, **error_responses(409, 503)})
    def post(self, request, job_id):
        job = selectors.job_get(job_id)
        if job.state != Job.State.QUEUED:
            raise Conflict("job_not_queued", f"job {job.id} is {job.state}; only a queued job can be re-dispatched")
        if not job_dispatch(job.id):
            raise RegistryError(
                "broker_unavailable",
                "the broker did not take the message; the dispatcher will try again",
                status_code=503,
            )
        return Response(s.JobSerializer(selectors.job_get(job_id)).data)


class JobCancelView(APIView):
    """Cancel a queued or running job (admin); a worker still running it records nothing."""

    permission_classes = [IsAdminRole]

    @extend_schema(request=s.JobCancelSerializer, responses={200: s.JobSerializer, **error_responses(409)})
    def post(self, request, job_id):
        form = s.JobCancelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job = selectors.job_get(job_id)
        if not job_cancel(job=job, reason=form.validated_data["reason"]):
            raise Conflict("job_finished", f"job {job.id} is {job.state}; only queued or running jobs can be cancelled")
        return Response(s.JobSerializer(selectors.job_get(job_id)).data)


class JobDetailView(APIView):
    @extend_schema(responses=s.JobSerializer)
    def get(self, request, job_id):
        return Response(s.JobSerializer(selectors.job_get(job_id)).data)


class AdapterChecksView(APIView):
    """Compatibility checks and every job (checks and evaluations) of an adapter version."""

    @extend_schema(responses=s.AdapterChecksSerializer)
    def get(self, request, ref):
        version = selectors.adapter_version_get(ref)
        jobs = list(selectors.jobs_of(version))
        data = {
            "ref": version.ref,
            "status": version.status,
            "status_reason": version.status_reason,
            "checks": version.checks.all(),
            "jobs": jobs,
            "pending": sum(j.state in ("queued", "running") for j in jobs),
        }
        return Response(s.AdapterChecksSerializer(data).data)


class AdapterEvaluateView(APIView):
    permission_classes = [CanPushOrReadOnly]
    required_scope = SCOPE_PUSH

    @extend_schema(request=s.EvaluateSerializer, responses={202: s.JobSerializer, **error_responses(422)})
    def post(self, request, ref):
        """Evaluate this adapter version on a suite now (compared with its base and reference)."""
        form = s.EvaluateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = selectors.adapter_version_get(ref)
        require_push(request.user, version.adapter.namespace, "requesting an evaluation")
        job = adapter_version_evaluate(version=version, suite=evaluation_suite_get(form.validated_data["suite"]))
        return Response(s.JobSerializer(selectors.job_get(job.id)).data, status=status.HTTP_202_ACCEPTED)


class SuiteListView(APIView):
    permission_classes = [CanPushOrReadOnly]
    required_scope = SCOPE_PUSH
    parser_classes = [StreamingMultiPartParser]

    pagination_class = VersionCursorPagination

    @extend_schema(parameters=[s.SuiteListFilterSerializer], responses=s.SuiteSerializer(many=True))
    def get(self, request):
        """Evaluation suites, newest first (cursor-paged, like every list that can grow)."""
        filters = s.SuiteListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = selectors.suite_list(**filters.validated_data)
        return _paginated_serialized(self, request, rows, s.SuiteSerializer)

    @extend_schema(
        request={"multipart/form-data": s.SuiteUploadSerializer},
        responses={201: s.SuiteSerializer, 200: s.SuiteSerializer},
    )
    def post(self, request):
        """Register an evaluation suite (JSON Lines); the same file again returns the existing version."""
        with upload_scope(request):
            form = s.SuiteUploadSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            files = incoming_files(request)
            if len(files) != 1:
                raise RegistryError("suite_file_required", "send exactly one JSONL file in the 'file' field")
            suite, created = evaluation_suite_register(
                name=form.validated_data["name"],
                task_type=form.validated_data["task_type"],
                file=files[0],
                user=request.user,
            )
        return Response(
            s.SuiteSerializer(suite).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class SuiteAttachView(APIView):
    permission_classes = [CanPushOrReadOnly]
    required_scope = SCOPE_PUSH

    @extend_schema(request=s.SuiteAttachSerializer, responses={200: s.SuiteSerializer, **error_responses(422)})
    def post(self, request, ref):
        """Run this suite automatically for every new version of an adapter name."""
        form = s.SuiteAttachSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        suite = evaluation_suite_get(ref)
        namespace, _ = parse_name(form.validated_data["adapter"])
        require_push(request.user, namespace, "attaching a suite")
        evaluation_suite_attach(suite=suite, adapter_name=form.validated_data["adapter"])
        return Response(s.SuiteSerializer(suite).data)
