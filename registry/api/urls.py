from django.urls import path

from registry.api import views

# Version references contain "/" (namespace/name:v3), hence the path converter;
# the more specific routes come first so ".../lineage" is not read as part of a ref.
urlpatterns = [
    path("auth/token", views.TokenObtainView.as_view(), name="api-token"),
    path("bases/", views.BaseVersionListView.as_view(), name="api-base-list"),
    path("bases/<path:ref>/lineage", views.BaseVersionLineageView.as_view(), name="api-base-lineage"),
    path("bases/<path:ref>/adapters", views.BaseVersionAdaptersView.as_view(), name="api-base-adapters"),
    path("bases/<path:ref>", views.BaseVersionDetailView.as_view(), name="api-base-detail"),
    path("adapters/", views.AdapterVersionListView.as_view(), name="api-adapter-list"),
    path("adapters/<path:ref>/lineage", views.AdapterVersionLineageView.as_view(), name="api-adapter-lineage"),
    path("adapters/<path:ref>", views.AdapterVersionDetailView.as_view(), name="api-adapter-detail"),
]
