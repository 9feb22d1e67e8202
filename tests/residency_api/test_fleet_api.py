"""/api/v1/residency/workers and /api/v1/residency/pins: register, change, remove; pin and unpin.

carol is a global admin, alice an engineer, bob an auditor (tests/conftest.py).
"""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import AuditEvent, NamespaceRole, ResidencyPin, ServingWorker, TelemetryWindow
from registry.services.transitions import AliasTarget, alias_move
from tests.conftest import _client_for, _user
from tests.residency_api.conftest import make_adapter_versions, make_base

WORKERS = "/api/v1/residency/workers"
PINS = "/api/v1/residency/pins"


def _error(response) -> str:
    return response.json()["error"]["code"]


def _body(base, **fields) -> dict:
    values = {
        "name": "vllm-a",
        "engine": "vllm",
        "endpoint": "http://10.0.0.5:8000",
        "base_versions": [base.ref],
        "gpu_slots": 8,
        "max_rank": 64,
        "host_slots": 32,
        "labels": {"zone": "eu-1"},
    }
    return {**values, **fields}


def _register(client, base, **fields):
    return client.post(WORKERS, _body(base, **fields), format="json")


# --- Register ------------------------------------------------------------------------------------


def test_an_admin_registers_a_worker_and_the_event_records_it(carol_client, base):
    response = _register(carol_client, base)
    assert response.status_code == 201, response.content
    worker = response.json()
    assert worker["name"] == "vllm-a" and worker["engine"] == "vllm" and worker["created_by"] == "carol"
    assert worker["base_versions"] == [base.digest_ref] and worker["last_seen_at"] is None
    event = AuditEvent.objects.get(type="serving_worker.register")
    assert event.object_id == "vllm-a" and event.after["gpu_slots"] == 8
    assert event.after["base_versions"] == [base.digest_ref] and event.actor_name == "carol"


def test_bases_may_be_named_by_any_reference(carol_client, base):
    other = make_base("acme/mistral")
    response = _register(carol_client, base, base_versions=[base.digest_ref, str(other.id), "acme/llama:v1"])
    assert response.status_code == 201, response.content
    assert sorted(response.json()["base_versions"]) == sorted([base.digest_ref, other.digest_ref])


def test_everyone_signed_in_reads_the_fleet(carol_client, alice_client, bob_client, base):
    _register(carol_client, base)
    for client in (alice_client, bob_client):
        assert [w["name"] for w in client.get(WORKERS).json()] == ["vllm-a"]
        assert client.get(f"{WORKERS}/vllm-a").json()["gpu_slots"] == 8


def test_reading_needs_signing_in(client, db):
    assert client.get(WORKERS).status_code == 401


@pytest.mark.parametrize(
    "fields, status, code",
    [
        ({"name": "Not A Slug"}, 400, "serving_worker_name_invalid"),
        ({"engine": "tgi"}, 400, "serving_worker_engine_invalid"),
        ({"endpoint": "ftp://10.0.0.5/"}, 400, "serving_worker_endpoint_invalid"),
        ({"endpoint": "not a url"}, 400, "serving_worker_endpoint_invalid"),
        ({"gpu_slots": None}, 400, "serving_worker_capacity_invalid"),
        ({"gpu_slots": 0}, 400, "serving_worker_capacity_invalid"),
        ({"gpu_slots": None, "gpu_bytes": -1}, 400, "serving_worker_capacity_invalid"),
        ({"gpu_slots": 2**40}, 400, "serving_worker_capacity_invalid"),
        ({"max_rank": 0}, 400, "serving_worker_capacity_invalid"),
        ({"host_bytes": -1}, 400, "serving_worker_capacity_invalid"),
        ({"labels": {"zone": 1}}, 400, "serving_worker_labels_invalid"),
        ({"labels": ["zone"]}, 400, "serving_worker_labels_invalid"),
        ({"base_versions": []}, 400, "serving_worker_bases_required"),
        ({"base_versions": ["acme/missing:v1"]}, 400, "base_not_found"),
        ({"base_versions": ["not a ref"]}, 400, "invalid_ref"),
        ({"gpu_slots": "many"}, 400, "validation_error"),
    ],
)
def test_it_refuses_a_bad_worker_with_a_code_and_keeps_nothing(carol_client, base, fields, status, code):
    response = _register(carol_client, base, **fields)
    assert (response.status_code, _error(response)) == (status, code), response.content
    assert not ServingWorker.objects.exists()
    assert not AuditEvent.objects.filter(type__startswith="serving_worker.").exists()


def test_a_name_is_registered_once(carol_client, base):
    assert _register(carol_client, base).status_code == 201
    again = _register(carol_client, base, engine="sglang")
    assert (again.status_code, _error(again)) == (409, "serving_worker_exists")
    assert ServingWorker.objects.get().engine == "vllm"


