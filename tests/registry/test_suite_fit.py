"""A suite whose task cannot run on the adapter's base is refused when attached or asked for
(422 suite_incompatible), not accepted and failed later on a worker."""

import pytest

from registry.demo import build
from registry.models import Job, SuiteAttachment
from tests.helpers import directory_files, upload
from tests.registry.test_suites_api import suite_upload

ROWS = {
    "causal_lm": [{"text": "hello world"}],
    "classification": [{"text": "great", "label": 1}],
    "exact_match": [{"prompt": "2+2=", "answer": "4"}],
}


@pytest.fixture(scope="module")
def minilm_adapters(tmp_path_factory):
    """The real MiniLM encoder (BertModel, no language-model head) with a plain LoRA and a classifier LoRA."""
    root = tmp_path_factory.mktemp("minilm")
    base = build.export_minilm_base(root / "base")
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}
    plain = build.build_lora_adapter(base, root / "plain", task="encoder", **lora)
    classifier = build.build_lora_adapter(
        base, root / "classifier", task="sequence-classification", modules_to_save=["classifier"], **lora
    )
    return {"base": base, "plain": plain, "classifier": classifier}


def push(client, name, directory, base_ref):
    response = upload(client, "/api/v1/adapters/", {"name": name, "base": base_ref}, directory_files(directory))
    assert response.status_code == 201, response.content
    return response.json()["ref"]


def push_base(client, name, directory):
    response = upload(client, "/api/v1/bases/", {"name": name}, directory_files(directory))
    assert response.status_code == 201, response.content
    return response.json()["ref"]


def attach(client, suite, adapter):
    return client.post(f"/api/v1/suites/{suite}/attach", {"adapter": adapter}, format="json")


def evaluate(client, ref, suite):
    return client.post(f"/api/v1/adapters/{ref}/evaluations", {"suite": suite}, format="json")


def assert_incompatible(response, *words):
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "suite_incompatible"
    for word in words:
        assert word in error["message"], error["message"]


def test_it_refuses_a_classification_suite_on_a_causal_lm(alice_client, zoo):
    ref = push(alice_client, "acme/bot", zoo.adapters["attention"], push_base(alice_client, "acme/llama", zoo.llama))
    suite_upload(alice_client, "acme/sentiment", "classification", ROWS["classification"])

    assert_incompatible(attach(alice_client, "acme/sentiment", "acme/bot"), "classifier", "modules_to_save")
    assert_incompatible(evaluate(alice_client, ref, "acme/sentiment"), "acme/sentiment:v1", "LlamaForCausalLM")
    assert SuiteAttachment.objects.count() == 0 and not Job.objects.filter(kind=Job.Kind.EVALUATION).exists()

    for task_type in ("causal_lm", "exact_match"):  # what a causal LM can run is still accepted
        suite_upload(alice_client, f"acme/{task_type}", task_type, ROWS[task_type])
        assert attach(alice_client, f"acme/{task_type}", "acme/bot").status_code == 200
        assert evaluate(alice_client, ref, f"acme/{task_type}").status_code == 202


@pytest.mark.parametrize("task_type", ["causal_lm", "exact_match"])
def test_it_refuses_language_model_suites_on_an_encoder(alice_client, minilm_adapters, task_type):
    base_ref = push_base(alice_client, "acme/minilm", minilm_adapters["base"])
    ref = push(alice_client, "acme/embedder", minilm_adapters["plain"], base_ref)
    suite_upload(alice_client, "acme/suite", task_type, ROWS[task_type])

    assert_incompatible(attach(alice_client, "acme/suite", "acme/embedder"), "BertModel", "language-model head")
    assert_incompatible(evaluate(alice_client, ref, "acme/suite"), f"a {task_type} suite")
    assert SuiteAttachment.objects.count() == 0 and not Job.objects.filter(kind=Job.Kind.EVALUATION).exists()


def test_a_classifier_adapter_runs_classification_suites_only(alice_client, minilm_adapters):
    base_ref = push_base(alice_client, "acme/minilm", minilm_adapters["base"])
    ref = push(alice_client, "acme/sentiment", minilm_adapters["classifier"], base_ref)
    suite_upload(alice_client, "acme/reviews", "classification", ROWS["classification"])
    suite_upload(alice_client, "acme/corpus", "causal_lm", ROWS["causal_lm"])

    assert attach(alice_client, "acme/reviews", "acme/sentiment").status_code == 200
    assert evaluate(alice_client, ref, "acme/reviews").status_code == 202
    assert_incompatible(evaluate(alice_client, ref, "acme/corpus"), "as a classifier")
