"""POST /api/v1/audit/exports, GET /api/v1/audit/exports/<id>[/download]: audit exports for auditors and admins."""

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api.schema import ErrorSerializer, error_responses
from registry.audit.api import AuditEventFilterSerializer, IsAuditorOrAdmin
from registry.audit.export import audit_export_open, audit_export_request, audit_export_start
from registry.errors import Conflict, NotFound, RegistryError
from registry.models import AuditExport


class AuditExportRequestSerializer(AuditEventFilterSerializer):
    """The export's filters: the events list's, in a JSON body. None: every event."""

    paginated = False

    def is_valid(self, *, raise_exception=False):
        if not isinstance(self.initial_data, dict):
            raise ValidationError({"non_field_errors": ["the body must be a JSON object of filters"]})
        return super().is_valid(raise_exception=raise_exception)


class AuditExportSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(help_text="0.0 to 1.0")
    requested_by = serializers.CharField(source="requested_by_name")
    filters = serializers.DictField(help_text="the filters, times in RFC 3339")
    download_url = serializers.SerializerMethodField(help_text="the ZIP, once `state` is done")

    class Meta:
        model = AuditExport
        fields = [
            "id",
            "state",
            "progress",
            "filters",
            "up_to_seq",
            "first_seq",
            "last_seq",
            "events_total",
            "events_done",
            "events_exported",
            "events_omitted",
            "size",
            "sha256",
            "error",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]
        extra_kwargs = {
            "events_total": {"help_text": "events in the range, exported or omitted"},
            "events_done": {
                "help_text": "progress in events: the JSON lines and then the CSV rows, each counting half"
            },
            "up_to_seq": {"help_text": "the last event recorded before the request; the export covers no later one"},
        }

    def get_download_url(self, export: AuditExport) -> str | None:
        if export.state != AuditExport.State.DONE:
            return None
        return reverse("api-audit-export-download", kwargs={"export_id": export.id})


def _export_get(export_id) -> AuditExport:
    export = AuditExport.objects.filter(pk=export_id).first()
    if export is None:
        raise NotFound("audit_export_not_found", f"no audit export has id {export_id}")
    return export


class AuditExportCreateView(APIView):
    """Request an export of the audit chain (auditor and admin roles); itself an `audit.export` event."""

    permission_classes = [IsAuditorOrAdmin]

    @extend_schema(
        request=AuditExportRequestSerializer,
        responses={202: AuditExportSerializer, **error_responses(503)},
        description=(
            "Exports the events the filters select, up to the last one recorded before this request, as a "
            "signed ZIP that verifies offline (`python -m registry.audit.verify`). Answers 202 with the "
            "export: small ones are already `done`, larger ones are built by a worker; poll "
            "GET /api/v1/audit/exports/{id} until `state` is `done` (then `download_url`) or `failed`."
        ),
    )
    def post(self, request):
        form = AuditExportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        export = audit_export_request(
            user=request.user, filters=form.validated_data, registry_url=request.build_absolute_uri("/").rstrip("/")
        )
        export = audit_export_start(export)
        location = reverse("api-audit-export", kwargs={"export_id": export.id})
        return Response(
            AuditExportSerializer(export).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location}
        )


class AuditExportDetailView(APIView):
    """An export's state and progress, and where to download it once done (auditor and admin roles)."""

    permission_classes = [IsAuditorOrAdmin]

    @extend_schema(responses=AuditExportSerializer)
    def get(self, request, export_id):
        return Response(AuditExportSerializer(_export_get(export_id)).data)


class AuditExportDownloadView(APIView):
    """The export's ZIP (auditor and admin roles)."""

    permission_classes = [IsAuditorOrAdmin]

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="the export ZIP"),
            409: OpenApiResponse(ErrorSerializer, description="export_not_ready: the export is not done (yet)"),
            410: OpenApiResponse(
                ErrorSerializer, description="export_expired: its ZIP was deleted after the retention"
            ),
        }
    )
    def get(self, request, export_id):
        export = _export_get(export_id)
        if export.state == AuditExport.State.EXPIRED:
            raise RegistryError(
                "export_expired",
                f"audit export {export.id} was deleted after AUDIT_EXPORT_RETENTION_DAYS; request a new export "
                "of the same filters (its events are unchanged)",
                status_code=410,
            )
        if export.state != AuditExport.State.DONE:
            raise Conflict("export_not_ready", f"audit export {export.id} is {export.state}, not done")
        response = FileResponse(
            audit_export_open(export),
            as_attachment=True,
            filename=f"audit-export-{export.id}.zip",
            content_type="application/zip",
        )
        response["ETag"] = f'"{export.sha256}"'
        return response