# --- Permissions ---------------------------------------------------------------------------------


def test_a_non_admin_is_refused_every_write_and_each_refusal_is_audited(carol_client, alice_client, base, versions):
    _register(carol_client, base)
    attempts = [
        alice_client.post(WORKERS, _body(base, name="vllm-b"), format="json"),
        alice_client.put(f"{WORKERS}/vllm-a", _body(base), format="json"),
        alice_client.patch(f"{WORKERS}/vllm-a", {"gpu_slots": 1}, format="json"),
        alice_client.delete(f"{WORKERS}/vllm-a"),
        alice_client.post(PINS, {"target": versions[0].digest_ref}, format="json"),
    ]
    assert [(r.status_code, _error(r)) for r in attempts] == [(403, "permission_denied")] * 5
    denied = AuditEvent.objects.filter(type="access.denied", outcome="denied", actor_name="alice")
    assert denied.count() == 5
    assert ServingWorker.objects.get().gpu_slots == 8 and not ResidencyPin.objects.exists()


def test_a_namespace_admin_is_not_a_fleet_admin(alice, base):
    NamespaceRole.objects.create(namespace="acme", role="admin", user=alice)
    response = _client_for(alice).post(WORKERS, _body(base), format="json")
    assert (response.status_code, _error(response)) == (403, "permission_denied")


def test_an_admins_scoped_token_cannot_change_the_fleet(carol_client, base):
    token = carol_client.post("/api/v1/auth/tokens", {"name": "fleet", "scopes": ["telemetry"]}, format="json")
    assert token.status_code == 201, token.content
    scoped = APIClient()
    scoped.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['key']}")
    response = _register(scoped, base)
    assert (response.status_code, _error(response)) == (403, "token_scope")
    assert scoped.get(WORKERS).status_code == 200  # it reads what carol reads


# --- Update and remove -----------------------------------------------------------------------------


def test_put_replaces_the_description_and_the_event_shows_what_changed(carol_client, base):
    _register(carol_client, base)
    other = make_base("acme/mistral")
    body = _body(base, engine="sglang", base_versions=[other.digest_ref], gpu_slots=None, gpu_bytes=2**30)
    del body["labels"], body["name"]
    response = carol_client.put(f"{WORKERS}/vllm-a", body, format="json")
    assert response.status_code == 200, response.content
    worker = response.json()
    assert worker["engine"] == "sglang" and worker["gpu_slots"] is None and worker["gpu_bytes"] == 2**30
    assert worker["labels"] == {} and worker["base_versions"] == [other.digest_ref]
    event = AuditEvent.objects.get(type="serving_worker.update")
    assert set(event.after) == {"engine", "gpu_slots", "gpu_bytes", "labels", "base_versions"}
    assert event.before["engine"] == "vllm" and event.after["base_versions"] == [other.digest_ref]


def test_patch_changes_only_what_is_given_and_nothing_is_recorded_for_no_change(carol_client, base):
    _register(carol_client, base)
    response = carol_client.patch(f"{WORKERS}/vllm-a", {"gpu_slots": 16}, format="json")
    assert response.json()["gpu_slots"] == 16 and response.json()["labels"] == {"zone": "eu-1"}
    carol_client.patch(f"{WORKERS}/vllm-a", {"gpu_slots": 16}, format="json")
    assert AuditEvent.objects.filter(type="serving_worker.update").count() == 1


@pytest.mark.parametrize(
    "change, code",
    [
        ({"gpu_slots": None}, "serving_worker_capacity_invalid"),
        ({"engine": "triton"}, "serving_worker_engine_invalid"),
        ({"base_versions": ["acme/missing:v9"]}, "base_not_found"),
    ],
)
def test_a_bad_change_is_refused_and_leaves_the_worker_as_it_was(carol_client, base, change, code):
    _register(carol_client, base)
    response = carol_client.patch(f"{WORKERS}/vllm-a", change, format="json")
    assert (response.status_code, _error(response)) == (400, code)
    worker = ServingWorker.objects.get()
    assert (worker.gpu_slots, worker.engine, list(worker.base_versions.all())) == (8, "vllm", [base])


def test_unknown_workers_are_404(carol_client, db):
    for response in (
        carol_client.get(f"{WORKERS}/nobody"),
        carol_client.patch(f"{WORKERS}/nobody", {"gpu_slots": 1}, format="json"),
        carol_client.delete(f"{WORKERS}/nobody"),
    ):
        assert (response.status_code, _error(response)) == (404, "serving_worker_not_found")


