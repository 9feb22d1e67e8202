"""/api/v1/webhooks: admin only, validated with stable codes, secrets never answered twice, audited."""

import uuid

import pytest
from rest_framework.test import APIClient

from registry.models import AuditEvent, Webhook, WebhookDelivery
from registry.webhooks.delivery import delivery_attempt
from registry.webhooks.services import webhook_emit
from tests.webhooks.conftest import SECRET

URL = "/api/v1/webhooks"


def _create(client, receiver, **fields):
    body = {"url": receiver.url, "events": ["alias.moved", "version.ready"], "secret": SECRET, **fields}
    return client.post(URL, body, format="json")


def _endpoints(webhook_id) -> list[tuple[str, str]]:
    one = f"{URL}/{webhook_id}"
    return [
        ("get", URL),
        ("post", URL),
        ("get", one),
        ("patch", one),
        ("delete", one),
        ("get", f"{one}/deliveries"),
        ("post", f"{one}/test"),
    ]


def test_it_creates_a_webhook_and_never_answers_its_secret(carol_client, receiver):
    response = _create(carol_client, receiver, description="serving fleet")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["secret"] is None, "a chosen secret is not echoed"
    assert (created["secret_set"], created["secret_last4"]) == (True, SECRET[-4:])
    assert created["events"] == ["alias.moved", "version.ready"] and created["active"] is True
    assert created["created_by"] == "carol"
    listed = carol_client.get(URL).json()["results"]
    assert [w["id"] for w in listed] == [created["id"]]
    for answer in (listed[0], carol_client.get(f"{URL}/{created['id']}").json()):
        assert "secret" not in answer and SECRET not in str(answer)
    event = AuditEvent.objects.get(type="webhook.create")
    assert event.object_id == created["id"] and event.actor_name == "carol"
    assert event.after["url"] == receiver.url and SECRET not in event.body


def test_a_secret_left_out_is_generated_and_answered_once(carol_client, receiver):
    response = carol_client.post(URL, {"url": receiver.url, "events": ["*"]}, format="json")
    assert response.status_code == 201
    secret = response.json()["secret"]
    assert len(secret) >= 32 and Webhook.objects.get().secret == secret
    assert secret not in str(carol_client.get(f"{URL}/{response.json()['id']}").json())
    assert secret not in AuditEvent.objects.get(type="webhook.create").body


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"url": "ftp://example.com/hook"}, "webhook_url_invalid"),
        ({"url": "http://"}, "webhook_url_invalid"),
        ({"url": "example.com/hook"}, "webhook_url_invalid"),
        ({"url": "https://user:pw@example.com/hook"}, "webhook_url_invalid"),
        ({"url": "http://example.com:99999/hook"}, "webhook_url_invalid"),
        ({"url": "http://exa mple.com/"}, "webhook_url_invalid"),
        ({"url": "https://example.com/" + "a" * 2000}, "webhook_url_invalid"),
        ({"events": ["alias.moved", "alias.renamed"]}, "webhook_event_unknown"),
        ({"events": []}, "webhook_events_empty"),
        ({"secret": "short"}, "webhook_secret_too_short"),
        ({"secret": "s" * 257}, "webhook_secret_too_long"),
        ({"url": None}, "validation_error"),
        ({"events": "alias.moved"}, "validation_error"),
    ],
)
def test_it_refuses_bad_input_with_a_stable_code(carol_client, receiver, fields, code):
    response = _create(carol_client, receiver, **fields)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == code
    assert not Webhook.objects.exists() and not AuditEvent.objects.filter(type="webhook.create").exists()


def test_an_unknown_event_is_named(carol_client, receiver):
    error = _create(carol_client, receiver, events=["alias.renamed"]).json()["error"]
    assert error["detail"]["event"] == "alias.renamed" and "alias.renamed" in error["message"]
    assert "version.ready" in error["detail"]["known"]


def test_engineers_and_auditors_are_refused_every_endpoint_and_anonymous_users_are_asked_to_sign_in(
    alice_client, bob_client, webhook
):
    anonymous = APIClient()
    for method, url in _endpoints(webhook.id):
        for client in (alice_client, bob_client):
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code == 403, (method, url)
            assert response.json()["error"]["code"] == "permission_denied"
        assert getattr(anonymous, method)(url, {}, format="json").status_code == 401, (method, url)
    assert Webhook.objects.get().url == webhook.url and not WebhookDelivery.objects.exists()


