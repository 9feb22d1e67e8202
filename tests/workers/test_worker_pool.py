"""The worker pool end to end: real Celery worker processes, the configured broker
(Redis in CI), PostgreSQL, adapters made by peft."""

import json
import re

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from registry.demo import build
from registry.models import AdapterVersion, Check, Job, Status, Worker
from registry.services.checks import adapter_version_evaluate
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.services.signatures import version_verify
from registry.services.suites import evaluation_suite_attach, evaluation_suite_register
from registry.signing.keys import active_key
from registry.uploads import incoming_from_directory, incoming_from_file
from tests.workers.conftest import job_done, wait_for


def push_base(user, directory, name="acme/llama"):
    with incoming_from_directory(directory) as files:
        return base_model_version_ingest(name=name, files=files, user=user).version


def push_adapter(user, directory, base, name="acme/bot"):
    with incoming_from_directory(directory) as files:
        return adapter_version_ingest(name=name, files=files, base_ref=base.ref, user=user).version


def register_suite(user, tmp_path, rows, task_type="causal_lm", name="acme/corpus"):
    path = tmp_path / f"{name.replace('/', '-')}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with incoming_from_file(path) as incoming:
        return evaluation_suite_register(name=name, task_type=task_type, file=incoming, user=user)[0]


def wait_for_status(version, pool, statuses=(Status.READY, Status.REJECTED), seconds=120):
    return wait_for(
        lambda: AdapterVersion.objects.filter(id=version.id, status__in=statuses).first(),
        seconds,
        f"{version.ref} to finish checks",
        pool,
    )


def test_a_pushed_adapter_is_checked_and_evaluated_end_to_end(pool, alice, zoo, tmp_path):
    worker = pool.start("w1")
    base = push_base(alice, zoo.llama)
    suite = register_suite(
        alice, tmp_path, [{"text": line} for line in (build.DEMO_DIR / "corpus.txt").read_text().splitlines()]
    )
    first = push_adapter(alice, zoo.adapters["attention"], base)
    evaluation_suite_attach(suite=suite, adapter_name="acme/bot")
    assert wait_for_status(first, pool).status == Status.READY
    # The worker that made it ready counter-signed it with the registry's key; it verifies from storage.
    [counter] = first.signatures.all()
    assert (counter.is_registry, counter.method, counter.key_fingerprint) == (True, "key", active_key().key_id)
    assert version_verify(first).satisfies_policy

    second = push_adapter(alice, zoo.child_adapter, base)  # the attached suite runs automatically now
    assert wait_for_status(second, pool).status == Status.READY
    evaluation = wait_for(
        lambda: job_done(Job.objects.get(adapter_version=second, kind=Job.Kind.EVALUATION).id),
        120,
        "the evaluation",
        pool,
    )
    assert evaluation.state == Job.State.SUCCEEDED, evaluation.error
    metrics = evaluation.result["metrics"]
    assert {"adapter", "base", "reference"} <= set(metrics)
    assert evaluation.result["reference"] == {
        "ref": first.ref,
        "reason": "newest earlier ready version",
        "compared": True,
    }
    assert metrics["adapter"]["perplexity"] > 1 and metrics["adapter"]["loss"] != metrics["base"]["loss"]
    assert evaluation.ran_on == worker and evaluation.result["device"] == "cpu"
    dynamic = Check.objects.get(adapter_version=second, kind=Check.Kind.DYNAMIC)
    assert dynamic.verdict == Check.Verdict.PASS and dynamic.details["max_abs_output_change"] > 0
    # The resident set reaches the database with the next heartbeat, not with the job's result.
    wait_for(
        lambda: Worker.objects.get(hostname=worker).holds_base(base.id), 15, "the heartbeat to report the base", pool
    )


def adapter_with(zoo, tmp_path, name, change):
    directory = zoo.copy("adapter-attention", tmp_path / name)
    weights = load_file(str(directory / "adapter_model.safetensors"))
    save_file({key: change(key, value) for key, value in weights.items()}, str(directory / "adapter_model.safetensors"))
    return directory


