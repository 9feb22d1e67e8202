"""Evaluation suites through the API: registration, validation, attachment, on-demand runs."""

import json

import pytest

from registry.models import EvaluationSuite, Job, SuiteAttachment
from tests.helpers import directory_files, leftovers, upload


def suite_upload(client, name, task_type, rows):
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    return upload(client, "/api/v1/suites/", {"name": name, "task_type": task_type}, [("suite.jsonl", content)])


def test_it_registers_versions_and_is_idempotent(alice_client):
    first = suite_upload(alice_client, "acme/qa", "exact_match", [{"prompt": "2+2=", "answer": "4"}])
    assert first.status_code == 201 and first.json()["ref"] == "acme/qa:v1" and first.json()["example_count"] == 1
    again = suite_upload(alice_client, "acme/qa", "exact_match", [{"prompt": "2+2=", "answer": "4"}])
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    second = suite_upload(alice_client, "acme/qa", "exact_match", [{"prompt": "3+3=", "answer": "6"}])
    assert second.json()["ref"] == "acme/qa:v2"
    assert EvaluationSuite.objects.count() == 2


@pytest.mark.parametrize(
    "task_type,rows,code",
    [
        ("classification", [{"text": "x"}], "suite_invalid"),
        ("classification", [{"text": "x", "label": "positive"}], "suite_invalid"),
        ("causal_lm", [], "validation_error"),  # an empty file
        ("translation", [{"text": "x"}], "validation_error"),
    ],
)
def test_it_refuses_malformed_suites(alice_client, task_type, rows, code):
    before = leftovers()
    response = suite_upload(alice_client, "acme/bad", task_type, rows)
    assert response.status_code in (400, 422)
    assert response.json()["error"]["code"] == code
    assert leftovers() == before


def test_attach_and_evaluate_on_demand(alice_client, bob_client, zoo):
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).json()
    adapter = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/bot", "base": base["ref"]},
        directory_files(zoo.adapters["attention"]),
    ).json()
    suite_upload(alice_client, "acme/corpus", "causal_lm", [{"text": "hello world"}])
    attached = alice_client.post("/api/v1/suites/acme/corpus/attach", {"adapter": "acme/bot"}, format="json")
    assert attached.status_code == 200 and SuiteAttachment.objects.count() == 1
    queued = alice_client.post(
        f"/api/v1/adapters/{adapter['ref']}/evaluations", {"suite": "acme/corpus:v1"}, format="json"
    )
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    assert Job.objects.filter(kind=Job.Kind.EVALUATION).count() == 1
    assert (
        bob_client.post(
            f"/api/v1/adapters/{adapter['ref']}/evaluations", {"suite": "acme/corpus"}, format="json"
        ).status_code
        == 403
    )
    missing = alice_client.post("/api/v1/suites/acme/corpus/attach", {"adapter": "acme/nobody"}, format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "adapter_not_found"
