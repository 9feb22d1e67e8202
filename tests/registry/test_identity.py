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