def test_broken_adapters_are_rejected_with_reasons(pool, alice, zoo, tmp_path):
    base = push_base(alice, zoo.llama)
    # Static: decided from headers at push time, no worker involved.
    wrong_shape = build.build_lora_adapter(
        build.build_llama_base(tmp_path / "wide", hidden_size=64),
        tmp_path / "wide-adapter",
        r=4,
        lora_alpha=8,
        target_modules=["q_proj"],
    )
    other_arch_base = tmp_path / "bert"
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(other_arch_base)
    other_arch = build.build_lora_adapter(
        other_arch_base, tmp_path / "bert-adapter", task="encoder", r=4, lora_alpha=8, target_modules=["query", "value"]
    )
    missing_module = build.build_lora_adapter(
        zoo.llama, tmp_path / "mlp-adapter", r=4, lora_alpha=8, target_modules=["up_proj"]
    )
    missing_module_config = json.loads((missing_module / "adapter_config.json").read_text())
    missing_module_config["target_modules"] = ["up_proj", "w9_proj"]
    (missing_module / "adapter_config.json").write_text(json.dumps(missing_module_config))
    weights = load_file(str(missing_module / "adapter_model.safetensors"))
    weights = {k.replace("mlp.up_proj", "mlp.w9_proj"): v for k, v in weights.items()}
    save_file(weights, str(missing_module / "adapter_model.safetensors"))

    expectations = {
        "wrong-shape": (wrong_shape, "do not fit the base weight"),
        "other-arch": (other_arch, "does not exist in the base"),
        "missing-module": (missing_module, "'model.layers.0.mlp.w9_proj' does not exist in the base"),
    }
    for name, (directory, reason) in expectations.items():
        version = push_adapter(alice, directory, base, name=f"acme/{name}")
        assert version.status == Status.REJECTED, name
        assert reason in version.status_reason, (name, version.status_reason)
        assert not Job.objects.filter(adapter_version=version).exists()

    # Dynamic: a forward pass on a worker.
    pool.start("w1")
    nan = push_adapter(
        alice,
        adapter_with(zoo, tmp_path, "nan", lambda k, v: np.full_like(v, np.nan) if "lora_B" in k else v),
        base,
        name="acme/nan",
    )
    zero = push_adapter(
        alice,
        adapter_with(zoo, tmp_path, "zero", lambda k, v: np.zeros_like(v) if "lora_B" in k else v),
        base,
        name="acme/zero",
    )
    for version, reason in ((nan, "NaN or Inf"), (zero, "does not change the base's outputs")):
        rejected = wait_for_status(version, pool)
        assert rejected.status == Status.REJECTED and reason in rejected.status_reason, rejected.status_reason
    # The weight is named as in the adapter's file, not by the worker's slot for it.
    assert re.search(
        r"\(e\.g\. base_model\.model\.\S+\.lora_B\.weight\)", AdapterVersion.objects.get(pk=nan.pk).status_reason
    )


def test_affinity_sends_the_next_job_for_a_base_to_the_worker_holding_it(pool, alice, zoo):
    first_worker = pool.start("w1")
    base = push_base(alice, zoo.llama)
    first = push_adapter(alice, zoo.adapters["attention"], base)
    wait_for_status(first, pool)
    assert Job.objects.get(adapter_version=first).base_was_resident is False
    wait_for(
        lambda: Worker.objects.get(hostname=first_worker).holds_base(base.id),
        15,
        "the heartbeat to report the base",
        pool,
    )

    pool.start("w2")
    second = push_adapter(alice, zoo.adapters["rslora"], base, name="acme/other")
    wait_for_status(second, pool)
    job = Job.objects.get(adapter_version=second)
    assert job.queue == f"worker.{first_worker}"
    assert job.ran_on == first_worker and job.base_was_resident is True


@pytest.mark.parametrize("victim_index", [0])
def test_a_job_of_a_killed_worker_is_rerun_elsewhere_and_recorded_once(pool, alice, zoo, tmp_path, victim_index):
    base = push_base(alice, zoo.llama)
    version = push_adapter(alice, zoo.adapters["attention"], base)
    Job.objects.filter(adapter_version=version).delete()  # only the long evaluation below matters here
    lines = (build.DEMO_DIR / "corpus.txt").read_text().splitlines()
    suite = register_suite(
        alice, tmp_path, [{"text": lines[i % len(lines)] * 3} for i in range(1000)], name="acme/long"
    )

    workers = [pool.start("w1"), pool.start("w2")]
    job = adapter_version_evaluate(version=version, suite=suite)
    running = wait_for(
        lambda: Job.objects.filter(id=job.id, state=Job.State.RUNNING).first(), 60, "the job to start", pool
    )
    victim = running.ran_on
    survivor = next(w for w in workers if w != victim)
    pool.kill(victim)
    # A real beat process schedules the reaper, which the surviving worker runs.
    pool.start_beat(WORKER_REAP_INTERVAL_SECONDS="1")

    wait_for(
        lambda: Worker.objects.filter(hostname=victim, state=Worker.State.LOST).exists(),
        60,
        "beat's reaper to mark the killed worker lost",
        pool,
    )
    done = wait_for(lambda: job_done(job.id), 180, "the re-run", pool)
    assert done.state == Job.State.SUCCEEDED, done.error
    assert done.ran_on == survivor and done.attempts == 2
    assert Job.objects.filter(adapter_version=version, kind=Job.Kind.EVALUATION).count() == 1
    assert done.result["metrics"]["adapter"]["examples"] == 1000
