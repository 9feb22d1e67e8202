"""GET /api/v1/audit/events: auditors and admins only, filters, cursor pages, one event by seq."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.audit.chain import verify_chain
from registry.audit.context import actor_for_user
from registry.models import AuditEvent
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


def seqs(response, events) -> list[int]:
    """The fixture's events in the answer, by their position (1-5) in `events`: users and tokens
    made by the fixtures are recorded too, and are not what these tests are about."""
    assert response.status_code == 200, response.content
    position = {event.seq: index for index, event in enumerate(events, start=1)}
    return [position[event["seq"]] for event in response.json()["results"] if event["seq"] in position]


def test_it_is_for_auditors_and_admins_only(events, alice_client, bob, carol, client):
    refused = alice_client.get(URL)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert alice_client.get(f"{URL}/{events[0].seq}").status_code == 403
    assert client.get(URL).status_code == 401
    assert seqs(client_for(bob).get(URL), events) == [5, 4, 3, 2, 1]
    assert seqs(client_for(carol).get(URL), events) == [5, 4, 3, 2, 1]


def test_it_answers_the_events_as_hashed(events, bob):
    api = client_for(bob)
    results = api.get(URL).json()["results"]
    assert verify_chain(reversed(results)) == results[0]["entry_hash"]
    by_seq = {event["seq"]: event for event in results}
    assert by_seq[events[0].seq]["actor_name"] == "alice"
    assert by_seq[events[1].seq]["after"] == {"status": "ready"}


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
    assert seqs(client_for(bob).get(f"{URL}?{query}"), events) == expected


def test_it_filters_by_time(events, bob):
    api = client_for(bob)
    middle = events[2].time
    assert seqs(api.get(URL, {"after": middle.isoformat()}), events) == [5, 4, 3]
    assert seqs(api.get(URL, {"before": middle.isoformat()}), events) == [2, 1]
    assert api.get(URL, {"after": (timezone.now() + timedelta(days=1)).isoformat()}).json()["results"] == []


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
    first = api.get(URL, {"page_size": 2, "namespace": "demo"})
    assert seqs(first, events) == [5, 2]
    second = api.get(first.json()["next"])
    assert seqs(second, events) == [1]
    assert second.json()["next"] is None
    everything, page = [], api.get(URL, {"page_size": 1}).json()
    while True:
        everything += [e["seq"] for e in page["results"]]
        if page["next"] is None:
            break
        page = api.get(page["next"]).json()
    assert everything == sorted(everything, reverse=True) and set(everything) >= {e.seq for e in events}


def test_one_event_by_seq(events, bob):
    api = client_for(bob)
    response = api.get(f"{URL}/{events[2].seq}")
    assert response.status_code == 200
    assert response.json()["type"] == "job.claim"
    assert response.json()["entry_hash"] == events[2].entry_hash
    for missing in (10**9, 0, 2**70):
        answer = api.get(f"{URL}/{missing}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "audit_event_not_found"


def test_time_bounds_become_the_first_seq_at_or_after_them(db):
    from registry.audit.selectors import first_seq_at_or_after

    events = [record(type="test.event", object_id=str(index)) for index in range(9)]
    for event in events:
        first = first_seq_at_or_after(event.time)
        # The first event with this time (events may share a microsecond), never a later one.
        assert first <= event.seq
        assert all(other.time < event.time for other in events if other.seq < first)
    assert first_seq_at_or_after(events[0].time - timedelta(days=1)) == AuditEvent.objects.order_by("seq").first().seq
    assert first_seq_at_or_after(events[-1].time + timedelta(microseconds=1)) == events[-1].seq + 1
