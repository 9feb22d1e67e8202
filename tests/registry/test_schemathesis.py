"""Schemathesis against the live test server: the OpenAPI schema is the contract.

Every operation of /api/schema/ is fuzzed over real HTTP with every check Schemathesis has
(no 5xx, only documented statuses and content types, responses that match their schema,
schema-valid requests accepted, schema-invalid ones refused, auth not ignored, ...). The run is
bounded (examples per operation) and seeded, so CI sees the same requests every time.

What the fuzzer may write is confined to the `fuzz` namespace: the names it can generate are
narrowed to `fuzz/...` and every case ends by checking that nothing exists outside it.
"""

import copy
import json

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry import roles
from registry.api.schema import NAME_REGEX
from registry.models import Adapter, BaseModel, EvaluationSuite, SuiteAttachment
from registry.refs import SEGMENT
from tests.conftest import _user
from tests.helpers import directory_files, upload

FUZZ_TOKEN = "f0" * 20
NAMESPACE = "fuzz"
# What the fuzz user finds already there; the examples phase sends these references, so the
# 2xx answers (lists with rows, details, lineage, checks) are checked against their schemas too.
BASE, ADAPTER, SUITE = f"{NAMESPACE}/llama", f"{NAMESPACE}/bot", f"{NAMESPACE}/corpus"
EXAMPLE_REFS = {"/api/v1/bases/": f"{BASE}:v1", "/api/v1/adapters/": f"{ADAPTER}:v1", "/api/v1/suites/": SUITE}
EXAMPLE_BODIES = {
    "/api/v1/adapters/{ref}/evaluations": {"suite": f"{SUITE}:v1"},
    "/api/v1/suites/{ref}/attach": {"adapter": ADAPTER},
}

# The schema can say what an upload looks like, not what makes a valid safetensors file or a
# real password: schema-valid uploads with the fuzzer's random bytes are refused (400 before
# the content is read, 413 past a limit, 422 once read), and so are made-up credentials.
CONTENT_REFUSALS = ["2xx", "401", "403", "404", "409", "400", "413", "422"]
# Each filter key selects on its own, so one operation is named by its label ("METHOD path").
OPERATIONS = [
    {"include-name": label, "checks": {"positive_data_acceptance": {"expected-statuses": statuses}}}
    for label, statuses in (
        ("POST /api/v1/bases/", CONTENT_REFUSALS),
        ("POST /api/v1/adapters/", CONTENT_REFUSALS),
        ("POST /api/v1/adapters/bulk", CONTENT_REFUSALS),
        ("POST /api/v1/suites/", CONTENT_REFUSALS),
        ("POST /api/v1/adapters/{ref}/signatures", CONTENT_REFUSALS),
        ("POST /api/v1/auth/token", ["2xx", "400", "429"]),
    )
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260101,
        "generation": {"max-examples": 50, "deterministic": True},
        "headers": {"Authorization": f"Token {FUZZ_TOKEN}"},
        "checks": {"enabled": True},
        "phases": {"stateful": {"enabled": False}},
        "operations": OPERATIONS,
    }
)


def _confined(document: dict) -> dict:
    """The served schema with two test-only changes: names the fuzzer writes are in `fuzz/`,
    and references to the seeded versions are examples."""
    document = copy.deepcopy(document)
    for component in document["components"]["schemas"].values():
        for field in component.get("properties", {}).values():
            if field.get("pattern") == NAME_REGEX:
                field["pattern"] = f"^{NAMESPACE}/{SEGMENT}$"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                prefix = next((p for p in EXAMPLE_REFS if path.startswith(p)), None)
                if parameter["name"] == "ref" and prefix:
                    parameter["example"] = EXAMPLE_REFS[prefix]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body and path in EXAMPLE_BODIES:
                body["example"] = EXAMPLE_BODIES[path]
    return document


schema = schemathesis.openapi.from_dict(
    _confined(SchemaGenerator().get_schema(request=None, public=True)), config=CONFIG
)


def _suite_rows() -> bytes:
    return b"".join(json.dumps({"text": text}).encode() + b"\n" for text in ("hello world", "fuzz me"))


@pytest.fixture
def fuzz_world(transactional_db, zoo):
    """A fuzz user (engineer) with a fixed token, and one base, adapter and suite in `fuzz/`."""
    user = _user("fuzz", roles.ENGINEER)
    Token.objects.create(user=user, key=FUZZ_TOKEN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {FUZZ_TOKEN}")
    seeded = [
        upload(client, "/api/v1/bases/", {"name": BASE}, directory_files(zoo.llama)),
        upload(
            client,
            "/api/v1/adapters/",
            {"name": ADAPTER, "base": f"{BASE}:v1"},
            directory_files(zoo.adapters["attention"]),
        ),
        upload(client, "/api/v1/suites/", {"name": SUITE, "task_type": "causal_lm"}, [("suite.jsonl", _suite_rows())]),
    ]
    assert [response.status_code for response in seeded] == [201, 201, 201]
    return user


def _outside_the_fuzz_namespace() -> list[str]:
    names = [f"{r.namespace}/{r.name}" for model in (BaseModel, Adapter, EvaluationSuite) for r in model.objects.all()]
    names += [a.adapter.full_name for a in SuiteAttachment.objects.select_related("adapter")]
    return [name for name in names if not name.startswith(f"{NAMESPACE}/")]


@schema.parametrize()
# Each case talks to a server that shares the test's database; the fixture seeds it once per operation.
# filter_too_much: negating a body whose only required field is free text (e.g. a rollback's reason)
# leaves few strings to try; the cases that are generated still run.
@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    deadline=None,
)
def test_the_api_keeps_its_schema(case, live_server, fuzz_world):
    case.call_and_validate(base_url=live_server.url)
    assert not _outside_the_fuzz_namespace()


# --- What the fuzzer found, pinned ----------------------------------------------------------


@pytest.mark.parametrize("page_size", ["0", "201", "ten", "-1", "٣"])
def test_it_refuses_a_page_size_outside_the_documented_range(alice_client, page_size):
    response = alice_client.get(f"/api/v1/adapters/?page_size={page_size}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "page_size" in response.json()["error"]["detail"]


def test_it_refuses_a_namespace_longer_than_its_column(alice_client, zoo):
    response = upload(alice_client, "/api/v1/bases/", {"name": f"{'n' * 65}/llama"}, directory_files(zoo.llama))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_name"
    assert not BaseModel.objects.exists()


def test_the_adapters_of_a_base_apply_their_documented_filters(alice_client, zoo):
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).json()
    upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/bot", "base": base["ref"]},
        directory_files(zoo.adapters["attention"]),
    )
    url = f"/api/v1/bases/{base['ref']}/adapters"
    assert [a["ref"] for a in alice_client.get(f"{url}?name=bot").json()["results"]] == ["acme/bot:v1"]
    assert alice_client.get(f"{url}?name=other").json()["results"] == []
    assert alice_client.get(f"{url}?r=0").json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("url", ["/api/v1/adapters/?r=", "/api/v1/jobs/?older_than="])
def test_an_empty_integer_filter_is_refused_as_documented(alice_client, url):
    response = alice_client.get(url)
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
