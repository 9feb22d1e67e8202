"""The request context in events: request id, client address, and who acted (never a token's key)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.audit.context import token_id
from registry.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.audit.context_urls")]


def test_it_records_the_request_id_and_client_address_and_echoes_the_id(alice_client):
    response = alice_client.post(
        "/api/v1/test-audit",
        HTTP_X_REQUEST_ID="ci-run.42_a-b",
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "ci-run.42_a-b"
    event = AuditEvent.objects.get(seq=response.json()["seq"])
    assert event.request_id == "ci-run.42_a-b"
    assert event.client_address == "203.0.113.9"  # X-Forwarded-For is not trusted


@pytest.mark.parametrize("header", ["", "has space", "x" * 65, 'quote"', "ünïcode"])
def test_it_replaces_a_request_id_that_is_not_a_sane_token(alice_client, header):
    response = alice_client.post("/api/v1/test-audit", HTTP_X_REQUEST_ID=header)
    event = AuditEvent.objects.get(seq=response.json()["seq"])
    assert event.request_id == response["X-Request-ID"] != header
    assert len(event.request_id) == 32


def test_every_answer_carries_a_request_id(client):
    response = client.get("/api/v1/jobs/")  # refused: not signed in
    assert response.status_code == 401
    assert len(response["X-Request-ID"]) == 32


def test_a_token_actor_records_the_tokens_id_not_its_key(alice):
    token = Token.objects.create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    event = AuditEvent.objects.get(seq=client.post("/api/v1/test-audit").json()["seq"])
    assert (event.actor_kind, event.actor_name, event.actor_id, event.actor_role) == (
        "token",
        "alice",
        str(alice.pk),
        "engineer",
    )
    assert event.token_id == token_id(token.key)
    assert token.key not in event.body
    assert token.key[:8] not in event.body


def test_a_session_user_is_a_user_actor(client, carol):
    client.force_login(carol)
    response = client.post("/api/v1/test-audit")
    event = AuditEvent.objects.get(seq=response.json()["seq"])
    assert (event.actor_kind, event.actor_name, event.actor_role, event.token_id) == ("user", "carol", "admin", "")
