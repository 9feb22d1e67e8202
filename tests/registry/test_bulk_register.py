"""POST /api/v1/adapters/bulk: many adapters in one request, each judged as a single push would be."""

import hashlib
import json
import os
import struct
import threading
import uuid
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from registry.audit.services import audit_chain_verify
from registry.demo import build
from registry.models import Adapter, AdapterFile, AdapterVersion, AuditEvent, Blob, Job, NamespaceRole
from registry.services.bulk import BulkItem, adapter_versions_bulk_ingest
from registry.services.ingest import base_model_version_ingest
from registry.uploads import incoming_from_directory
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


# --- The batch write: the same outcome as single pushes, a fixed number of statements ---------------


def adapter_trail(name: str) -> list:
    """An adapter's audit events (the version's and its jobs'), with its name made neutral, to compare
    a bulk-registered version's trail with a single push's."""
    events = AuditEvent.objects.filter(adapter=name).order_by("seq")
    return [
        json.loads(
            json.dumps([e.type, e.object_type, e.object_digest, e.before, e.after, e.reason, e.outcome]).replace(
                name, "NAME"
            )
        )
        for e in events
    ]


def test_a_bulk_registered_version_has_the_trail_rows_and_jobs_of_a_single_push(
    alice_client, llama, adapter_files, tmp_path, django_capture_on_commit_callbacks
):
    wide_dir = build.build_llama_base(tmp_path / "wide", hidden_size=64)
    assert upload(alice_client, "/api/v1/bases/", {"name": "acme/wide"}, directory_files(wide_dir)).status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        for name, base in (("acme/single", llama), ("acme/single-misfit", "acme/wide:v1")):
            pushed = upload(alice_client, "/api/v1/adapters/", {"name": name, "base": base}, adapter_files)
            assert pushed.status_code == 201, pushed.content
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        items = [{"name": "acme/bulk", "base": llama}, {"name": "acme/bulk-misfit", "base": "acme/wide:v1"}]
        response = post_bulk(alice_client, items, [adapter_files, adapter_files])
    assert [r["version_status"] for r in response.json()["results"]] == ["checking", "rejected"]
    assert len(callbacks) == 1  # one dispatch for the batch's jobs

    for single, bulk in (("acme/single", "acme/bulk"), ("acme/single-misfit", "acme/bulk-misfit")):
        assert adapter_trail(bulk) == adapter_trail(single)
        one, other = (
            AdapterVersion.objects.get(adapter__namespace="acme", adapter__name=n.split("/")[1]) for n in (single, bulk)
        )
        fields = ("number", "digest", "status", "status_reason", "total_bytes", "parameter_count", "peft_type", "r",
                  "lora_alpha", "target_modules", "config", "resolved_patterns", "tensor_count", "dtypes", "card",
                  "base_version_id", "created_by_id", "namespace")  # fmt: skip
        assert [getattr(other, f) for f in fields] == [getattr(one, f) for f in fields]
        assert list(other.files.values_list("path", "blob_id", "size")) == list(
            one.files.values_list("path", "blob_id", "size")
        )
        assert list(other.checks.values_list("kind", "verdict", "reasons", "details")) == list(
            one.checks.values_list("kind", "verdict", "reasons", "details")
        )
        assert list(other.jobs.values_list("kind", "state", "queue", "dispatch_attempts")) == list(
            one.jobs.values_list("kind", "state", "queue", "dispatch_attempts")
        )
    assert [event[0] for event in adapter_trail("acme/bulk")] == [
        "adapter.upload",
        "check.static",
        "version.status",
        "job.dispatch",
    ]
    assert AdapterVersion.objects.get(adapter__name="bulk").jobs.get().dispatched_at is not None
    audit_chain_verify()


def bulk_statements(client, names, files, capture_on_commit) -> int:
    """The statements of one bulk request, token to the dispatch of its jobs after commit."""
    items = [{"name": name, "base": "acme/llama:v1"} for name in names]
    with CaptureQueriesContext(connection) as queries, capture_on_commit(execute=True) as callbacks:
        response = post_bulk(client, items, [fresh_weights(files) for _ in items])
    assert response.json()["created"] == len(items), response.content
    assert len(callbacks) == 1
    return len(queries)


BULK_STATEMENTS = (
    29  # a batch's statements, token to dispatch, whatever its size (a single push takes 41); raise only with a reason
)


