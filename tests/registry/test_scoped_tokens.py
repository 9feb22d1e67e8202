"""Scoped CI tokens: reads as their user, writes only for their scopes and namespaces, keys never kept.

alice is a global engineer, dave a global approver, carol a global admin (tests/conftest.py,
tests/promotions/conftest.py).
"""

import hashlib
import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.permissions import SAFE_METHODS
from rest_framework.test import APIClient
from rest_framework.views import APIView

from registry import roles
from registry.models import AuditEvent, NamespaceRole, ScopedToken
from tests.conftest import _client_for, _user
from tests.helpers import directory_files, upload
from tests.promotions.conftest import pass_checks, push


@pytest.fixture
def dave(db):
    return _user("dave", roles.APPROVER)


def _create(client, **body):
    response = client.post("/api/v1/auth/tokens", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _error(response) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def acme_ready(alice_client, zoo):
    """acme/llama:v1 and globex/llama:v1; acme/bot:v1 and globex/bot:v1 ready (pushed by alice)."""
    for namespace in ("acme", "globex"):
        base = upload(alice_client, "/api/v1/bases/", {"name": f"{namespace}/llama"}, directory_files(zoo.llama))
        assert base.status_code == 201
        pass_checks(push(alice_client, zoo, "attention", name=f"{namespace}/bot", base=f"{namespace}/llama:v1")["id"])


def _push(client, zoo, name: str, key: str = "dora"):
    namespace = name.split("/")[0]
    return upload(
        client, "/api/v1/adapters/", {"name": name, "base": f"{namespace}/llama:v1"}, directory_files(zoo.adapters[key])
    )


def _promote(client, ref: str, alias: str = "production"):
    return client.post("/api/v1/promotions", {"version": ref, "alias": alias, "reason": "ci"}, format="json")


# --- Creating: the key is answered once and never kept ------------------------------------------


def test_the_key_is_answered_once_and_stored_only_as_its_hash(alice_client, alice, caplog):
    caplog.set_level(logging.DEBUG)
    created = _create(alice_client, name="ci", scopes=["push"], namespaces=["acme"], expires_in_days=30)
    key = created["key"]
    assert key.startswith("arci_") and len(key) > 40
    assert created["scopes"] == ["push"] and created["namespaces"] == ["acme"] and created["state"] == "active"
    row = ScopedToken.objects.get(id=created["id"])
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert all(key not in str(value) for value in row.__dict__.values())
    assert abs((row.expires_at - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)

    listed = alice_client.get("/api/v1/auth/tokens").json()
    assert [t["name"] for t in listed] == ["ci"] and "key" not in listed[0]
    assert listed[0]["key_prefix"] == key[:9]

    _token_client(key).get("/api/v1/adapters/")
    issued = AuditEvent.objects.get(type="token.issue", object_id=f"arci:{row.id}:ci")
    assert issued.after["scopes"] == ["push"] and issued.after["user"] == "alice"
    assert not AuditEvent.objects.filter(body__contains=key[5:]).exists()
    assert key[5:] not in caplog.text


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"name": "ci", "scopes": ["approve"]}, 400, "validation_error"),
        ({"name": "has space"}, 400, "validation_error"),
        ({"name": "ci", "namespaces": ["-bad"]}, 400, "validation_error"),
        ({"name": "ci", "expires_in_days": 0}, 400, "validation_error"),
        ({"name": "ci", "scopes": ["promotion.request"], "namespaces": ["globex"]}, 403, "permission_denied"),
    ],
)
def test_a_bad_token_request_is_refused_with_a_code(db, body, status, code):
    nina = User.objects.create_user("nina", password="nina-password")
    NamespaceRole.objects.create(namespace="acme", role=roles.ENGINEER, user=nina)
    response = _client_for(nina).post("/api/v1/auth/tokens", body, format="json")
    assert (response.status_code, _error(response)) == (status, code), response.content


def test_a_name_is_unique_among_a_users_live_tokens(alice_client):
    first = _create(alice_client, name="ci", scopes=["push"])
    taken = alice_client.post("/api/v1/auth/tokens", {"name": "ci"}, format="json")
    assert (taken.status_code, _error(taken)) == (409, "token_name_taken")
    assert alice_client.delete(f"/api/v1/auth/tokens/{first['id']}").status_code == 200
    assert _create(alice_client, name="ci")["scopes"] == []


# --- Using one: reads open, writes only for its scopes and namespaces -----------------------


