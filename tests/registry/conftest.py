"""Fixtures shared by the registry tests."""

import pytest

from tests.helpers import directory_files, upload


@pytest.fixture
def api_pushed(alice_client, zoo):
    """One base and one adapter version, pushed through the API like a user would."""
    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama))
    adapter = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/bot", "base": "acme/llama:v1"},
        directory_files(zoo.adapters["attention"]),
    )
    assert (base.status_code, adapter.status_code) == (201, 201)
    return base.json(), adapter.json()


@pytest.fixture
def no_network():
    """Loopback only: a test that tries to reach another host fails (see tests/no_network.py)."""
    from tests.no_network import network_blocked

    with network_blocked() as attempts:
        yield
    assert not attempts, f"network access attempted: {attempts}"


@pytest.fixture
def carol_client(carol):
    """The admin's API client (policies, operator actions)."""
    from tests.conftest import _client_for

    return _client_for(carol)


@pytest.fixture
def base(alice_client, zoo):
    """One base version, acme/llama:v1, pushed through the API."""
    response = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama))
    assert response.status_code == 201
    return response.json()
