"""POST /api/v1/adapters/bulk: many adapters in one request, each judged as a single push would be."""

import json
import os
import struct
import uuid

import pytest
from rest_framework.test import APIClient

from registry.demo import build
from registry.models import Adapter, AdapterFile, AdapterVersion, AuditEvent, Blob, NamespaceRole
from tests.conftest import _client_for, _user
from tests.helpers import directory_files, leftovers, upload
from tests.signing_helpers import key_policy, make_key, sign_with_key

URL = "/api/v1/adapters/bulk"


def fresh_weights(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The same adapter with new random tensor bytes under the same header: new content, same shapes."""
    renewed = []
    for path, data in files:
        if path.endswith(".safetensors"):
            (header_length,) = struct.unpack("<Q", data[:8])
            head = data[: 8 + header_length]
            data = head + os.urandom(len(data) - len(head))
        renewed.append((path, data))
    return renewed


def bulk_body(items: list[dict], files: list[list[tuple[str, bytes]]], signatures=()) -> tuple[bytes, str]:
    """A bulk request as `adapterctl push-many` sends it: the manifest, then every item's files in order
    (an item's "files" defaults to the paths of the parts sent for it)."""
    manifest = [
        {"files": [path for path, _ in item_files], **item} for item, item_files in zip(items, files, strict=True)
    ]
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{json.dumps(manifest)}\r\n'.encode()
    ]
    named = [("file", path, data) for item_files in files for path, data in item_files]
    named += [("signature", "model.sig", bundle) for bundle in signatures]
    for field, path, data in named:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_bulk(client, items, files, **kwargs):
    body, content_type = bulk_body(items, files, **kwargs)
    return client.generic("POST", URL, body, content_type=content_type)


@pytest.fixture
def llama(base):
    """acme/llama:v1, the base the zoo's adapters fit."""
    return base["ref"]


@pytest.fixture
def adapter_files(zoo):
    return directory_files(zoo.adapters["attention"])


def test_it_registers_the_good_items_and_reports_the_bad_ones_with_codes(
    alice, alice_client, llama, adapter_files, tmp_path
):
    wide_dir = build.build_llama_base(tmp_path / "wide", hidden_size=64)  # the zoo's adapters do not fit it
    assert upload(alice_client, "/api/v1/bases/", {"name": "acme/wide"}, directory_files(wide_dir)).status_code == 201
    wide = "acme/wide:v1"
    NamespaceRole.objects.create(namespace="acme", role="engineer", user=_user("dave", "viewer"))
    dave_client = _client_for(alice.__class__.objects.get(username="dave"))
    first, second = fresh_weights(adapter_files), fresh_weights(adapter_files)
    pickled = [
        ("adapter_config.json", dict(adapter_files)["adapter_config.json"]),
        ("adapter_model.bin", b"\x80\x04K\x01."),
    ]
    items = [
        {"name": "acme/one", "base": llama, "provenance": {"dataset_name": "tickets"}},
        {"name": "acme/two", "base": "acme/nope:v1"},
        {"name": "not a name", "base": llama},
        {"name": "other/three", "base": llama},
        {"name": "acme/pickled", "base": llama},
        {"name": "acme/one", "base": llama},
        {"name": "acme/four", "base": wide},
        {"name": "acme/five", "base": llama},
    ]
    files = [first, second, second, second, pickled, first, fresh_weights(adapter_files), second]

    response = post_bulk(dave_client, items, files)

    assert response.status_code == 200, response.content
    body = response.json()
    outcome = [(r["index"], r["status"], r["code"]) for r in body["results"]]
    assert outcome == [
        (0, "created", ""),
        (1, "refused", "base_not_found"),
        (2, "refused", "invalid_name"),
        (3, "refused", "permission_denied"),  # dave may push to acme only
        (4, "refused", "pickle_refused"),
        (5, "existing", ""),
        (6, "created", ""),
        (7, "created", ""),
    ]
    assert (body["created"], body["existing"], body["refused"]) == (3, 1, 4)
    results = body["results"]
    assert results[0]["ref"] == results[5]["ref"] == "acme/one:v1" and results[0]["id"] == results[5]["id"]
    assert results[6]["version_status"] == "rejected"  # registered, but its static check against acme/wide failed
    assert results[3]["message"].startswith("pushing to other needs the")
    version = AdapterVersion.objects.get(id=results[0]["id"])
    assert version.dataset_name == "tickets" and version.created_by.username == "dave"
    assert set(Adapter.objects.values_list("name", flat=True)) == {"one", "four", "five"}


def test_refused_items_leave_nothing_but_their_audit_event(alice_client, llama, adapter_files):
    before = leftovers()
    events_before = AuditEvent.objects.count()
    items = [
        {"name": "acme/a", "base": "acme/nope:v1"},
        {"name": "acme/b", "base": llama, "provenance": {"x": 1}},
        {"name": "acme/c", "base": [llama]},
    ]
    response = post_bulk(alice_client, items, [fresh_weights(adapter_files) for _ in items])

    assert response.json()["refused"] == 3
    assert leftovers() == before  # no Adapter, version, blob rows, no blob files, no temporary files
    assert not AdapterFile.objects.exists() and Blob.objects.count() == before.rows[4]
    refusals = AuditEvent.objects.filter(type="adapter.upload_refused").order_by("seq")
    assert AuditEvent.objects.count() == events_before + 3
    assert [(e.adapter, e.outcome, e.evidence["code"], e.evidence["bulk_index"]) for e in refusals] == [
        ("acme/a", "failed", "base_not_found", 0),
        ("acme/b", "failed", "provenance_invalid", 1),
        ("acme/c", "failed", "validation_error", 2),  # what a single push answers for these fields
    ]
    assert response.json()["results"][2]["message"] == "base: Not a valid string."


def test_each_created_item_records_its_upload_event(alice_client, llama, adapter_files):
    items = [{"name": f"acme/n{i}", "base": llama} for i in range(3)]
    response = post_bulk(alice_client, items, [fresh_weights(adapter_files) for _ in items])

    assert response.json()["created"] == 3
    uploads = AuditEvent.objects.filter(type="adapter.upload").order_by("seq")
    assert [e.adapter for e in uploads] == ["acme/n0", "acme/n1", "acme/n2"]


@pytest.mark.parametrize(
    "manifest, code",
    [
        (None, "manifest_required"),
        ("[{", "manifest_invalid"),
        ("[]", "manifest_invalid"),
        (
            '[{"name": "acme/a", "base": "acme/llama:v1", "files": ["adapter_config.json"], "colour": 1}]',
            "manifest_invalid",
        ),
        ('[{"name": "acme/a", "base": "acme/llama:v1"}]', "manifest_invalid"),
        (json.dumps([{"name": f"acme/a{i}", "base": "b/c:v1", "files": []} for i in range(201)]), "too_many_items"),
    ],
)
def test_a_malformed_request_is_refused_whole(alice_client, llama, manifest, code):
    boundary = uuid.uuid4().hex
    body = f"--{boundary}--\r\n"
    if manifest is not None:
        body = f'--{boundary}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{manifest}\r\n' + body
    before = leftovers()
    response = alice_client.generic(
        "POST", URL, body.encode(), content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert leftovers() == before


def test_parts_that_do_not_match_the_manifest_are_refused_whole(alice_client, llama, adapter_files):
    good = fresh_weights(adapter_files)
    paths = [path for path, _ in good]
    items = [{"name": "acme/a", "base": llama}]
    before = leftovers()
    body, content_type = bulk_body(items, [good])
    renamed = alice_client.generic(
        "POST",
        URL,
        body.replace(b'filename="adapter_config.json"', b'filename="other.json"'),
        content_type=content_type,
    )
    extra = post_bulk(alice_client, [{**items[0], "files": paths[:-1]}], [good])
    missing = post_bulk(alice_client, [{**items[0], "files": [*paths, "README.md"]}], [good])
    unannounced_signature = post_bulk(alice_client, items, [good], signatures=[b"{}"])

    for response in (renamed, extra, missing, unannounced_signature):
        assert response.status_code == 400 and response.json()["error"]["code"] == "bulk_files_mismatch"
    assert leftovers() == before
    assert AuditEvent.objects.filter(type="adapter.upload_refused").count() == 4


def test_a_token_limited_to_one_namespace_registers_there_only(alice_client, llama, adapter_files):
    key = alice_client.post(
        "/api/v1/auth/tokens", {"name": "ci", "scopes": ["push"], "namespaces": ["acme"]}, format="json"
    ).json()["key"]
    items = [{"name": "acme/a", "base": llama}, {"name": "globex/a", "base": llama}]
    response = post_bulk(_token_client(key), items, [fresh_weights(adapter_files), fresh_weights(adapter_files)])
    assert [(r["status"], r["code"]) for r in response.json()["results"]] == [
        ("created", ""),
        ("refused", "token_scope"),
    ]


def _token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_scoped_token_without_push_is_refused(alice, alice_client, llama, adapter_files):
    created = alice_client.post("/api/v1/auth/tokens", {"name": "ci", "scopes": ["promotion.request"]}, format="json")
    assert created.status_code == 201, created.content
    client = _token_client(created.json()["key"])
    response = post_bulk(client, [{"name": "acme/a", "base": llama}], [fresh_weights(adapter_files)])
    assert response.status_code == 403 and response.json()["error"]["code"] == "token_scope"
    assert not Adapter.objects.exists()


def test_signed_items_are_verified_against_the_namespace_policy(alice_client, carol_client, llama, zoo, tmp_path):
    key = make_key(tmp_path / "keys")
    policy = carol_client.put("/api/v1/namespaces/acme/signing-policy", key_policy(key), format="json")
    assert policy.status_code == 200, policy.content
    signed = zoo.copy("adapter-attention", tmp_path / "signed")
    bundle = sign_with_key(signed, key)
    items = [{"name": "acme/signed", "base": llama, "signature": True}, {"name": "acme/unsigned", "base": llama}]

    response = post_bulk(
        alice_client, items, [directory_files(signed), fresh_weights(directory_files(signed))], signatures=[bundle]
    )

    assert [(r["status"], r["code"]) for r in response.json()["results"]] == [
        ("created", ""),
        ("refused", "signature_required"),
    ]
    assert alice_client.get("/api/v1/adapters/acme/signed:v1").json()["signed"] is True
