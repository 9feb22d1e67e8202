"""GET /api/v1/audit/events: auditors and admins only, filters, cursor pages, one event by seq."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.audit.chain import verify_chain
from registry.audit.context import actor_for_user
from tests.audit.helpers import record

pytestmark = pytest.mark.django_db
URL = "/api/v1/audit/events"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def events(alice, carol):
    return [
        record(type="adapter.upload", adapter="demo/bot", object_id="v1", actor=actor_for_user(alice)),
        record(type="version.status", adapter="demo/bot", object_id="v1", after={"status": "ready"}),
        record(type="job.claim", adapter="other/bot", object_id="j1"),
        record(type="job.finish", namespace="other", object_id="j1", outcome="failed"),
        record(type="adapter.upload_refused", namespace="demo", actor=actor_for_user(carol), outcome="denied"),
    ]


def seqs(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [event["seq"] for event in response.json()["results"]]


def test_it_is_for_auditors_and_admins_only(events, alice_client, bob, carol, client):
    refused = alice_client.get(URL)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert alice_client.get(f"{URL}/1").status_code == 403
    assert client.get(URL).status_code == 401
    assert seqs(client_for(bob).get(URL)) == [5, 4, 3, 2, 1]
    assert seqs(client_for(carol).get(URL)) == [5, 4, 3, 2, 1]


def test_it_answers_the_events_as_hashed(events, bob):
    results = client_for(bob).get(URL).json()["results"]
    assert verify_chain(reversed(results)) == events[-1].entry_hash
    assert results[-1]["actor_name"] == "alice"
    assert results[-2]["after"] == {"status": "ready"}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("namespace=demo", [5, 2, 1]),
        ("adapter=demo/bot", [2, 1]),
        ("type=job.claim", [3]),
        ("type=job.*", [4, 3]),
        ("actor=carol", [5]),
        ("object_id=j1", [4, 3]),
        ("outcome=denied", [5]),
        ("namespace=demo&type=adapter.upload", [1]),
    ],
)
def test_its_filters(events, bob, query, expected):
    assert seqs(client_for(bob).get(f"{URL}?{query}")) == expected


def test_it_filters_by_time(events, bob):
    api = client_for(bob)
    middle = events[2].time
    assert seqs(api.get(URL, {"after": middle.isoformat()})) == [5, 4, 3]
    assert seqs(api.get(URL, {"before": middle.isoformat()})) == [2, 1]
    assert seqs(api.get(URL, {"after": (timezone.now() + timedelta(days=1)).isoformat()})) == []


@pytest.mark.parametrize(
    "query, code",
    [("adapter=nope", "invalid_name"), ("after=yesterday", "validation_error"), ("who=bob", "unknown_filter")],
)
def test_it_refuses_bad_filters(events, bob, query, code):
    response = client_for(bob).get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_it_pages_by_cursor(events, bob):
    api = client_for(bob)
    first = api.get(URL, {"page_size": 2}).json()
    assert [e["seq"] for e in first["results"]] == [5, 4]
    second = api.get(first["next"]).json()
    assert [e["seq"] for e in second["results"]] == [3, 2]
    third = api.get(second["next"]).json()
    assert [e["seq"] for e in third["results"]] == [1]
    assert third["next"] is None


def test_one_event_by_seq(events, bob):
    api = client_for(bob)
    response = api.get(f"{URL}/3")
    assert response.status_code == 200
    assert response.json()["type"] == "job.claim"
    assert response.json()["entry_hash"] == events[2].entry_hash
    for missing in (99, 0, 2**70):
        answer = api.get(f"{URL}/{missing}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "audit_event_not_found"
