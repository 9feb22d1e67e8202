"""The project's URLs plus one API view that records an audit event, so the tests can see what
the request context puts into it before any service records events of its own."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urlpatterns
from registry.audit.services import audit_record


class RecordingView(APIView):
    def post(self, request):
        event = audit_record(type="test.request")
        return Response({"seq": event.seq})


urlpatterns = [path("api/v1/test-audit", RecordingView.as_view()), *project_urlpatterns]
