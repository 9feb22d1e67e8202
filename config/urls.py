from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from registry.health import healthz
from registry.metrics import metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("registry.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from drf-spectacular-sidecar; its init script is a separate file, as the CSP wants.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("ui.urls", namespace="ui")),
]

# JSON in the API's error shape for /api/ paths, the HTML templates elsewhere (registry/api/errors.py).
handler400 = "registry.api.errors.handler400"
handler403 = "registry.api.errors.handler403"
handler404 = "registry.api.errors.handler404"
handler500 = "registry.api.errors.handler500"
