"""Lineage graphs, adapters targeting a base, filtered lists with keyset pagination."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory


def ingest_adapter(user, directory, name, base, parent=None):
    with incoming_from_directory(directory) as files:
        return adapter_version_ingest(
            name=name, files=files, base_ref=base.ref, parent_ref=parent.ref if parent else None, user=user
        ).version


@pytest.fixture
def family(alice, zoo):
    """llama <- root adapter <- child adapter; a second unrelated adapter on the same base."""
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    root = ingest_adapter(alice, zoo.adapters["attention"], "acme/root", base)
    child = ingest_adapter(alice, zoo.child_adapter, "acme/child", base, parent=root)
    grandchild = ingest_adapter(alice, zoo.adapters["rslora"], "acme/grandchild", base, parent=child)
    sibling = ingest_adapter(alice, zoo.adapters["dora"], "acme/sibling", base)
    return base, root, child, grandchild, sibling


def test_adapter_lineage_has_ancestors_and_descendants(alice_client, family):
    base, root, child, grandchild, sibling = family
    body = alice_client.get(f"/api/v1/adapters/{child.ref}/lineage").json()
    refs = {node["ref"] for node in body["nodes"]}
    assert refs == {base.ref, root.ref, child.ref, grandchild.ref}
    edges = {(e["source"], e["target"], e["kind"]) for e in body["edges"]}
    assert (str(child.id), str(root.id), "parent") in edges
    assert (str(root.id), str(base.id), "base") in edges
    assert (str(grandchild.id), str(child.id), "parent") in edges


def test_base_lineage_has_every_adapter_built_on_it(alice_client, family):
    base, *adapters = family
    body = alice_client.get(f"/api/v1/bases/{base.ref}/lineage").json()
    assert {node["ref"] for node in body["nodes"]} == {base.ref} | {a.ref for a in adapters}


def test_adapters_targeting_a_base(alice_client, family):
    base, *adapters = family
    body = alice_client.get(f"/api/v1/bases/{base.ref}/adapters").json()
    assert {row["ref"] for row in body["results"]} == {a.ref for a in adapters}
    assert alice_client.get(f"/api/v1/adapters/?base={base.ref}").json()["results"] == body["results"]


def test_list_filters(alice_client, family):
    assert [r["ref"] for r in alice_client.get("/api/v1/adapters/?name=sibling").json()["results"]] == [
        "acme/sibling:v1"
    ]
    assert {r["ref"] for r in alice_client.get("/api/v1/adapters/?r=8").json()["results"]} == {"acme/grandchild:v1"}
    assert alice_client.get("/api/v1/adapters/?status=ready").json()["results"] == []
    assert len(alice_client.get("/api/v1/adapters/?status=checking").json()["results"]) == 4
    assert len(alice_client.get("/api/v1/adapters/?peft_type=lora").json()["results"]) == 4
    bad = alice_client.get("/api/v1/adapters/?status=bogus")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_cursor_pagination_walks_every_version_once(alice_client, family):
    seen, url = [], "/api/v1/adapters/?page_size=1"
    while url:
        body = alice_client.get(url).json()
        seen += [row["ref"] for row in body["results"]]
        url = body["next"]
    assert len(seen) == 4 and len(set(seen)) == 4


@pytest.mark.parametrize("url", ["/api/v1/adapters/?page_size={n}", "/api/v1/bases/?page_size={n}"])
def test_list_query_count_does_not_grow_with_page_size(alice_client, family, zoo, alice, url):
    ingest_adapter(alice, zoo.adapters["modules_to_save"], "acme/more", family[0], parent=family[3])
    counts = []
    for page_size in (1, 5):
        with CaptureQueriesContext(connection) as queries:
            response = alice_client.get(url.format(n=page_size))
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_list_rows_match_the_detail_representation(alice_client, family):
    """Lists are built from plain rows for speed; they must say what the detail says."""
    base, *adapters = family
    for row in alice_client.get("/api/v1/adapters/").json()["results"]:
        detail = alice_client.get(f"/api/v1/adapters/{row['id']}").json()
        assert row == {key: detail[key] for key in row}
        assert set(detail) - set(row) == {"provenance", "config", "files", "card", "card_warnings"}  # detail only
    row = alice_client.get("/api/v1/bases/").json()["results"][0]
    detail = alice_client.get(f"/api/v1/bases/{row['id']}").json()
    assert row == {key: detail[key] for key in row}
