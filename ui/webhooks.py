"""Webhook settings for admins: list, add (a generated secret shown once), activate, deactivate,
delete, send a test, and each webhook's recent deliveries with the receiver's status codes.

Every write is the service the API calls (registry/webhooks/services.py), so each is an audit event
like one made over /api/v1/webhooks; the pages are for admins only, as the API is (IsAdminRole).
What receivers answered is theirs, not ours: shown escaped, like every other text.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry import roles
from registry.errors import RegistryError
from registry.models import Webhook, WebhookAttempt, WebhookDelivery
from registry.webhooks.services import (
    ALL_EVENTS,
    WEBHOOK_EVENTS,
    webhook_create,
    webhook_delete,
    webhook_get,
    webhook_test,
    webhook_update,
)

DELIVERIES_SHOWN = 50
WEBHOOKS_SHOWN = 200


def _require_admin(request) -> None:
    """The webhooks API's rule (IsAdminRole): webhooks send registry events to outside receivers."""
    if not roles.is_admin(request.user):
        raise PermissionDenied("webhooks are for admins")


def _webhook_list_context() -> dict:
    return {
        "webhooks": list(Webhook.objects.select_related("created_by").order_by("-created_at", "-id")[:WEBHOOKS_SHOWN]),
        "events": WEBHOOK_EVENTS,
        "all_events": ALL_EVENTS,
    }


@require_http_methods(["GET", "POST"])
@login_required
def webhook_list(request):
    """The admins' webhooks, and a form to add one; a generated secret is shown on the answer to that
    form and never again (it is not put in a message, which would keep it in the session)."""
    _require_admin(request)
    context = _webhook_list_context()
    if request.method == "GET":
        return render(request, "ui/webhook_list.html", context)
    typed = {
        "url": request.POST.get("url", "").strip(),
        "events": request.POST.getlist("events"),
        "secret": request.POST.get("secret", ""),
        "description": request.POST.get("description", "").strip()[:500],
    }
    try:
        webhook, generated = webhook_create(**typed, user=request.user)
    except RegistryError as error:
        typed["secret"] = ""  # never echoed back into the page
        return render(request, "ui/webhook_list.html", {**context, "error": error, "typed": typed}, status=400)
    context = _webhook_list_context()
    return render(request, "ui/webhook_list.html", {**context, "created": webhook, "generated_secret": generated})


def _webhook_or_404(webhook_id) -> Webhook:
    try:
        return webhook_get(webhook_id)
    except RegistryError:
        raise Http404(f"no webhook has id {webhook_id}") from None


@require_GET
@login_required
def webhook_detail(request, webhook_id):
    _require_admin(request)
    webhook = _webhook_or_404(webhook_id)
    deliveries = webhook.deliveries.prefetch_related(
        Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number"))
    ).order_by("-created_at", "-id")[:DELIVERIES_SHOWN]
    context = {"webhook": webhook, "deliveries": list(deliveries), "shown": DELIVERIES_SHOWN}
    return render(request, "ui/webhook_detail.html", context)


WEBHOOK_ACTIONS = ("activate", "deactivate", "delete", "test")


@require_POST
@login_required
def webhook_action(request, webhook_id, action: str):
    _require_admin(request)
    if action not in WEBHOOK_ACTIONS:
        raise Http404("no such action")
    webhook = _webhook_or_404(webhook_id)
    if action == "delete":
        webhook_delete(webhook=webhook)
        messages.success(request, f"Deleted the webhook to {webhook.url}.")
        return redirect("ui:webhooks")
    if action == "test":
        delivery = webhook_test(webhook=webhook)
        messages.success(request, _test_outcome(delivery))
    else:
        webhook_update(webhook=webhook, changes={"active": action == "activate"})
        messages.success(request, f"{'Activated' if action == 'activate' else 'Deactivated'} the webhook.")
    return redirect("ui:webhook", webhook.id)


def _test_outcome(delivery: WebhookDelivery) -> str:
    if delivery.state == WebhookDelivery.State.SUCCEEDED:
        return f"Test delivery sent: the receiver answered {delivery.last_status_code}."
    answer = f"answered {delivery.last_status_code}" if delivery.last_status_code else f"failed: {delivery.last_error}"
    return f"Test delivery {delivery.state}: the receiver {answer[:300]}; it is retried like any delivery."
