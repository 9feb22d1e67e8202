"""Identity: the digest is model-signing's manifest root; references resolve in every form;
concurrent pushes of the same content make one version."""

import threading

import pytest
from django.db import connection

from registry.errors import RegistryError
from registry.models import AdapterVersion
from registry.selectors import adapter_version_get, base_version_get
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory
from tests.helpers import directory_files, upload


def model_signing_root_digest(directory) -> str:
    from model_signing import hashing
    from model_signing._signing.signing import Payload

    manifest = hashing.Config().use_file_serialization(hashing_algorithm="sha256").hash(directory)
    statement = Payload(manifest).statement.pb
    return statement.subject[0].digest["sha256"]


@pytest.mark.parametrize("model", ["llama", "llama_sharded", "adapter"])
def test_the_digest_equals_model_signings_manifest_root(alice_client, zoo, model):
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/base"}, directory_files(zoo.llama)).json()
    if model == "adapter":
        directory = zoo.adapters["dora"]
        body = upload(
            alice_client, "/api/v1/adapters/", {"name": "acme/a", "base": base["ref"]}, directory_files(directory)
        ).json()
    else:
        directory = getattr(zoo, model)
        body = upload(
            alice_client, "/api/v1/bases/", {"name": f"acme/{model.replace('_', '-')}"}, directory_files(directory)
        ).json()
    assert body["digest"] == model_signing_root_digest(directory)


@pytest.fixture
def pushed(alice, zoo):
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    with incoming_from_directory(zoo.adapters["attention"]) as files:
        adapter = adapter_version_ingest(name="acme/bot", files=files, base_ref=base.ref, user=alice).version
    return base, adapter


def test_every_reference_form_resolves_to_the_same_version(pushed):
    base, adapter = pushed
    adapter.aliases.create(adapter=adapter.adapter, name="production")
    for ref in [
        "acme/bot:v1",
        f"acme/bot@sha256:{adapter.digest}",
        "acme/bot:production",
        "acme/bot",
        "acme/bot:latest",
        str(adapter.id),
    ]:
        assert adapter_version_get(ref).id == adapter.id, ref
    for ref in ["acme/llama:v1", f"acme/llama@sha256:{base.digest}", "acme/llama", str(base.id)]:
        assert base_version_get(ref).id == base.id, ref


@pytest.mark.parametrize(
    "ref,code",
    [
        ("acme/bot:v9", "adapter_not_found"),
        ("acme/bot:staging", "adapter_not_found"),
        ("acme bot", "invalid_ref"),
        ("acme/bot@sha256:xyz", "invalid_ref"),
    ],
)
def test_unknown_references_say_why(pushed, ref, code):
    with pytest.raises(RegistryError) as raised:
        adapter_version_get(ref)
    assert raised.value.code == code


def model_state(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.mark.parametrize("creator", ["alice", None])
def test_a_base_read_by_its_sql_is_the_version_the_orm_reads(alice, zoo, creator):
    """base_version_get writes its SQL by hand (a push's hot path): every column, the base model
    and the creator (or none) come back as the ORM's own resolve_ref builds them, in every form."""
    from registry.selectors import base_version_queryset, resolve_ref

    with incoming_from_directory(zoo.llama) as files:
        first = base_model_version_ingest(name="acme/llama", files=files, user=alice if creator else None).version
    with incoming_from_directory(zoo.llama_sharded) as files:
        newest = base_model_version_ingest(name="acme/llama", files=files, user=None).version
    refs = ["acme/llama:v1", f"acme/llama@sha256:{first.digest}", "acme/llama", "acme/llama:latest", str(first.id)]
    for ref in refs:
        by_hand = base_version_get(ref)
        by_orm = resolve_ref(base_version_queryset(), ref, kind="base", repository_field="base_model")
        assert by_hand.id == by_orm.id == (newest.id if ref in ("acme/llama", "acme/llama:latest") else first.id)
        assert model_state(by_hand) == model_state(by_orm), ref
        assert model_state(by_hand.base_model) == model_state(by_orm.base_model)
        assert (by_hand.created_by and by_hand.created_by.username) == (by_orm.created_by and by_orm.created_by.username)
    assert base_version_get("acme/llama:v1").tensor_index["tensors"]  # JSON columns decoded
    assert base_version_get("acme/llama:v1").created_by == (alice if creator else None)
    for missing in ["acme/llama:v3", "acme/llama:production", "acme/other", "00000000-0000-0000-0000-000000000000"]:
        with pytest.raises(RegistryError) as raised:
            base_version_get(missing)
        assert raised.value.code == "base_not_found", missing


def test_references_work_in_api_urls(pushed, alice_client):
    _, adapter = pushed
    for ref in ["acme/bot:v1", f"acme/bot@sha256:{adapter.digest}", str(adapter.id)]:
        response = alice_client.get(f"/api/v1/adapters/{ref}")
        assert response.status_code == 200 and response.json()["id"] == str(adapter.id)
    missing = alice_client.get("/api/v1/adapters/acme/bot:v7")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "adapter_not_found"


@pytest.mark.django_db(transaction=True)
def test_concurrent_pushes_of_the_same_content_make_one_version(alice, zoo):
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    barrier = threading.Barrier(4)
    results, errors = [], []

    def push():
        try:
            with incoming_from_directory(zoo.adapters["all_linear"]) as files:
                barrier.wait()
                results.append(adapter_version_ingest(name="acme/race", files=files, base_ref=base.ref, user=alice))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=push) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert AdapterVersion.objects.filter(adapter__name="race").count() == 1
    assert len({r.version.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