def test_a_batch_takes_the_same_few_statements_whatever_its_size(
    alice_client, llama, adapter_files, django_capture_on_commit_callbacks
):
    count = partial(
        bulk_statements, alice_client, files=adapter_files, capture_on_commit=django_capture_on_commit_callbacks
    )
    ten = count([f"acme/ten-{i}" for i in range(10)])
    fifty = count([f"acme/fifty-{i}" for i in range(50)])
    # New versions of names that exist: their rows are locked, not created.
    again = count([f"acme/fifty-{i}" for i in range(50)])
    assert ten <= BULK_STATEMENTS, (ten, fifty, again)
    assert fifty == ten and again <= ten
    assert Job.objects.filter(dispatched_at__isnull=True).count() == 0  # every job sent, its dispatch recorded
    assert AuditEvent.objects.filter(type="job.dispatch").count() == 110
    audit_chain_verify()


def test_versions_are_numbered_per_name_and_repeated_content_is_found_in_the_batch(
    alice_client, llama, adapter_files, tmp_path
):
    wide_dir = build.build_llama_base(tmp_path / "wide", hidden_size=64)
    assert upload(alice_client, "/api/v1/bases/", {"name": "acme/wide"}, directory_files(wide_dir)).status_code == 201
    first, second, third = (fresh_weights(adapter_files) for _ in range(3))
    pushed = upload(alice_client, "/api/v1/adapters/", {"name": "acme/x", "base": llama}, first)
    assert pushed.status_code == 201
    items = [
        {"name": "acme/x", "base": llama},  # v2
        {"name": "acme/x", "base": llama},  # the same files as v1: existing
        {"name": "acme/x", "base": "acme/wide:v1"},  # v1's files on another base: refused
        {"name": "acme/y", "base": llama},  # the same files as acme/x:v2, another name: created
        {"name": "acme/x", "base": llama},  # the same files as this batch's v2: existing
        {"name": "acme/x", "base": "acme/wide:v1"},  # v2's files (this batch) on another base: refused
        {"name": "acme/x", "base": llama},  # v3
    ]
    before = AdapterFile.objects.count()

    response = post_bulk(alice_client, items, [second, first, first, second, second, second, third])

    outcome = [(r["status"], r["ref"], r["code"]) for r in response.json()["results"]]
    assert outcome == [
        ("created", "acme/x:v2", ""),
        ("existing", "acme/x:v1", ""),
        ("refused", "", "adapter_lineage_conflict"),
        ("created", "acme/y:v1", ""),
        ("existing", "acme/x:v2", ""),
        ("refused", "", "adapter_lineage_conflict"),
        ("created", "acme/x:v3", ""),
    ]
    assert response.json()["results"][5]["message"].startswith(
        "these files are already acme/x:v2, recorded on base acme/llama:v1"
    )
    assert AdapterFile.objects.count() == before + 3 * len(adapter_files)  # three versions created
    refused = AuditEvent.objects.filter(type="adapter.upload_refused").order_by("seq")
    assert [(e.evidence["bulk_index"], e.evidence["code"]) for e in refused] == [
        (2, "adapter_lineage_conflict"),
        (5, "adapter_lineage_conflict"),
    ]
    audit_chain_verify()


def test_bulk_registered_versions_carry_their_adapters_name_for_the_search(alice_client, llama, adapter_files):
    items = [{"name": "acme/support-bot", "base": llama}, {"name": "team/Support-Router", "base": llama}]
    response = post_bulk(alice_client, items, [fresh_weights(adapter_files) for _ in items])

    assert [r["status"] for r in response.json()["results"]] == ["created", "created"]
    copies = AdapterVersion.objects.values_list("namespace", "name")
    assert set(copies) == {("acme", "support-bot"), ("team", "Support-Router")}  # set by the database


def test_an_item_whose_parent_comes_earlier_in_the_batch_finds_it(alice_client, llama, adapter_files):
    items = [
        {"name": "acme/parent", "base": llama},
        {"name": "acme/child", "base": llama, "parent": "acme/parent:v1"},
        {"name": "acme/grandchild", "base": llama, "parent": "acme/child"},
        {"name": "acme/orphan", "base": llama, "parent": "acme/nobody:v1"},
    ]
    response = post_bulk(alice_client, items, [fresh_weights(adapter_files) for _ in items])

    assert [(r["status"], r["code"]) for r in response.json()["results"]] == [
        ("created", ""),
        ("created", ""),
        ("created", ""),
        ("refused", "parent_not_found"),
    ]
    child = AdapterVersion.objects.get(adapter__name="child")
    grandchild = AdapterVersion.objects.get(adapter__name="grandchild")
    assert child.parent.ref == "acme/parent:v1" and grandchild.parent_id == child.id


