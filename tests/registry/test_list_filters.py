"""List filters never mislead: an unknown parameter is refused with the allowed ones named,
and who pushed a version and when can be filtered on."""

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import AdapterVersion, BaseModelVersion
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory


@pytest.fixture
def pushed(alice, carol, zoo):
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    versions = {}
    for user, key in ((alice, "attention"), (carol, "dora")):
        with incoming_from_directory(zoo.adapters[key]) as files:
            versions[user.username] = adapter_version_ingest(
                name=f"acme/{key}", files=files, base_ref=base.ref, user=user
            ).version
    return base, versions


@pytest.mark.parametrize(
    "url", ["/api/v1/adapters/", "/api/v1/bases/", "/api/v1/jobs/", "/api/v1/suites/", "/api/v1/workers/"]
)
def test_an_unknown_filter_is_refused_naming_the_allowed_ones(bob_client, url):
    response = bob_client.get(url, {"created_by_name": "nobody"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_filter"
    assert "created_by_name" in error["message"]
    assert error["detail"]["unknown"] == ["created_by_name"]


def test_the_message_lists_what_the_adapter_list_takes(bob_client, db):
    error = bob_client.get("/api/v1/adapters/", {"owner": "x"}).json()["error"]
    assert {"created_by", "created_after", "created_before", "namespace", "cursor", "page_size"} <= set(
        error["detail"]["allowed"]
    )


def test_it_filters_by_who_pushed_and_when(bob_client, pushed):
    base, versions = pushed
    by_carol = bob_client.get("/api/v1/adapters/", {"created_by": "carol"}).json()["results"]
    assert [row["ref"] for row in by_carol] == [versions["carol"].ref]
    assert bob_client.get("/api/v1/adapters/", {"created_by": "nobody"}).json()["results"] == []

    AdapterVersion.objects.filter(id=versions["alice"].id).update(created_at=timezone.now() - timedelta(days=2))
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()
    recent = bob_client.get("/api/v1/adapters/", {"created_after": cutoff}).json()["results"]
    older = bob_client.get("/api/v1/adapters/", {"created_before": cutoff}).json()["results"]
    assert [row["ref"] for row in recent] == [versions["carol"].ref]
    assert [row["ref"] for row in older] == [versions["alice"].ref]

    BaseModelVersion.objects.filter(id=base.id).update(created_at=timezone.now() - timedelta(days=3))
    assert bob_client.get("/api/v1/bases/", {"created_by": "alice"}).json()["results"][0]["ref"] == base.ref
    assert bob_client.get("/api/v1/bases/", {"created_after": cutoff}).json()["results"] == []


@pytest.mark.parametrize("value", ["yesterday", ""])
def test_a_bad_or_empty_date_is_a_validation_error(bob_client, db, value):
    response = bob_client.get("/api/v1/adapters/", {"created_after": value})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_the_adapter_page_filters_and_shows_who_pushed(client, bob, pushed):
    _, versions = pushed
    client.force_login(bob)
    page = client.get("/adapters/", {"created_by": "carol"}).content.decode()
    assert versions["carol"].ref in page and versions["alice"].ref not in page
    assert "Pushed by" in page