def test_removing_a_worker_removes_its_telemetry_and_pins_and_is_audited(carol_client, base, versions):
    _register(carol_client, base)
    worker = ServingWorker.objects.get()
    now = timezone.now()
    TelemetryWindow.objects.create(
        worker=worker, adapter_version=versions[0], window_start=now - timezone.timedelta(minutes=1), window_end=now,
        requests=3,
    )  # fmt: skip
    ResidencyPin.objects.create(adapter_version=versions[0], worker=worker)
    assert carol_client.delete(f"{WORKERS}/vllm-a").status_code == 204
    assert not ServingWorker.objects.exists() and not TelemetryWindow.objects.exists()
    assert not ResidencyPin.objects.exists()
    event = AuditEvent.objects.get(type="serving_worker.remove")
    assert event.object_id == "vllm-a" and event.before["telemetry_windows"] == 1


# --- Pins ----------------------------------------------------------------------------------------


def test_an_admin_pins_a_version_on_every_worker_and_removes_the_pin(carol_client, alice_client, versions):
    response = carol_client.post(PINS, {"target": versions[0].digest_ref, "reason": "launch"}, format="json")
    assert response.status_code == 201, response.content
    pin = response.json()
    assert pin["target"] == versions[0].digest_ref and pin["worker"] is None and pin["created_by"] == "carol"
    assert [p["id"] for p in alice_client.get(PINS).json()] == [pin["id"]]
    added = AuditEvent.objects.get(type="residency_pin.add")
    assert added.after["target"] == versions[0].digest_ref and added.reason == "launch"
    assert added.namespace == "acme"
    assert carol_client.delete(f"{PINS}/{pin['id']}").status_code == 204
    assert not ResidencyPin.objects.exists()
    assert AuditEvent.objects.get(type="residency_pin.remove").before["target"] == versions[0].digest_ref


def test_an_alias_pin_follows_the_alias(carol_client, carol, versions):
    alias_move(versions[0].adapter, "production", AliasTarget(versions[0]), kind="promote", reason="go", user=carol)
    response = carol_client.post(PINS, {"target": "acme/bot:production"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["target"] == "acme/bot:production" and response.json()["alias"] == "production"
    assert response.json()["adapter_version"] is None


def test_a_pin_on_one_worker_must_be_of_a_base_it_serves(carol_client, base, versions):
    _register(carol_client, base)
    elsewhere = make_adapter_versions(make_base("acme/mistral"), 1, name="acme/other")[0]
    refused = carol_client.post(PINS, {"target": elsewhere.digest_ref, "worker": "vllm-a"}, format="json")
    assert (refused.status_code, _error(refused)) == (400, "pin_base_not_served")
    pinned = carol_client.post(PINS, {"target": versions[1].digest_ref, "worker": "vllm-a"}, format="json")
    assert pinned.status_code == 201 and pinned.json()["worker"] == "vllm-a"
    assert [p["worker"] for p in carol_client.get(PINS, {"worker": "vllm-a"}).json()] == ["vllm-a"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"target": "acme/bot"}, 400, "pin_target_invalid"),
        ({"target": "acme/bot:latest"}, 400, "pin_target_invalid"),
        ({"target": "acme/bot:v99"}, 404, "adapter_not_found"),
        ({"target": "acme/bot:production"}, 404, "alias_not_found"),
        ({"target": "not a ref"}, 400, "invalid_ref"),
        ({"target": "acme/bot:v1", "worker": "nobody"}, 404, "serving_worker_not_found"),
    ],
)
def test_it_refuses_a_bad_pin(carol_client, versions, body, status, code):
    response = carol_client.post(PINS, body, format="json")
    assert (response.status_code, _error(response)) == (status, code), response.content
    assert not ResidencyPin.objects.exists()


def test_the_same_pin_twice_is_a_conflict(carol_client, versions):
    assert carol_client.post(PINS, {"target": versions[0].digest_ref}, format="json").status_code == 201
    again = carol_client.post(PINS, {"target": "acme/bot:v1"}, format="json")
    assert (again.status_code, _error(again)) == (409, "pin_exists")
    assert AuditEvent.objects.filter(type="residency_pin.add").count() == 1


def test_removing_an_unknown_pin_is_404(carol_client, db):
    response = carol_client.delete(f"{PINS}/999")
    assert (response.status_code, _error(response)) == (404, "pin_not_found")


def test_a_viewer_cannot_pin(db, versions):
    vic = _user("vic", "viewer")
    response = _client_for(vic).post(PINS, {"target": versions[0].digest_ref}, format="json")
    assert (response.status_code, _error(response)) == (403, "permission_denied")


@pytest.mark.parametrize("query", ["worker=", "nothing=1"])
def test_pin_filters_are_checked(alice_client, db, query):
    response = alice_client.get(f"{PINS}?{query}")
    assert response.status_code == 400
