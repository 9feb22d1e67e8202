"""Roles granted on namespaces: writes are scoped to the namespace, reads stay open, grants are audited.

nina has no global role: engineer in acme only. pat has none either: approver in acme only.
alice is a global engineer, carol a global admin (tests/conftest.py).
"""

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from registry import roles
from registry.models import AuditEvent, NamespaceRole
from tests.conftest import _client_for
from tests.helpers import directory_files, upload
from tests.promotions.conftest import pass_checks, push


def _plain_user(username: str) -> User:
    return User.objects.create_user(username=username, password=f"{username}-password")


def _grant(namespace: str, role: str, user=None, group=None) -> NamespaceRole:
    return NamespaceRole.objects.create(namespace=namespace, role=role, user=user, group=group)


@pytest.fixture
def nina(db):
    user = _plain_user("nina")
    _grant("acme", roles.ENGINEER, user=user)
    return user


@pytest.fixture
def nina_client(nina):
    return _client_for(nina)


@pytest.fixture
def pat(db):
    user = _plain_user("pat")
    _grant("acme", roles.APPROVER, user=user)
    return user


@pytest.fixture
def bases(alice_client, zoo):
    """acme/llama:v1 and globex/llama:v1, pushed by alice (a global engineer)."""
    for namespace in ("acme", "globex"):
        response = upload(alice_client, "/api/v1/bases/", {"name": f"{namespace}/llama"}, directory_files(zoo.llama))
        assert response.status_code == 201, response.content


def _push(client, zoo, name: str, base: str):
    return upload(client, "/api/v1/adapters/", {"name": name, "base": base}, directory_files(zoo.adapters["attention"]))


def _error(response) -> str:
    return response.json()["error"]["code"]


# --- Roles in a namespace --------------------------------------------------------------------


def test_roles_in_a_namespace_are_global_roles_and_grants_to_the_user_or_their_groups(nina, alice):
    team = Group.objects.create(name="ml-team")
    nina.groups.add(team)
    _grant("globex", roles.APPROVER, group=team)
    assert roles.roles_of(nina) == set()
    assert roles.roles_in(nina, "acme") == {roles.ENGINEER}
    assert roles.roles_in(nina, "globex") == {roles.APPROVER}
    assert roles.roles_in(nina, "initech") == set()
    assert roles.roles_in(alice, "initech") == {roles.ENGINEER}  # global roles hold everywhere
    root = User.objects.create_superuser("root", password="root-password")
    assert roles.is_admin(root, "acme") and roles.is_admin(root)


def test_a_grant_made_after_roles_were_read_is_seen_at_once(nina):
    assert not roles.can_decide_promotion(nina, "acme")
    grant = _grant("acme", roles.APPROVER, user=nina)
    assert roles.can_decide_promotion(nina, "acme")
    grant.delete()
    assert not roles.can_decide_promotion(nina, "acme")


def test_roles_are_read_with_one_query_however_many_namespaces_are_asked_about(nina):
    for number in range(20):
        _grant(f"ns{number}", roles.VIEWER, user=nina)
    user = User.objects.get(pk=nina.pk)
    with CaptureQueriesContext(connection) as queries:
        for number in range(20):
            roles.roles_in(user, f"ns{number}")
            roles.can_push(user, f"ns{number}")
    assert len(queries) == 1  # groups and grants together
    assert roles.roles_in(user, "ns3") == {roles.VIEWER}


def test_the_viewer_role_is_a_group_like_the_others(db):
    assert set(Group.objects.filter(name__in=roles.ROLES).values_list("name", flat=True)) == set(roles.ROLES)


# --- Writes are scoped to the namespace; reads are open ---------------------------------------


def test_an_engineer_in_acme_pushes_to_acme_and_not_to_globex_and_reads_both(nina_client, bases, zoo):
    assert _push(nina_client, zoo, "acme/bot", "acme/llama:v1").status_code == 201
    refused = _push(nina_client, zoo, "globex/bot", "globex/llama:v1")
    assert refused.status_code == 403 and _error(refused) == "permission_denied"
    assert "globex" in refused.json()["error"]["message"]
    base = upload(nina_client, "/api/v1/bases/", {"name": "globex/other"}, directory_files(zoo.llama))
    assert base.status_code == 403 and _error(base) == "permission_denied"
    for namespace in ("acme", "globex"):
        listed = nina_client.get(f"/api/v1/bases/?namespace={namespace}")
        assert listed.status_code == 200 and len(listed.json()["results"]) == 1
        assert nina_client.get(f"/api/v1/bases/{namespace}/llama:v1").status_code == 200
    assert AuditEvent.objects.filter(type="access.denied", actor_name="nina").exists()


def test_a_user_without_any_push_role_is_refused_before_the_upload_is_read(db, bases, zoo):
    viewer = _plain_user("vic")
    _grant("acme", roles.VIEWER, user=viewer)
    refused = _push(_client_for(viewer), zoo, "acme/bot", "acme/llama:v1")
    assert refused.status_code == 403 and _error(refused) == "permission_denied"