def test_a_push_token_pushes_to_its_namespace_only_and_reads_everything(alice_client, acme_ready, zoo):
    token = _create(alice_client, name="ci", scopes=["push"], namespaces=["acme"])
    ci = _token_client(token["key"])
    pushed = _push(ci, zoo, "acme/bot")
    assert pushed.status_code == 201, pushed.content
    upload_event = AuditEvent.objects.get(type="adapter.upload", adapter="acme/bot", object_id=pushed.json()["id"])
    assert (upload_event.actor_kind, upload_event.actor_name) == ("token", "alice")
    assert upload_event.token_id == f"arci:{token['id']}:ci"

    elsewhere = _push(ci, zoo, "globex/bot")
    assert (elsewhere.status_code, _error(elsewhere)) == (403, "token_scope")
    assert "acme" in elsewhere.json()["error"]["message"]

    assert ci.get("/api/v1/adapters/?namespace=globex").status_code == 200
    assert ci.get("/api/v1/adapters/globex/bot:v1").status_code == 200
    assert ci.get("/api/v1/promotions").status_code == 200
    assert ci.get("/api/v1/namespaces/globex/signing-policy").status_code == 200


def test_a_push_token_cannot_request_promotions_nor_approve_nor_set_policies(alice_client, acme_ready):
    ci = _token_client(_create(alice_client, name="ci", scopes=["push"])["key"])
    refused = _promote(ci, "acme/bot:v1")
    assert (refused.status_code, _error(refused)) == (403, "token_scope")
    assert "'promotion.request'" in refused.json()["error"]["message"]
    for path, body in (
        ("/api/v1/auth/tokens", {"name": "minted"}),
        ("/api/v1/auth/token/rotate", {}),
        ("/api/v1/audit/exports", {}),
        ("/api/v1/namespaces/acme/roles", {"role": "viewer", "user": "alice"}),
    ):
        response = ci.post(path, body, format="json")
        assert (response.status_code, _error(response)) == (403, "token_scope"), path
    policy = ci.put("/api/v1/namespaces/acme/signing-policy", {"require_signature": False}, format="json")
    assert (policy.status_code, _error(policy)) == (403, "token_scope")
    assert AuditEvent.objects.filter(type="access.denied", token_id__startswith="arci:").exists()


def test_a_request_token_requests_in_its_namespace_and_never_approves(alice_client, dave, acme_ready):
    ci = _token_client(_create(alice_client, name="ci", scopes=["promotion.request"], namespaces=["acme"])["key"])
    requested = _promote(ci, "acme/bot:v1")
    assert requested.status_code == 201, requested.content
    assert requested.json()["requested_by"] == "alice"
    elsewhere = _promote(ci, "globex/bot:v1")
    assert (elsewhere.status_code, _error(elsewhere)) == (403, "token_scope")
    pushed = ci.post("/api/v1/adapters/", {}, format="multipart")
    assert (pushed.status_code, _error(pushed)) == (403, "token_scope")

    # An approver's own token with every scope still cannot approve, reject or roll back.
    dave_client = _client_for(dave)
    dave_token = _create(dave_client, name="ci", scopes=["push", "promotion.request"])
    dave_ci = _token_client(dave_token["key"])
    promotion = requested.json()["id"]
    for path in (f"/api/v1/promotions/{promotion}/approve", f"/api/v1/promotions/{promotion}/reject"):
        response = dave_ci.post(path, {"reason": "ci", "comment": "ci"}, format="json")
        assert (response.status_code, _error(response)) == (403, "token_scope"), path
    rollback = dave_ci.post("/api/v1/adapters/acme/bot/aliases/production/rollback", {"reason": "x"}, format="json")
    assert (rollback.status_code, _error(rollback)) == (403, "token_scope")
    assert dave_client.post(f"/api/v1/promotions/{promotion}/approve", {}, format="json").status_code == 200


def test_an_admins_token_cannot_override_gates(carol, acme_ready):
    admin_ci = _token_client(_create(_client_for(carol), name="ci", scopes=["promotion.request"])["key"])
    response = admin_ci.post(
        "/api/v1/promotions",
        {"version": "acme/bot:v1", "alias": "production", "reason": "ci", "override_reason": "trust me"},
        format="json",
    )
    assert (response.status_code, _error(response)) == (403, "permission_denied")


def test_a_token_does_no_more_than_its_user(db, acme_ready):
    viewer = User.objects.create_user("vic", password="vic-password")
    token = _create(_client_for(viewer), name="ci", scopes=["push"])  # no namespaces: wherever vic may push
    refused = _token_client(token["key"]).post("/api/v1/bases/", {}, format="multipart")
    assert (refused.status_code, _error(refused)) == (403, "permission_denied")


# --- Revoked, expired, used ------------------------------------------------------------------


