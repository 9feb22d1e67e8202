"""Every API endpoint needs authentication; tokens come from username and password."""

import pytest
from rest_framework.test import APIClient

ENDPOINTS = [
    ("get", "/api/v1/bases/"),
    ("post", "/api/v1/bases/"),
    ("get", "/api/v1/bases/acme/x:v1"),
    ("get", "/api/v1/bases/acme/x:v1/lineage"),
    ("get", "/api/v1/bases/acme/x:v1/adapters"),
    ("get", "/api/v1/adapters/"),
    ("post", "/api/v1/adapters/"),
    ("get", "/api/v1/adapters/acme/x:v1"),
    ("get", "/api/v1/adapters/acme/x:v1/lineage"),
]


@pytest.mark.parametrize("method,url", ENDPOINTS)
def test_it_rejects_unauthenticated_calls(db, method, url):
    response = getattr(APIClient(), method)(url)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_it_rejects_a_bad_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/v1/adapters/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_token_read_by_its_sql_is_the_one_the_orm_reads_and_an_inactive_user_is_refused(alice):
    """The token lookup every API call makes is written SQL (registry/api/authentication.py)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from registry.api.authentication import _token_with_user

    issued = Token.objects.create(user=alice)
    by_hand, by_orm = _token_with_user(issued.key), Token.objects.select_related("user").get(key=issued.key)
    for mine, theirs in [(by_hand, by_orm), (by_hand.user, by_orm.user)]:
        assert {f.attname: getattr(mine, f.attname) for f in type(mine)._meta.concrete_fields} == {
            f.attname: getattr(theirs, f.attname) for f in type(theirs)._meta.concrete_fields
        }
    assert _token_with_user("0" * 40) is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
    assert client.get("/api/v1/adapters/").status_code == 200
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    response = client.get("/api/v1/adapters/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_it_exchanges_username_and_password_for_a_token(alice):
    response = APIClient().post(
        "/api/v1/auth/token", {"username": "alice", "password": "alice-password"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/adapters/").status_code == 200


def test_it_refuses_a_wrong_password(alice):
    response = APIClient().post("/api/v1/auth/token", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_the_schema_and_health_are_served(db, client):
    assert client.get("/api/schema/").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["database"] == "ok"


def test_health_reports_a_broker_outage_as_degraded(db, client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok" and body["broker"].startswith("error")


def test_the_openapi_schema_validates_without_warnings(db, capsys):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
