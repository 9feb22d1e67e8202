"""Every response under /api/ is JSON in the error shape, whatever DEBUG says: the
errors Django raises itself (400, 404, 405, 413, 500) included. Elsewhere the HTML
pages stay."""

import pytest
from django.test import Client

from tests.helpers import leftovers, upload


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_an_unknown_api_url_is_a_json_404(debug, alice_client):
    json_error(alice_client.get("/api/v1/no-such-thing/"), 404, "not_found")
    json_error(Client().get("/api/nothing"), 404, "not_found")


def test_a_slash_redirect_still_happens_first(debug, alice_client):
    assert alice_client.get("/api/v1/adapters").status_code == 301


def test_a_wrong_method_is_a_json_405(debug, alice_client):
    response = alice_client.delete("/api/v1/adapters/")
    json_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_an_oversized_form_field_is_a_json_413(debug, alice_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = leftovers()
    response = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/x", "base": "acme/y:v1", "provenance": '{"dataset_name": "' + "x" * 2000 + '"}'},
        [("adapter_config.json", b"{}")],
    )
    json_error(response, 413, "request_too_large")
    assert leftovers() == before


def test_too_many_form_fields_are_a_json_400(debug, alice_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"field{i}": "x" for i in range(10)}
    json_error(upload(alice_client, "/api/v1/bases/", fields, []), 400, "too_many_fields")


def test_a_suspicious_host_is_a_json_400(debug):
    # DisallowedHost (a SuspiciousOperation) is raised by middleware, before any view.
    response = Client(HTTP_HOST="evil.example").get("/api/v1/adapters/")
    json_error(response, 400, "bad_request")


@pytest.mark.urls("tests.registry.error_urls")
@pytest.mark.parametrize("path", ["/api/v1/test-broken", "/api/test-broken-plain"])
def test_an_unexpected_exception_is_a_json_500_without_traceback(debug, path):
    client = Client(raise_request_exception=False)
    response = client.get(path)
    error = json_error(response, 500, "internal_error")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert set(error) == {"code", "message"}


@pytest.mark.urls("tests.registry.error_urls")
def test_pages_outside_the_api_keep_their_html(settings, alice):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("text/html")
    assert b"Not found" in missing.content
    broken = client.get("/test-broken-page")
    assert broken.status_code == 500 and broken["Content-Type"].startswith("text/html")