def test_a_group_grant_lets_its_members_push_there(db, bases, zoo):
    team = Group.objects.create(name="ml-team")
    _grant("globex", roles.ENGINEER, group=team)
    member = _plain_user("max")
    member.groups.add(team)
    assert _push(_client_for(member), zoo, "globex/bot", "globex/llama:v1").status_code == 201


def test_suites_evaluations_and_attachments_follow_the_namespace(nina_client, alice_client, bases, zoo):
    suite_file = [("suite.jsonl", b'{"text": "hello"}\n')]
    assert (
        upload(
            nina_client, "/api/v1/suites/", {"name": "acme/corpus", "task_type": "causal_lm"}, suite_file
        ).status_code
        == 201
    )
    refused = upload(nina_client, "/api/v1/suites/", {"name": "globex/corpus", "task_type": "causal_lm"}, suite_file)
    assert refused.status_code == 403
    assert _push(alice_client, zoo, "globex/bot", "globex/llama:v1").status_code == 201
    evaluate = nina_client.post("/api/v1/adapters/globex/bot:v1/evaluations", {"suite": "acme/corpus"}, format="json")
    assert evaluate.status_code == 403 and _error(evaluate) == "permission_denied"
    attach = nina_client.post("/api/v1/suites/acme/corpus/attach", {"adapter": "globex/bot"}, format="json")
    assert attach.status_code == 403 and _error(attach) == "permission_denied"
    assert _push(nina_client, zoo, "acme/bot", "acme/llama:v1").status_code == 201
    evaluate = nina_client.post("/api/v1/adapters/acme/bot:v1/evaluations", {"suite": "acme/corpus"}, format="json")
    assert evaluate.status_code == 202, evaluate.content
    attach = nina_client.post("/api/v1/suites/acme/corpus/attach", {"adapter": "acme/bot"}, format="json")
    assert attach.status_code == 200, attach.content


def test_an_approver_in_acme_approves_acme_promotions_and_not_globex_ones(pat, alice_client, bases, zoo):
    for namespace in ("acme", "globex"):
        pass_checks(push(alice_client, zoo, "attention", name=f"{namespace}/bot", base=f"{namespace}/llama:v1")["id"])
    requests = {}
    for namespace in ("acme", "globex"):
        response = alice_client.post(
            "/api/v1/promotions", {"version": f"{namespace}/bot:v1", "alias": "production", "reason": "ship"},
            format="json",
        )  # fmt: skip
        assert response.status_code == 201 and response.json()["state"] == "pending", response.content
        requests[namespace] = response.json()["id"]
    pat_client = _client_for(pat)
    refused = pat_client.post(f"/api/v1/promotions/{requests['globex']}/approve", {}, format="json")
    assert refused.status_code == 403 and _error(refused) == "permission_denied"
    refused = pat_client.post(f"/api/v1/promotions/{requests['globex']}/reject", {"reason": "no"}, format="json")
    assert refused.status_code == 403
    approved = pat_client.post(f"/api/v1/promotions/{requests['acme']}/approve", {"comment": "ok"}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["approvals"][0]["by"] == "pat"
    # Requests need engineer, approver or admin in the namespace: pat may ask in acme, not in globex.
    asked = pat_client.post(
        "/api/v1/promotions", {"version": "globex/bot:v1", "alias": "staging", "reason": "try"}, format="json"
    )
    assert asked.status_code == 403 and _error(asked) == "permission_denied"


def test_a_namespace_admin_sets_its_signing_and_promotion_policies_and_no_other(db):
    boss = _plain_user("boss")
    _grant("acme", roles.ADMIN, user=boss)
    client = _client_for(boss)
    document = {"require_signature": False}
    assert client.put("/api/v1/namespaces/acme/signing-policy", document, format="json").status_code == 200
    refused = client.put("/api/v1/namespaces/globex/signing-policy", document, format="json")
    assert refused.status_code == 403 and _error(refused) == "permission_denied"
    policy = {"approvals": 2}
    assert client.put("/api/v1/namespaces/acme/promotion-policy/production", policy, format="json").status_code == 200
    refused = client.put("/api/v1/namespaces/globex/promotion-policy/production", policy, format="json")
    assert refused.status_code == 403
    assert client.get("/api/v1/namespaces/globex/signing-policy").status_code == 200


# --- Granting through the API and the admin, audited --------------------------------------------


def test_an_admin_grants_and_revokes_through_the_api_and_both_are_audited(carol, nina):
    client = _client_for(carol)
    granted = client.post("/api/v1/namespaces/globex/roles", {"role": "engineer", "user": "nina"}, format="json")
    assert granted.status_code == 201, granted.content
    body = granted.json()
    assert (body["namespace"], body["role"], body["user"], body["group"], body["created_by"]) == (
        "globex", "engineer", "nina", None, "carol",
    )  # fmt: skip
    again = client.post("/api/v1/namespaces/globex/roles", {"role": "engineer", "user": "nina"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    event = AuditEvent.objects.get(type="role.grant", namespace="globex")
    assert event.actor_name == "carol" and event.object_id == str(body["id"])
    assert event.after == {"namespace": "globex", "role": "engineer", "subject": "user:nina"}
    assert roles.can_push(User.objects.get(pk=nina.pk), "globex")

    listed = _client_for(nina).get("/api/v1/namespaces/globex/roles")  # reads are open
    assert listed.status_code == 200 and [g["user"] for g in listed.json()] == ["nina"]

    revoked = client.delete(f"/api/v1/namespaces/globex/roles/{body['id']}")
    assert revoked.status_code == 204
    event = AuditEvent.objects.get(type="role.revoke", namespace="globex")
    assert event.before == {"namespace": "globex", "role": "engineer", "subject": "user:nina"}
    assert not roles.can_push(User.objects.get(pk=nina.pk), "globex")
    assert client.delete(f"/api/v1/namespaces/globex/roles/{body['id']}").status_code == 404


def test_a_namespace_admin_grants_in_its_namespace_only(db, nina):
    boss = _plain_user("boss")
    _grant("acme", roles.ADMIN, user=boss)
    team = Group.objects.create(name="ml-team")
    client = _client_for(boss)
    assert (
        client.post(
            "/api/v1/namespaces/acme/roles", {"role": "approver", "group": "ml-team"}, format="json"
        ).status_code
        == 201
    )
    refused = client.post("/api/v1/namespaces/globex/roles", {"role": "approver", "user": "nina"}, format="json")
    assert refused.status_code == 403 and _error(refused) == "permission_denied"
    engineer_refused = _client_for(nina).post(
        "/api/v1/namespaces/acme/roles", {"role": "admin", "user": "nina"}, format="json"
    )
    assert engineer_refused.status_code == 403
    assert NamespaceRole.objects.filter(group=team, namespace="acme", role="approver").exists()


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"role": "auditor", "user": "nina"}, 400, "validation_error"),
        ({"role": "engineer"}, 400, "grant_subject_invalid"),
        ({"role": "engineer", "user": "nina", "group": "ml-team"}, 400, "grant_subject_invalid"),
        ({"role": "engineer", "user": "nobody"}, 404, "user_not_found"),
        ({"role": "engineer", "group": "nobody"}, 404, "group_not_found"),
    ],
)
def test_a_bad_grant_is_refused_with_a_code(carol, nina, body, status, code):
    response = _client_for(carol).post("/api/v1/namespaces/acme/roles", body, format="json")
    assert (response.status_code, _error(response)) == (status, code)


