"""A base version's tensor index: written at registration, read by every adapter push instead of
the base's blobs, and filled in once for a base registered before it existed."""

import json

import numpy as np
from safetensors.numpy import load_file, save_file

from registry.compat import static_compatibility
from registry.formats.safetensors_header import read_header
from registry.formats.tensor_index import INDEX_FORMAT, tensor_index, tensors_from_index
from registry.models import AdapterVersion, BaseModelVersion, Check, Status
from registry.storage import get_blob_store
from tests.helpers import directory_files, upload


def headers(directory):
    tensors = {}
    for path in sorted(directory.glob("*.safetensors")):
        tensors.update(read_header(path).tensors)
    return tensors


def push_base(client, directory, name="acme/llama") -> BaseModelVersion:
    response = upload(client, "/api/v1/bases/", {"name": name}, directory_files(directory))
    assert response.status_code == 201, response.content
    return BaseModelVersion.objects.get(id=response.json()["id"])


def push_adapter(client, base, directory, name) -> AdapterVersion:
    response = upload(client, "/api/v1/adapters/", {"name": name, "base": base.ref}, directory_files(directory))
    assert response.status_code == 201, response.content
    return AdapterVersion.objects.get(id=response.json()["id"])


def remove_blobs(version: BaseModelVersion) -> None:
    """Take the base's files out of the blob store: a push that opened one would fail."""
    store = get_blob_store()
    for file in version.files.all():
        store.path(file.blob_id).unlink()


def misfit_adapter(zoo, target):
    """The `attention` adapter with every lora_A twice as wide as the base's hidden size."""
    target.mkdir()
    (target / "adapter_config.json").write_bytes((zoo.adapters["attention"] / "adapter_config.json").read_bytes())
    tensors = load_file(zoo.adapters["attention"] / "adapter_model.safetensors")
    widened = {name: np.concatenate([t, t], axis=1) if ".lora_A." in name else t for name, t in tensors.items()}
    save_file(widened, target / "adapter_model.safetensors")
    return target


def expected_rejection(adapter_dir, base_dir) -> str:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    result = static_compatibility(headers(adapter_dir), config, headers(base_dir))
    assert result.verdict == "fail"
    return f"static check: {result.reasons[0]}"


def test_it_stores_every_tensor_of_every_shard_when_a_base_is_registered(alice_client, zoo):
    base = push_base(alice_client, zoo.llama_sharded)
    assert base.tensor_index["format"] == INDEX_FORMAT
    assert tensors_from_index(base.tensor_index) == headers(zoo.llama_sharded)


def test_a_push_reads_the_index_and_opens_none_of_the_base_blobs(alice_client, zoo, tmp_path):
    base = push_base(alice_client, zoo.llama)
    remove_blobs(base)

    good = push_adapter(alice_client, base, zoo.adapters["all_linear"], "acme/good")
    assert good.status == Status.CHECKING
    assert Check.objects.get(adapter_version=good, kind=Check.Kind.STATIC).details["lora_modules"] == 14

    misfit = misfit_adapter(zoo, tmp_path / "misfit")
    refused = push_adapter(alice_client, base, misfit, "acme/misfit")
    assert refused.status == Status.REJECTED
    assert refused.status_reason == expected_rejection(misfit, zoo.llama)
    assert "do not fit the base weight [32, 32]" in refused.status_reason


def test_a_base_registered_without_an_index_is_read_once_and_gets_one(alice_client, zoo, tmp_path):
    base = push_base(alice_client, zoo.llama)
    BaseModelVersion.objects.filter(pk=base.pk).update(tensor_index=None)  # as rows from before migration 0014

    first = push_adapter(alice_client, base, zoo.adapters["attention"], "acme/first")
    assert first.status == Status.CHECKING
    base.refresh_from_db()
    assert tensors_from_index(base.tensor_index) == headers(zoo.llama)

    remove_blobs(base)  # from now on the saved index is all there is
    misfit = misfit_adapter(zoo, tmp_path / "misfit")
    refused = push_adapter(alice_client, base, misfit, "acme/misfit")
    assert refused.status == Status.REJECTED
    assert refused.status_reason == expected_rejection(misfit, zoo.llama)


def test_an_index_this_code_did_not_write_is_not_trusted(alice_client, zoo):
    base = push_base(alice_client, zoo.llama)
    # A future format, and a hand-edited row claiming a wrong shape type: both are read again.
    for index in (
        {"format": INDEX_FORMAT + 1, "tensors": {}},
        {"format": INDEX_FORMAT, "tensors": {"w": ["F32", "32"]}},
    ):
        assert tensors_from_index(index) is None
    BaseModelVersion.objects.filter(pk=base.pk).update(tensor_index={"format": INDEX_FORMAT + 1, "tensors": {}})

    pushed = push_adapter(alice_client, base, zoo.adapters["attention"], "acme/bot")
    assert pushed.status == Status.CHECKING
    base.refresh_from_db()
    assert base.tensor_index == tensor_index(headers(zoo.llama))


def test_pushing_the_same_base_again_fills_a_missing_index(alice_client, zoo):
    base = push_base(alice_client, zoo.llama)
    BaseModelVersion.objects.filter(pk=base.pk).update(tensor_index=None)
    again = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama))
    assert again.status_code == 200 and again.json()["id"] == str(base.id)
    base.refresh_from_db()
    assert tensors_from_index(base.tensor_index) == headers(zoo.llama)


def test_an_old_base_whose_blobs_are_gone_is_refused_with_a_repair_and_the_same_files_repair_it(alice_client, zoo):
    base = push_base(alice_client, zoo.llama)
    BaseModelVersion.objects.filter(pk=base.pk).update(tensor_index=None)  # registered before the index
    remove_blobs(base)

    refused = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/bot", "base": base.ref},
        directory_files(zoo.adapters["attention"]),
    )
    assert refused.status_code == 422, refused.content
    assert refused.json()["error"]["code"] == "base_unreadable"
    assert "push the base's files again" in refused.json()["error"]["message"]
    assert not AdapterVersion.objects.exists()

    again = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama))
    assert again.status_code == 200 and again.json()["id"] == str(base.id)
    store = get_blob_store()
    assert all(store.path(f.blob_id).exists() for f in base.files.all())
    assert tensors_from_index(BaseModelVersion.objects.get(pk=base.pk).tensor_index) == headers(zoo.llama)
    push_adapter(alice_client, base, zoo.adapters["attention"], "acme/bot")


def test_a_bulk_push_onto_a_base_whose_blobs_are_gone_refuses_its_items_with_the_repair(alice_client, alice, zoo):
    from registry.services.bulk import BulkItem, adapter_versions_bulk_ingest
    from registry.uploads import incoming_from_directory

    base = push_base(alice_client, zoo.llama)
    BaseModelVersion.objects.filter(pk=base.pk).update(tensor_index=None)
    remove_blobs(base)
    with incoming_from_directory(zoo.adapters["attention"]) as files:
        item = BulkItem(index=0, name="acme/bot", base=base.ref, files=list(files))
        report = adapter_versions_bulk_ingest(items=[item], user=alice)
    [result] = report.results
    assert (result.status, result.code) == ("refused", "base_unreadable")
    assert not AdapterVersion.objects.exists()
