from django.urls import path, re_path

from registry.api import access, files, namespaces, promotions, residency, residency_fleet, signatures, tokens, views
from registry.api.bulk import AdapterBulkView
from registry.audit import api as audit_api
from registry.audit import exports_api as audit_exports_api
from registry.webhooks import api as webhooks_api

# Version references contain "/" (namespace/name:v3), hence the path converter;
# the more specific routes come first so ".../lineage" is not read as part of a ref.
# Checked by the views, which answer 400 naming what is wrong.
ADAPTER_NAME = r".+?"
ALIAS = r"[^/]+"

urlpatterns = [
    path("auth/token", views.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/rotate", tokens.TokenRotateView.as_view(), name="api-token-rotate"),
    path("auth/tokens", access.ScopedTokenListView.as_view(), name="api-scoped-tokens"),
    path("auth/tokens/<int:token_id>", access.ScopedTokenDetailView.as_view(), name="api-scoped-token"),
    path("namespaces/<str:namespace>/roles", access.NamespaceRoleListView.as_view(), name="api-namespace-roles"),
    path(
        "namespaces/<str:namespace>/roles/<int:grant_id>",
        access.NamespaceRoleDetailView.as_view(),
        name="api-namespace-role",
    ),
    path("audit/events", audit_api.AuditEventListView.as_view(), name="api-audit-events"),
    path("audit/events/<int:seq>", audit_api.AuditEventDetailView.as_view(), name="api-audit-event"),
    path("audit/exports", audit_exports_api.AuditExportCreateView.as_view(), name="api-audit-exports"),
    path("audit/exports/<uuid:export_id>", audit_exports_api.AuditExportDetailView.as_view(), name="api-audit-export"),
    path(
        "audit/exports/<uuid:export_id>/download",
        audit_exports_api.AuditExportDownloadView.as_view(),
        name="api-audit-export-download",
    ),
    path("promotions", promotions.PromotionListView.as_view(), name="api-promotions"),
    path("promotions/<uuid:request_id>", promotions.PromotionDetailView.as_view(), name="api-promotion"),
    path(
        "promotions/<uuid:request_id>/approve", promotions.PromotionApproveView.as_view(), name="api-promotion-approve"
    ),
    path("promotions/<uuid:request_id>/reject", promotions.PromotionRejectView.as_view(), name="api-promotion-reject"),
    path("promotions/<uuid:request_id>/cancel", promotions.PromotionCancelView.as_view(), name="api-promotion-cancel"),
    path("inventory", promotions.InventoryView.as_view(), name="api-inventory"),
    path(
        "namespaces/<str:namespace>/promotion-policy/<str:alias>",
        promotions.PromotionPolicyView.as_view(),
        name="api-promotion-policy",
    ),
    path("adapters/bulk", AdapterBulkView.as_view(), name="api-adapter-bulk"),
    # An adapter name (namespace/name) followed by /aliases: before the catch-all adapter refs below.
    re_path(rf"^adapters/(?P<name>{ADAPTER_NAME})/aliases$", promotions.AliasListView.as_view(), name="api-aliases"),
    re_path(
        rf"^adapters/(?P<name>{ADAPTER_NAME})/aliases/(?P<alias>{ALIAS})$",
        promotions.AliasDetailView.as_view(),
        name="api-alias",
    ),
    re_path(
        rf"^adapters/(?P<name>{ADAPTER_NAME})/aliases/(?P<alias>{ALIAS})/history$",
        promotions.AliasHistoryView.as_view(),
        name="api-alias-history",
    ),
    re_path(
        rf"^adapters/(?P<name>{ADAPTER_NAME})/aliases/(?P<alias>{ALIAS})/rollback$",
        promotions.AliasRollbackView.as_view(),
        name="api-alias-rollback",
    ),
    re_path(
        rf"^adapters/(?P<name>{ADAPTER_NAME})/aliases/(?P<alias>{ALIAS})/canary$",
        promotions.AliasCanaryView.as_view(),
        name="api-alias-canary",
    ),
    path("residency/workers", residency_fleet.ServingWorkerListView.as_view(), name="api-serving-workers"),
    path("residency/workers/<str:name>", residency_fleet.ServingWorkerDetailView.as_view(), name="api-serving-worker"),
    path("residency/pins", residency_fleet.ResidencyPinListView.as_view(), name="api-residency-pins"),
    path("residency/pins/<int:pin_id>", residency_fleet.ResidencyPinDetailView.as_view(), name="api-residency-pin"),
    path("telemetry", residency_fleet.TelemetryView.as_view(), name="api-telemetry"),
    path("residency/plan", residency.ResidencyPlanView.as_view(), name="api-residency-plan"),
    path("residency/workers/<str:name>/plan", residency.WorkerPlanView.as_view(), name="api-residency-worker-plan"),
    path("residency/routes", residency.ResidencyRoutesView.as_view(), name="api-residency-routes"),
    path("residency/replan", residency.ResidencyReplanView.as_view(), name="api-residency-replan"),
    path("webhooks", webhooks_api.WebhookListView.as_view(), name="api-webhooks"),
    path("webhooks/<uuid:webhook_id>", webhooks_api.WebhookDetailView.as_view(), name="api-webhook"),
    path(
        "webhooks/<uuid:webhook_id>/deliveries",
        webhooks_api.WebhookDeliveriesView.as_view(),
        name="api-webhook-deliveries",
    ),
    path("webhooks/<uuid:webhook_id>/test", webhooks_api.WebhookTestView.as_view(), name="api-webhook-test"),
    path("bases/", views.BaseVersionListView.as_view(), name="api-base-list"),
    # A ref never contains "/files/": the lazy ref group stops at its first occurrence, so a
    # file path may itself contain "/files/".
    re_path(r"^bases/(?P<ref>.+?)/files$", files.BaseFileListView.as_view(), name="api-base-files"),
    re_path(r"^bases/(?P<ref>.+?)/files/(?P<path>.+)$", files.BaseFileDownloadView.as_view(), name="api-base-file"),
    path("bases/<path:ref>/lineage", views.BaseVersionLineageView.as_view(), name="api-base-lineage"),
    path("bases/<path:ref>/adapters", views.BaseVersionAdaptersView.as_view(), name="api-base-adapters"),
    path("bases/<path:ref>", views.BaseVersionDetailView.as_view(), name="api-base-detail"),
    path("adapters/", views.AdapterVersionListView.as_view(), name="api-adapter-list"),
    path("keys", signatures.RegistryKeysView.as_view(), name="api-keys"),
    path("namespaces", namespaces.NamespaceListView.as_view(), name="api-namespaces"),
    path(
        "namespaces/<str:namespace>/signing-policy", signatures.SigningPolicyView.as_view(), name="api-signing-policy"
    ),
    path("workers/", views.WorkerListView.as_view(), name="api-worker-list"),
    path("jobs/", views.JobListView.as_view(), name="api-job-list"),
    path("jobs/<uuid:job_id>/redispatch", views.JobRedispatchView.as_view(), name="api-job-redispatch"),
    path("jobs/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="api-job-cancel"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="api-job-detail"),
    path("suites/", views.SuiteListView.as_view(), name="api-suite-list"),
    path("suites/<path:ref>/attach", views.SuiteAttachView.as_view(), name="api-suite-attach"),
    re_path(r"^adapters/(?P<ref>.+?)/files$", files.AdapterFileListView.as_view(), name="api-adapter-files"),
    re_path(
        r"^adapters/(?P<ref>.+?)/files/(?P<path>.+)$", files.AdapterFileDownloadView.as_view(), name="api-adapter-file"
    ),
    re_path(
        r"^adapters/(?P<ref>.+?)/signatures/(?P<signature_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$",
        signatures.AdapterSignatureBundleView.as_view(),
        name="api-adapter-signature-bundle",
    ),
    path("adapters/<path:ref>/signatures", signatures.AdapterSignaturesView.as_view(), name="api-adapter-signatures"),
    path("adapters/<path:ref>/verify", signatures.AdapterVerifyView.as_view(), name="api-adapter-verify"),
    path("adapters/<path:ref>/lineage", views.AdapterVersionLineageView.as_view(), name="api-adapter-lineage"),
    path("adapters/<path:ref>/checks", views.AdapterChecksView.as_view(), name="api-adapter-checks"),
    path("adapters/<path:ref>/evaluations", views.AdapterEvaluateView.as_view(), name="api-adapter-evaluate"),
    path("adapters/<path:ref>", views.AdapterVersionDetailView.as_view(), name="api-adapter-detail"),
]
