"""Static compatibility from headers alone, on adapters made by peft."""

import json

from registry.compat import static_compatibility
from registry.demo import build
from registry.formats.safetensors_header import read_header
from registry.models import AdapterVersion, Check, Job, Status
from tests.conftest import LORA_CONFIGS
from tests.helpers import directory_files, upload


def headers(directory):
    tensors = {}
    for path in sorted(directory.glob("*.safetensors")):
        tensors.update(read_header(path).tensors)
    return tensors


def config(directory):
    return json.loads((directory / "adapter_config.json").read_text())


def test_every_peft_config_fits_its_base(zoo):
    base = headers(zoo.llama)
    for key in LORA_CONFIGS:
        result = static_compatibility(headers(zoo.adapters[key]), config(zoo.adapters[key]), base)
        assert result.verdict == "pass", (key, result.reasons)


def test_a_classifier_head_on_an_encoder_is_a_note_not_a_failure(tmp_path):
    minilm = build.export_minilm_base(tmp_path / "minilm")
    adapter = build.build_lora_adapter(
        minilm,
        tmp_path / "sentiment",
        task="sequence-classification",
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
        modules_to_save=["classifier"],
    )
    result = static_compatibility(headers(adapter), config(adapter), headers(minilm))
    assert result.verdict == "pass", result.reasons
    assert any("task head" in note for note in result.details["notes"])


def test_a_sharded_base_is_read_across_shards(zoo):
    result = static_compatibility(
        headers(zoo.adapters["all_linear"]), config(zoo.adapters["all_linear"]), headers(zoo.llama_sharded)
    )
    assert result.verdict == "pass"
    assert result.details["lora_modules"] == 14


def test_a_rank_that_disagrees_with_the_base_dims_fails(zoo, tmp_path):
    wide = build.build_llama_base(tmp_path / "wide", hidden_size=64)
    adapter = build.build_lora_adapter(wide, tmp_path / "wide-adapter", r=4, lora_alpha=8, target_modules=["q_proj"])
    result = static_compatibility(headers(adapter), config(adapter), headers(zoo.llama))
    assert result.verdict == "fail"
    assert "do not fit the base weight [32, 32]" in result.reasons[0]


def test_pushing_records_the_static_check_and_queues_the_dynamic_one(
    alice_client, zoo, django_capture_on_commit_callbacks
):
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).json()
    with django_capture_on_commit_callbacks(execute=True):
        body = upload(
            alice_client,
            "/api/v1/adapters/",
            {"name": "acme/bot", "base": base["ref"]},
            directory_files(zoo.adapters["dora"]),
        ).json()
    version = AdapterVersion.objects.get(id=body["id"])
    assert version.status == Status.CHECKING
    assert Check.objects.get(adapter_version=version).verdict == "pass"
    job = Job.objects.get(adapter_version=version)
    assert job.kind == Job.Kind.COMPATIBILITY and job.state == Job.State.QUEUED and job.queue == "gpu"
    checks = alice_client.get(f"/api/v1/adapters/{version.ref}/checks").json()
    assert checks["pending"] == 1 and checks["checks"][0]["kind"] == "static"


def test_a_rerun_uses_the_ranks_resolved_at_ingest_not_the_stored_key_order(alice, zoo, tmp_path):
    from registry.services.checks import adapter_version_static_check
    from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
    from registry.uploads import incoming_from_directory

    # Both keys match layer 0's q_proj; peft takes the first, the longer one (rank 6).
    # PostgreSQL's jsonb stores keys shortest first, so the stored dict would say rank 2.
    rank_pattern = {"layers.0.self_attn.q_proj": 6, "q_proj": 2}
    directory = build.build_lora_adapter(
        zoo.llama, tmp_path / "ranked", r=4, lora_alpha=8, target_modules=["q_proj"], rank_pattern=rank_pattern
    )
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    with incoming_from_directory(directory) as files:
        version = adapter_version_ingest(name="acme/ranked", files=files, base_ref=base.ref, user=alice).version
    stored = AdapterVersion.objects.get(id=version.id)
    assert list(stored.config["rank_pattern"]) == ["q_proj", "layers.0.self_attn.q_proj"]

    check = adapter_version_static_check(stored)

    assert check.verdict == "pass", check.reasons