def test_a_bad_namespace_is_refused(carol):
    response = _client_for(carol).get("/api/v1/namespaces/-bad/roles")
    assert (response.status_code, _error(response)) == (400, "namespace_invalid")


def test_grants_made_and_deleted_in_the_admin_are_audited(db, nina, client):
    root = User.objects.create_superuser("root", password="root-password")
    client.force_login(root)
    added = client.post(
        "/admin/registry/namespacerole/add/", {"namespace": "initech", "role": "approver", "user": nina.pk, "group": ""}
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    grant = NamespaceRole.objects.get(namespace="initech")
    assert grant.created_by == root
    event = AuditEvent.objects.get(type="role.grant", namespace="initech")
    assert event.actor_name == "root" and event.after["subject"] == "user:nina"

    invalid = client.post("/admin/registry/namespacerole/add/", {"namespace": "initech", "role": "viewer"})
    assert invalid.status_code == 200 and NamespaceRole.objects.filter(namespace="initech").count() == 1

    deleted = client.post(f"/admin/registry/namespacerole/{grant.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert AuditEvent.objects.filter(type="role.revoke", namespace="initech", actor_name="root").count() == 1


def test_deleting_a_user_revokes_their_grants_in_the_trail(nina):
    nina.delete()
    assert AuditEvent.objects.filter(type="role.revoke", namespace="acme").count() == 1


# --- The UI ------------------------------------------------------------------------------------


def test_the_menu_shows_namespace_roles_and_list_pages_do_not_query_per_grant(nina, client):
    client.force_login(nina)
    with CaptureQueriesContext(connection) as few:
        page = client.get("/adapters/")
    assert page.status_code == 200 and "engineer in acme" in page.content.decode()
    for number in range(30):
        _grant(f"team{number}", roles.ENGINEER, user=nina)
    team = Group.objects.create(name="ml-team")
    nina.groups.add(team)
    for number in range(30):
        _grant(f"group{number}", roles.APPROVER, group=team)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/adapters/")
    assert page.status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_the_signing_policy_page_lets_a_namespace_admin_edit_their_namespace_only(db, client):
    boss = _plain_user("boss")
    _grant("acme", roles.ADMIN, user=boss)
    client.force_login(boss)
    assert client.post("/namespaces/acme/signing-policy", {"document": "{}", "reason": "r"}).status_code == 302
    assert client.post("/namespaces/globex/signing-policy", {"document": "{}", "reason": "r"}).status_code == 403


def test_anonymous_requests_still_need_a_login(db):
    assert APIClient().get("/api/v1/namespaces/acme/roles").status_code == 401