def test_it_changes_a_webhook_and_records_what_changed(carol_client, webhook):
    response = carol_client.patch(
        f"{URL}/{webhook.id}",
        {"events": ["promotion.executed"], "active": False, "secret": "a-new-secret-of-enough-length"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert (answer["events"], answer["active"], answer["secret_last4"]) == (["promotion.executed"], False, "ngth")
    event = AuditEvent.objects.get(type="webhook.update")
    assert event.before == {"events": ["*"], "active": True}
    assert event.after == {"events": ["promotion.executed"], "active": False, "secret": "changed"}
    assert "a-new-secret" not in event.body
    refused = carol_client.patch(f"{URL}/{webhook.id}", {"url": "gopher://x"}, format="json")
    assert refused.json()["error"]["code"] == "webhook_url_invalid"
    assert Webhook.objects.get().url == webhook.url


def test_it_deletes_a_webhook_with_its_log(carol_client, webhook):
    webhook_emit("alias.moved", {})
    assert carol_client.delete(f"{URL}/{webhook.id}").status_code == 204
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.get(type="webhook.delete").before["deliveries"] == 1
    missing = carol_client.get(f"{URL}/{webhook.id}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "webhook_not_found"


def test_an_unknown_webhook_is_a_404_everywhere(carol_client):
    for method, url in _endpoints(uuid.uuid4())[2:]:
        response = getattr(carol_client, method)(url, {}, format="json")
        assert response.status_code == 404 and response.json()["error"]["code"] == "webhook_not_found"


def test_the_delivery_log_is_newest_first_with_every_attempt(carol_client, webhook, receiver, settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    receiver.statuses = [500]
    receiver.answer_body = b"<script>alert(1)</script>"
    first = webhook_emit("version.ready", {"ref": "acme/bot:v1"})[0]
    delivery_attempt(first.id)
    delivery_attempt(first.id)
    second = webhook_emit("alias.moved", {"alias": "production"})[0]

    page = carol_client.get(f"{URL}/{webhook.id}/deliveries?page_size=1").json()
    assert [d["id"] for d in page["results"]] == [str(second.id)] and page["next"]
    rest = carol_client.get(page["next"]).json()["results"]
    (logged,) = rest
    assert (logged["event"], logged["state"], logged["attempts"]) == ("version.ready", "succeeded", 2)
    assert [(a["number"], a["status_code"], a["error"]) for a in logged["attempt_log"]] == [
        (1, 500, "HTTP 500"),
        (2, 200, ""),
    ]
    assert logged["payload"] == {"ref": "acme/bot:v1"}
    failed = carol_client.get(f"{URL}/{webhook.id}/deliveries?state=pending").json()["results"]
    assert [d["id"] for d in failed] == [str(second.id)]
    refused = carol_client.get(f"{URL}/{webhook.id}/deliveries?status=failed")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unknown_filter"


def test_the_test_action_sends_a_signed_test_delivery_now(carol_client, webhook, receiver):
    response = carol_client.post(f"{URL}/{webhook.id}/test")
    assert response.status_code == 200, response.json()
    delivery = response.json()
    assert (delivery["event"], delivery["state"], delivery["last_status_code"]) == ("webhook.test", "succeeded", 200)
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    (received,) = receiver.received
    assert received.verified and received.json["event"] == "webhook.test"
    assert received.headers["X-Registry-Delivery"] == delivery["id"]
    event = AuditEvent.objects.get(type="webhook.test")
    assert event.after == {"delivery": delivery["id"]}


def test_a_failing_test_delivery_says_why_and_is_retried(carol_client, webhook, receiver):
    receiver.statuses = [502]
    delivery = carol_client.post(f"{URL}/{webhook.id}/test").json()
    assert (delivery["state"], delivery["last_status_code"], delivery["last_error"]) == ("pending", 502, "HTTP 502")
    assert delivery["next_attempt_at"] is not None


def test_every_webhook_operation_is_in_the_openapi_schema(carol_client):
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    operations = {
        "/api/v1/webhooks": {"get", "post"},
        "/api/v1/webhooks/{webhook_id}": {"get", "patch", "delete"},
        "/api/v1/webhooks/{webhook_id}/deliveries": {"get"},
        "/api/v1/webhooks/{webhook_id}/test": {"post"},
    }
    for path, methods in operations.items():
        assert methods <= set(paths[path]), path
        for method in methods:
            assert {"401", "403"} <= set(paths[path][method]["responses"]), (path, method)
