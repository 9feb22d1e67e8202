from django.urls import path

from registry.api import tokens, views

# Version references contain "/" (namespace/name:v3), hence the path converter;
# the more specific routes come first so ".../lineage" is not read as part of a ref.
urlpatterns = [
    path("auth/token", views.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/rotate", tokens.TokenRotateView.as_view(), name="api-token-rotate"),
    path("bases/", views.BaseVersionListView.as_view(), name="api-base-list"),
    path("bases/<path:ref>/lineage", views.BaseVersionLineageView.as_view(), name="api-base-lineage"),
    path("bases/<path:ref>/adapters", views.BaseVersionAdaptersView.as_view(), name="api-base-adapters"),
    path("bases/<path:ref>", views.BaseVersionDetailView.as_view(), name="api-base-detail"),
    path("adapters/", views.AdapterVersionListView.as_view(), name="api-adapter-list"),
    path("workers/", views.WorkerListView.as_view(), name="api-worker-list"),
    path("jobs/", views.JobListView.as_view(), name="api-job-list"),
    path("jobs/<uuid:job_id>/redispatch", views.JobRedispatchView.as_view(), name="api-job-redispatch"),
    path("jobs/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="api-job-cancel"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="api-job-detail"),
    path("suites/", views.SuiteListView.as_view(), name="api-suite-list"),
    path("suites/<path:ref>/attach", views.SuiteAttachView.as_view(), name="api-suite-attach"),
    path("adapters/<path:ref>/lineage", views.AdapterVersionLineageView.as_view(), name="api-adapter-lineage"),
    path("adapters/<path:ref>/checks", views.AdapterChecksView.as_view(), name="api-adapter-checks"),
    path("adapters/<path:ref>/evaluations", views.AdapterEvaluateView.as_view(), name="api-adapter-evaluate"),
    path("adapters/<path:ref>", views.AdapterVersionDetailView.as_view(), name="api-adapter-detail"),
]
