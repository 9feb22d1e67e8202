"""The project's URLs plus two views that fail unexpectedly, one DRF and one plain
Django view, to prove what a client sees when the server has a bug."""

from django.urls import path
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


class BrokenApiView(APIView):
    authentication_classes = []
    permission_classes = []

    def get(self, request):
        raise RuntimeError("secret internals: /srv/registry/settings.py")


def broken_plain_view(request):
    raise RuntimeError("secret internals: /srv/registry/settings.py")


urlpatterns = [
    path("api/v1/test-broken", BrokenApiView.as_view()),
    path("api/test-broken-plain", broken_plain_view),
    path("test-broken-page", broken_plain_view),
    *urlpatterns,
]
