"""Every page and fragment with the Django test client: status, content, permissions,
escaping and a query count that does not grow with the number of rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def family(alice, zoo):
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    versions = []
    parent = None
    for index, key in enumerate(["attention", "dora", "rslora"]):
        with incoming_from_directory(zoo.adapters[key]) as files:
            parent = adapter_version_ingest(
                name=f"acme/bot-{index}",
                files=files,
                base_ref=base.ref,
                parent_ref=parent.ref if parent else None,
                provenance={"dataset_name": HOSTILE, "params": {"note": HOSTILE}},
                user=alice,
            ).version
            versions.append(parent)
    return base, versions


def add_more_adapters(alice, zoo, base, count):
    for index, key in enumerate(["all_linear", "modules_to_save"][:count]):
        with incoming_from_directory(zoo.adapters[key]) as files:
            adapter_version_ingest(name=f"acme/more-{index}", files=files, base_ref=base.ref, user=alice)


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


PAGES = [
    "/adapters/",
    "/bases/",
    "/adapters/acme/bot-1/v1/",
    "/bases/acme/llama/v1/",
    "/adapters/upload/",
    "/workers/",
    "/residency/",
]
# The Audit page answers engineers 403 (tests/ui/test_audit_ui.py): it is for auditors and admins.


@pytest.mark.parametrize("url", [*PAGES, "/audit/"])
def test_pages_need_a_login(client, family, url):
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith("/login/")


@pytest.mark.parametrize("url", PAGES)
def test_pages_render_for_a_signed_in_user(signed_in, family, url):
    response = signed_in.get(url)
    assert response.status_code == 200
    assert b"alice" in response.content and b"engineer" in response.content


def test_the_adapter_page_shows_identity_lineage_and_escapes_everything(signed_in, family):
    base, (root, child, grandchild) = family
    body = signed_in.get("/adapters/acme/bot-1/v1/").content.decode()
    assert str(child.id) in body and child.digest in body
    assert "acme/bot-0:v1" in body and "acme/bot-2:v1" in body and "acme/llama:v1" in body
    assert body.count('<a href="/adapters/') >= 2
    assert HOSTILE not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    # The lineage graph is a lazy panel: htmx fetches it once the page is shown.
    assert "<svg" not in body and 'hx-get="/adapters/acme/bot-1/v1/?panel=lineage" hx-trigger="load"' in body
    graph = signed_in.get("/adapters/acme/bot-1/v1/?panel=lineage", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in graph and graph.startswith('<div class="lineage-wrap" id="lineage">')
    for ref in ("acme/bot-0:v1", "acme/bot-1:v1", "acme/bot-2:v1", "acme/llama:v1"):
        assert f'data-ref="{ref}"' in graph
    assert HOSTILE not in graph


def test_without_javascript_the_lineage_link_renders_the_page_with_the_graph(signed_in, family):
    body = signed_in.get("/adapters/acme/bot-1/v1/?panel=lineage").content.decode()
    assert "<html" in body and 'data-ref="acme/bot-2:v1"' in body and 'hx-trigger="load"' not in body
    assert signed_in.get("/adapters/acme/bot-1/v1/?panel=nope").status_code == 404


def test_refused_signatures_on_the_version_page_cost_no_query_per_row(signed_in, alice, family):
    from registry.models import SignatureVerification

    _, (_, child, _) = family

    def refuse(count):
        for _ in range(count):
            SignatureVerification.objects.create(
                trigger="on_demand", adapter_name="acme/bot-1", version=child, result="failed",
                code="signature_invalid", reason="the bundle does not verify", signer_identity="ci@example.com",
                created_by=alice,
            )  # fmt: skip

    def page():
        with CaptureQueriesContext(connection) as queries:
            body = signed_in.get("/adapters/acme/bot-1/v1/").content.decode()
        return body, len(queries)

    refuse(1)
    _, one = page()
    refuse(3)
    body, four = page()
    table = body[body.index('<table class="list refused">') :]
    assert four == one and table.count("On Demand of v1") == 4 and table.count("by alice") == 4
    assert table.count("<code>signature_invalid</code>") == 4 and table.count("ci@example.com") == 4


def test_the_base_page_lists_adapters_built_on_it(signed_in, family):
    body = signed_in.get("/bases/acme/llama/v1/").content.decode()
    for name in ("acme/bot-0:v1", "acme/bot-1:v1", "acme/bot-2:v1"):
        assert name in body
    assert "LlamaForCausalLM" in body and "config.json" in body


def test_search_returns_only_the_fragment_to_htmx(signed_in, family):
    full = signed_in.get("/adapters/?q=bot-2")
    fragment = signed_in.get("/adapters/?q=bot-2", headers={"HX-Request": "true"})
    assert b"<html" in full.content and b"<html" not in fragment.content
    assert b"acme/bot-2:v1" in fragment.content and b"acme/bot-0:v1" not in fragment.content
    restore = signed_in.get("/adapters/?q=bot-2", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert b"<html" in restore.content


@pytest.mark.parametrize(
    "query,expected",
    [
        ("status=checking", 3),
        ("r=8", 1),
        ("peft_type=LORA", 3),
        ("namespace=acme", 3),
        ("base=acme/llama:v1", 3),
        ("base=acme/none:v9", 0),
        ("r=abc", 3),
    ],
)
def test_adapter_filters(signed_in, family, query, expected):
    response = signed_in.get(f"/adapters/?{query}", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.content.count(b'<a href="/adapters/acme/') == expected


def test_unknown_versions_are_404_pages(signed_in, family):
    for url in ("/adapters/acme/bot-1/v9/", "/bases/acme/nope/v1/", "/nothing/"):
        response = signed_in.get(url)
        assert response.status_code == 404
        assert b"Not found" in response.content


def test_readers_cannot_open_the_upload_page(client, bob, family):
    client.force_login(bob)
    response = client.get("/adapters/upload/")
    assert response.status_code == 403
    assert b"Upload adapter" not in client.get("/adapters/").content


@pytest.mark.parametrize("url", ["/adapters/", "/bases/", "/adapters/acme/bot-1/v1/", "/bases/acme/llama/v1/"])
def test_query_counts_do_not_grow_with_rows(signed_in, family, alice, zoo, url):
    with CaptureQueriesContext(connection) as before:
        assert signed_in.get(url).status_code == 200
    add_more_adapters(alice, zoo, family[0], 2)
    with CaptureQueriesContext(connection) as after:
        assert signed_in.get(url).status_code == 200
    assert len(after) == len(before), [q["sql"][:120] for q in after.captured_queries]


def test_login_and_logout(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302
    assert client.get("/adapters/").status_code == 200
    client.post("/logout/")
    assert client.get("/adapters/").status_code == 302
    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b"did not match" in wrong.content
