"""A version's files in the UI: a download link per file (the API, session-authenticated) and
config files shown inline, pretty-printed and escaped."""

import hashlib
import json
import re

import pytest

from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def versions(alice, zoo, tmp_path):
    """A base whose config.json carries a hostile string, and an adapter on it."""
    llama = zoo.copy("llama", tmp_path / "llama")
    config = json.loads((llama / "config.json").read_text())
    config["_name_or_path"] = HOSTILE
    (llama / "config.json").write_text(json.dumps(config))
    with incoming_from_directory(llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    with incoming_from_directory(zoo.adapters["attention"]) as files:
        adapter = adapter_version_ingest(name="acme/bot", files=files, base_ref=base.ref, user=alice).version
    return base, adapter


@pytest.fixture
def signed_in(client, bob):
    client.force_login(bob)  # an auditor: reading is enough to download
    return client


def _links(body: str, css_class: str) -> list[str]:
    return re.findall(rf'<a class="{css_class}" href="([^"]+)"', body)


def test_every_file_has_a_download_link_that_serves_its_bytes(signed_in, versions, zoo):
    _base, adapter = versions
    body = signed_in.get("/adapters/acme/bot/v1/").content.decode()
    links = _links(body, "file-download")
    assert len(links) == adapter.files.count()
    for link, file in zip(links, adapter.files.order_by("path"), strict=True):
        assert link == f"/api/v1/adapters/{adapter.id}/files/{file.path}"
        response = signed_in.get(link)  # the browser's session, no token
        assert response.status_code == 200
        assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == file.sha256


def test_the_base_page_links_its_files_too(signed_in, versions):
    base, _adapter = versions
    body = signed_in.get("/bases/acme/llama/v1/").content.decode()
    assert f"/api/v1/bases/{base.id}/files/config.json" in _links(body, "file-download")
    assert 'href="/bases/acme/llama/v1/files/config.json"' in body
    assert 'href="/bases/acme/llama/v1/files/model.safetensors"' not in body


def test_a_config_file_is_shown_pretty_printed_and_escaped(signed_in, versions):
    base, _adapter = versions
    response = signed_in.get("/bases/acme/llama/v1/files/config.json")
    assert response.status_code == 200
    body = response.content.decode().replace("&quot;", '"')
    assert HOSTILE not in body
    assert '"_name_or_path": "&lt;script&gt;alert(1)&lt;/script&gt;"' in body
    assert '\n  "architectures": [' in body  # indented: pretty-printed
    assert f'href="/api/v1/bases/{base.id}/files/config.json"' in body
    # Nothing the Content-Security-Policy would block: no inline script or style.
    assert "<script>" not in body and " style=" not in body
    assert "Content-Security-Policy" in response.headers


def test_the_adapter_config_is_shown(signed_in, versions):
    body = signed_in.get("/adapters/acme/bot/v1/files/adapter_config.json").content.decode()
    assert '"peft_type": "LORA"' in body.replace("&quot;", '"')


def test_weights_and_unknown_paths_are_not_shown(signed_in, versions):
    assert signed_in.get("/bases/acme/llama/v1/files/model.safetensors").status_code == 404
    assert signed_in.get("/adapters/acme/bot/v1/files/nope.json").status_code == 404
    assert signed_in.get("/adapters/acme/bot/v9/files/adapter_config.json").status_code == 404


def test_the_file_page_needs_a_login(client, versions):
    response = client.get("/adapters/acme/bot/v1/files/adapter_config.json")
    assert response.status_code == 302 and response.url.startswith("/login/")
