"""Downloads over the API: whole files, ranges, conditional requests, every reference form."""

import hashlib
import json

from rest_framework.test import APIClient

from registry.models import AdapterAlias, AdapterVersion


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_whole_file_has_its_sha256_as_etag_and_the_registered_bytes(bob_client, api_pushed, zoo):
    expected = (zoo.adapters["attention"] / "adapter_model.safetensors").read_bytes()
    response = bob_client.get("/api/v1/adapters/acme/bot:v1/files/adapter_model.safetensors")
    assert response.status_code == 200
    assert _body(response) == expected
    assert response["ETag"] == f'"{hashlib.sha256(expected).hexdigest()}"'
    assert response["Content-Length"] == str(len(expected))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="adapter_model.safetensors"'


def test_listing_gives_path_size_and_sha256(bob_client, api_pushed, zoo):
    _base, adapter = api_pushed
    response = bob_client.get("/api/v1/adapters/acme/bot:v1/files")
    assert response.status_code == 200
    listed = response.json()
    on_disk = {p.name: p.read_bytes() for p in zoo.adapters["attention"].iterdir() if p.is_file()}
    assert {row["path"] for row in listed} == set(on_disk)
    for row in listed:
        assert row["size"] == len(on_disk[row["path"]])
        assert row["sha256"] == hashlib.sha256(on_disk[row["path"]]).hexdigest()
    assert listed == adapter["files"]


def test_a_range_gives_206_with_that_part(bob_client, api_pushed, zoo):
    expected = (zoo.adapters["attention"] / "adapter_model.safetensors").read_bytes()
    url = "/api/v1/adapters/acme/bot:v1/files/adapter_model.safetensors"
    response = bob_client.get(url, HTTP_RANGE="bytes=10-99")
    assert response.status_code == 206
    assert _body(response) == expected[10:100]
    assert response["Content-Range"] == f"bytes 10-99/{len(expected)}"
    assert response["Content-Length"] == "90"

    tail = bob_client.get(url, HTTP_RANGE="bytes=100-")
    assert tail.status_code == 206 and _body(tail) == expected[100:]
    suffix = bob_client.get(url, HTTP_RANGE="bytes=-7")
    assert suffix.status_code == 206 and _body(suffix) == expected[-7:]
    past_end = bob_client.get(url, HTTP_RANGE=f"bytes=5-{len(expected) * 2}")
    assert past_end.status_code == 206 and _body(past_end) == expected[5:]

    # Several ranges, or a header that cannot be read: the whole file (RFC 9110 allows it).
    for header in ("bytes=0-1,5-6", "lines=1-2", "bytes=9-3"):
        whole = bob_client.get(url, HTTP_RANGE=header)
        assert whole.status_code == 200 and _body(whole) == expected, header
    # If-Range with another ETag: the client's partial data is stale, so send it all.
    stale = bob_client.get(url, HTTP_RANGE="bytes=10-", HTTP_IF_RANGE='"0000"')
    assert stale.status_code == 200 and _body(stale) == expected


def test_a_range_past_the_end_is_416_with_the_error_shape(bob_client, api_pushed, zoo):
    size = (zoo.adapters["attention"] / "adapter_model.safetensors").stat().st_size
    response = bob_client.get(
        "/api/v1/adapters/acme/bot:v1/files/adapter_model.safetensors", HTTP_RANGE=f"bytes={size}-"
    )
    assert response.status_code == 416
    assert response.json()["error"]["code"] == "range_not_satisfiable"
    assert response["Content-Range"] == f"bytes */{size}"