def test_a_write_that_fails_leaves_no_rows_no_blobs_and_refuses_every_item(alice_client, llama, adapter_files):
    """A constraint the locks cannot cover (here a trigger that raises unique_violation on the batch's
    second file row): the whole batch rolls back, its new blobs are removed, each item is refused
    with concurrent_write as a single push would be, and the refusals are recorded."""
    items = [{"name": f"acme/doomed-{i}", "base": llama} for i in range(3)]
    files = [fresh_weights(adapter_files) for _ in items]
    doomed = files[1][1][0]  # item 1's second file
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_file() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.blob_id = %s THEN RAISE unique_violation USING MESSAGE = 'test'; END IF; RETURN NEW; END $$",
            [hashlib.sha256(dict(files[1])[doomed]).hexdigest()],
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_file BEFORE INSERT ON registry_adapterfile "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_file()"
        )
    before = leftovers()
    events_before = AuditEvent.objects.count()

    response = post_bulk(alice_client, items, files)

    assert response.status_code == 200
    assert [(r["status"], r["code"]) for r in response.json()["results"]] == [("refused", "concurrent_write")] * 3
    assert leftovers() == before
    assert AuditEvent.objects.count() == events_before + 3
    assert not Job.objects.exists()
    audit_chain_verify()


def test_concurrent_batches_to_the_same_names_number_their_versions_without_gaps(
    transactional_db, alice, zoo, tmp_path
):
    llama = base_model_version_ingest_for(alice, zoo)
    names = [f"acme/shared-{i}" for i in range(6)]
    directories = [
        [
            write_adapter(tmp_path / f"{batch}-{i}", fresh_weights(directory_files(zoo.adapters["attention"])))
            for i in range(6)
        ]
        for batch in range(3)
    ]
    reports, errors = [], []

    def push(batch: int) -> None:
        try:
            with ExitStack() as stack:
                items = [
                    BulkItem(index=i, name=name, base=llama, files=stack.enter_context(incoming_from_directory(d)))
                    for i, (name, d) in enumerate(zip(names, directories[batch], strict=True))
                ]
                reports.append(adapter_versions_bulk_ingest(items=items, user=alice))
        except Exception as exc:  # reported below, with the others
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=push, args=(batch,)) for batch in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert all(r.status == "created" for report in reports for r in report.results)
    for name in names:
        numbers = AdapterVersion.objects.filter(adapter__name=name.split("/")[1]).values_list("number", flat=True)
        assert sorted(numbers) == [1, 2, 3]
    audit_chain_verify()


def base_model_version_ingest_for(user, zoo) -> str:
    with incoming_from_directory(zoo.llama) as files:
        return base_model_version_ingest(name="acme/llama", files=files, user=user).version.ref


def write_adapter(directory, files) -> Path:
    directory.mkdir(parents=True)
    for path, data in files:
        (directory / path).write_bytes(data)
    return directory


def test_a_signed_item_records_its_signature_between_its_upload_and_its_check(
    alice_client, carol_client, llama, zoo, tmp_path
):
    key = make_key(tmp_path / "keys")
    assert carol_client.put("/api/v1/namespaces/acme/signing-policy", key_policy(key), format="json").status_code == 200
    signed = zoo.copy("adapter-attention", tmp_path / "signed")
    bundle = sign_with_key(signed, key)
    items = [
        {"name": "acme/signed", "base": llama, "signature": True},
        {"name": "acme/signed", "base": llama, "signature": True},  # the same again: existing, verified again
    ]

    response = post_bulk(alice_client, items, [directory_files(signed)] * 2, signatures=[bundle, bundle])

    assert [r["status"] for r in response.json()["results"]] == ["created", "existing"]
    assert [event[0] for event in adapter_trail("acme/signed")] == [
        "adapter.upload",
        "signature.verify",
        "check.static",
        "version.status",
        "signature.verify",
    ]
    version = AdapterVersion.objects.get(adapter__name="signed")
    assert version.signatures.count() == 1 and version.signatures.get().result == "passed"
    audit_chain_verify()
