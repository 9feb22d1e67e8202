"""GET /healthz: the state of the database and the broker, for load balancers and humans."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error means "down"; say which
        return f"error: {exc.__class__.__name__}"


def _broker_state() -> str:
    try:
        with Connection(
            settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS, connect_timeout=2
        ) as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:  # kombu raises transport-specific errors
        return f"error: {exc.__class__.__name__}"


@require_GET
def healthz(request):
    """200 while the database answers (the service can serve); the broker's state is reported
    alongside, and a broker outage shows as "degraded" since work would queue up."""
    checks = {"database": _database_state(), "broker": _broker_state()}
    healthy = all(state == "ok" for state in checks.values())
    status = "ok" if healthy else "degraded" if checks["database"] == "ok" else "down"
    return JsonResponse({"status": status, **checks}, status=503 if status == "down" else 200)