def test_if_none_match_with_the_etag_is_304(bob_client, api_pushed):
    url = "/api/v1/adapters/acme/bot:v1/files/adapter_config.json"
    etag = bob_client.get(url)["ETag"]
    assert bob_client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert bob_client.get(url, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304
    assert bob_client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_head_gives_the_headers_without_the_bytes(bob_client, api_pushed, zoo):
    size = (zoo.adapters["attention"] / "adapter_model.safetensors").stat().st_size
    response = bob_client.head("/api/v1/adapters/acme/bot:v1/files/adapter_model.safetensors")
    assert response.status_code == 200
    assert response["Content-Length"] == str(size) and response.content == b""
    assert response["ETag"].startswith('"')


def test_without_credentials_it_is_401(api_pushed):
    anonymous = APIClient()
    assert anonymous.get("/api/v1/adapters/acme/bot:v1/files/adapter_config.json").status_code == 401
    assert anonymous.get("/api/v1/adapters/acme/bot:v1/files").status_code == 401


def test_an_unknown_path_is_404_file_not_found(bob_client, api_pushed):
    for path in ("missing.bin", "adapter_config.json/extra", "%00", "files/adapter_config.json"):
        response = bob_client.get(f"/api/v1/adapters/acme/bot:v1/files/{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "file_not_found", path
    unknown_version = bob_client.get("/api/v1/adapters/acme/bot:v9/files/adapter_config.json")
    assert unknown_version.json()["error"]["code"] == "adapter_not_found"


def test_every_reference_form_resolves(bob_client, api_pushed):
    _base, adapter = api_pushed
    version = AdapterVersion.objects.get(id=adapter["id"])
    AdapterAlias.objects.create(adapter=version.adapter, name="production", version=version)
    expected = json.dumps(json.loads(_body(bob_client.get("/api/v1/adapters/acme/bot:v1/files/adapter_config.json"))))
    for ref in (
        "acme/bot:v1",
        f"acme/bot@sha256:{adapter['digest']}",
        "acme/bot:production",
        adapter["id"],
        "acme/bot",
    ):
        response = bob_client.get(f"/api/v1/adapters/{ref}/files/adapter_config.json")
        assert response.status_code == 200, ref
        assert json.dumps(json.loads(_body(response))) == expected
        assert bob_client.get(f"/api/v1/adapters/{ref}/files").status_code == 200, ref


def test_base_files_download_too(bob_client, api_pushed, zoo):
    base, _adapter = api_pushed
    listed = bob_client.get(f"/api/v1/bases/{base['id']}/files").json()
    assert {row["path"] for row in listed} == {p.name for p in zoo.llama.iterdir() if p.is_file()}
    for row in listed:
        response = bob_client.get(f"/api/v1/bases/acme/llama@sha256:{base['digest']}/files/{row['path']}")
        assert response.status_code == 200
        assert hashlib.sha256(_body(response)).hexdigest() == row["sha256"]
    missing = bob_client.get("/api/v1/bases/acme/llama:v1/files/nope.json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"


def _download_events():
    from registry.models import AuditEvent

    return list(AuditEvent.objects.filter(type="file.download").order_by("seq"))


def test_a_download_is_an_audit_event_naming_who_took_which_file(bob, bob_client, api_pushed, zoo):
    expected = (zoo.adapters["attention"] / "adapter_model.safetensors").read_bytes()
    url = "/api/v1/adapters/acme/bot:v1/files/adapter_model.safetensors"
    assert bob_client.get(url).status_code == 200
    [event] = _download_events()
    version = AdapterVersion.objects.get(adapter__namespace="acme", adapter__name="bot", number=1)
    assert (event.actor_name, event.object_type, event.object_id, event.adapter) == (
        "bob",
        "adapter_version",
        str(version.id),
        "acme/bot",
    )
    assert event.evidence == {
        "path": "adapter_model.safetensors",
        "sha256": hashlib.sha256(expected).hexdigest(),
        "size": len(expected),
    }


def test_only_downloads_that_hand_out_bytes_from_the_start_are_recorded(bob_client, api_pushed, settings):
    url = "/api/v1/adapters/acme/bot:v1/files/adapter_model.safetensors"
    etag = bob_client.get(url)["ETag"]
    assert bob_client.get(url, HTTP_RANGE="bytes=0-9").status_code == 206  # a range from the start: recorded
    assert bob_client.get(url, HTTP_RANGE="bytes=10-").status_code == 206  # a resumption: not again
    assert bob_client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304  # nothing handed out
    assert bob_client.head(url).status_code == 200  # headers only
    events = _download_events()
    assert [event.evidence.get("range") for event in events] == [None, "0-9"]

    settings.AUDIT_DOWNLOADS = False
    assert bob_client.get(url).status_code == 200
    assert len(_download_events()) == 2
