from django.contrib.auth import views as auth_views
from django.urls import path

from ui import audit, promotions, residency, views, webhooks

app_name = "ui"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("bases/", views.base_list, name="base-list"),
    path("bases/<str:namespace>/<str:name>/v<int:number>/", views.base_detail, name="base-detail"),
    path(
        "bases/<str:namespace>/<str:name>/v<int:number>/files/<path:path>",
        views.version_file,
        {"kind": "base"},
        name="base-file",
    ),
    path("adapters/", views.adapter_list, name="adapter-list"),
    path("adapters/upload/", views.adapter_upload, name="adapter-upload"),
    path("adapters/namespaces/", views.namespace_suggestions_fragment, name="namespace-suggestions"),
    path("adapters/<str:namespace>/<str:name>/v<int:number>/", views.adapter_detail, name="adapter-detail"),
    path(
        "adapters/<str:namespace>/<str:name>/v<int:number>/files/<path:path>",
        views.version_file,
        {"kind": "adapter"},
        name="adapter-file",
    ),
    path(
        "adapters/<str:namespace>/<str:name>/v<int:number>/children/",
        views.adapter_children,
        name="adapter-children",
    ),
    path(
        "adapters/<str:namespace>/<str:name>/v<int:number>/evaluate",
        views.adapter_evaluate_action,
        name="adapter-evaluate",
    ),
    path(
        "adapters/<str:namespace>/<str:name>/v<int:number>/verify",
        views.adapter_verify_action,
        name="adapter-verify",
    ),
    path("adapters/<str:namespace>/<str:name>/aliases/", promotions.alias_timeline, name="alias-timeline"),
    path(
        "adapters/<str:namespace>/<str:name>/aliases/<str:alias>/<str:action>",
        promotions.alias_action,
        name="alias-action",
    ),
    path("adapters/<str:namespace>/<str:name>/compare", promotions.alias_compare, name="alias-compare"),
    path("promotions/", promotions.promotion_inbox, name="promotions"),
    path("promotions/new", promotions.promotion_new, name="promotion-new"),
    path("promotions/<uuid:request_id>/", promotions.promotion_detail, name="promotion"),
    path("promotions/<uuid:request_id>/<str:action>", promotions.promotion_decide, name="promotion-decide"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path("webhooks/<uuid:webhook_id>/", webhooks.webhook_detail, name="webhook"),
    path("webhooks/<uuid:webhook_id>/<str:action>", webhooks.webhook_action, name="webhook-action"),
    path("namespaces/<str:namespace>/signing-policy", views.signing_policy, name="signing-policy"),
    path("workers/", views.worker_list, name="workers"),
    path("jobs/<uuid:job_id>/redispatch", views.job_redispatch_action, name="job-redispatch"),
    path("jobs/<uuid:job_id>/cancel", views.job_cancel_action, name="job-cancel"),
    path("audit/", audit.audit_list, name="audit"),
    path("audit/events/<int:seq>/", audit.audit_event, name="audit-event"),
    path("audit/exports/", audit.audit_export_create, name="audit-export-create"),
    path("audit/exports/<uuid:export_id>/", audit.audit_export, name="audit-export"),
    path("residency/", residency.residency, name="residency"),
    path("residency/replan", residency.residency_replan_action, name="residency-replan"),
    path("residency/workers/<str:name>/<str:tier>/", residency.residency_tier, name="residency-tier"),
]