def test_revoked_and_expired_tokens_answer_401_with_their_code(alice_client, carol, alice):
    revoked = _create(alice_client, name="revoked", scopes=["push"])
    expired = _create(alice_client, name="expired", scopes=["push"], expires_in_days=1)
    answer = alice_client.delete(f"/api/v1/auth/tokens/{revoked['id']}")
    assert answer.status_code == 200 and answer.json()["state"] == "revoked"
    assert alice_client.delete(f"/api/v1/auth/tokens/{revoked['id']}").status_code == 200  # again: no change
    assert AuditEvent.objects.filter(type="token.revoke", object_id=f"arci:{revoked['id']}:revoked").count() == 1
    ScopedToken.objects.filter(id=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    for key, code in ((revoked["key"], "token_revoked"), (expired["key"], "token_expired")):
        response = _token_client(key).get("/api/v1/adapters/")
        assert (response.status_code, _error(response)) == (401, code)
        assert response["WWW-Authenticate"] == "Token"
    unknown = _token_client("arci_" + "x" * 43).get("/api/v1/adapters/")
    assert (unknown.status_code, _error(unknown)) == (401, "authentication_failed")
    assert alice_client.get("/api/v1/auth/tokens").json()[0]["state"] in ("expired", "revoked")


def test_last_used_is_written_at_most_once_a_minute(alice_client):
    token = _create(alice_client, name="ci")
    ci = _token_client(token["key"])
    ci.get("/api/v1/adapters/")
    first = ScopedToken.objects.get(id=token["id"]).last_used_at
    assert first is not None
    ci.get("/api/v1/adapters/")
    assert ScopedToken.objects.get(id=token["id"]).last_used_at == first
    ScopedToken.objects.filter(id=token["id"]).update(last_used_at=first - timedelta(minutes=2))
    ci.get("/api/v1/adapters/")
    assert ScopedToken.objects.get(id=token["id"]).last_used_at > first


def test_tokens_are_listed_and_revoked_by_their_owner_or_an_admin(alice_client, alice, carol, dave):
    token = _create(alice_client, name="ci", scopes=["push"])
    dave_client = _client_for(dave)
    assert dave_client.get("/api/v1/auth/tokens").json() == []
    refused = dave_client.get("/api/v1/auth/tokens?user=alice")
    assert (refused.status_code, _error(refused)) == (403, "permission_denied")
    assert dave_client.delete(f"/api/v1/auth/tokens/{token['id']}").status_code == 404
    carol_client = _client_for(carol)
    assert [t["id"] for t in carol_client.get("/api/v1/auth/tokens?user=alice").json()] == [token["id"]]
    assert carol_client.delete(f"/api/v1/auth/tokens/{token['id']}").status_code == 200
    event = AuditEvent.objects.get(type="token.revoke", object_id=f"arci:{token['id']}:ci")
    assert event.actor_name == "carol"


# --- Every write applies the token's scope ----------------------------------------------------


def _views(resolver=None):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern)
        elif isinstance(pattern, URLPattern) and getattr(pattern.callback, "view_class", None):
            yield str(pattern.pattern), pattern.callback.view_class


def test_every_api_view_that_writes_applies_the_token_scope():
    unguarded = []
    for route, view_class in _views():
        if not issubclass(view_class, APIView) or view_class.authentication_classes == []:
            continue
        writes = [m for m in view_class.http_method_names if m.upper() not in SAFE_METHODS and hasattr(view_class, m)]
        applies = any(getattr(p, "applies_token_scope", False) for p in view_class.permission_classes)
        if writes and not applies and writes != ["options"]:
            unguarded.append(route)
    assert unguarded == []


def test_the_views_a_token_may_write_to_declare_their_scope():
    declared = {view.__name__: view.required_scope for _, view in _views() if getattr(view, "required_scope", None)}
    assert declared == {
        "BaseVersionListView": roles.SCOPE_PUSH,
        "AdapterVersionListView": roles.SCOPE_PUSH,
        "AdapterBulkView": roles.SCOPE_PUSH,
        "AdapterEvaluateView": roles.SCOPE_PUSH,
        "AdapterSignaturesView": roles.SCOPE_PUSH,
        "SuiteListView": roles.SCOPE_PUSH,
        "SuiteAttachView": roles.SCOPE_PUSH,
        "PromotionListView": roles.SCOPE_PROMOTION_REQUEST,
        "TelemetryView": roles.SCOPE_TELEMETRY,
    }


# --- adapterctl token ----------------------------------------------------------------------------


def test_adapterctl_creates_lists_and_revokes_a_scoped_token(live_server, alice):
    personal = Token.objects.create(user=alice).key

    def run(*args, token=personal):
        env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, env=env, timeout=120
        )

    created = run("token", "create", "--name", "ci", "--scope", "push", "--namespace", "acme", "--expires-days", "7")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()  # only the key on stdout, so KEY=$(adapterctl token create ...) works
    assert key.startswith("arci_") and "\n" not in key
    assert "push in acme" in created.stderr and "not shown again" in created.stderr

    assert run("ls", token=key).returncode == 0  # reads as alice
    listed = run("token", "list")
    assert listed.returncode == 0 and " ci " in listed.stdout and "acme" in listed.stdout and key not in listed.stdout
    token_id = json.loads(run("--json", "token", "list").stdout)[0]["id"]

    minted = run("token", "create", "--name", "other", token=key)
    assert minted.returncode == 1 and "token_scope" in minted.stderr

    revoked = run("token", "revoke", str(token_id))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    refused = run("ls", token=key)
    assert refused.returncode == 1 and "token_revoked" in refused.stderr
