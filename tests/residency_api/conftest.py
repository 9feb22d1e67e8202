"""Fixtures for the serving fleet and telemetry: catalog rows made by factories (telemetry needs
only that versions exist; their files play no part), admins and clients."""

import hashlib
import itertools

import pytest

from registry.models import Adapter, AdapterVersion, BaseModel, BaseModelVersion
from tests.conftest import _client_for

_numbers = itertools.count(1)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_base(ref: str = "acme/llama", number: int = 1) -> BaseModelVersion:
    namespace, name = ref.split("/")
    base, _ = BaseModel.objects.get_or_create(namespace=namespace, name=name)
    return BaseModelVersion.objects.create(
        base_model=base,
        number=number,
        digest=digest_of(f"{ref}:v{number}"),
        status="ready",
        total_bytes=1_000_000,
        parameter_count=110_000_000,
    )


def make_adapter_versions(base: BaseModelVersion, count: int, name: str = "acme/bot") -> list[AdapterVersion]:
    """`count` versions of one adapter name on `base`, created in one statement."""
    namespace, short = name.split("/")
    adapter, _ = Adapter.objects.get_or_create(namespace=namespace, name=short)
    start = adapter.versions.count() + 1
    rows = [
        AdapterVersion(
            adapter=adapter,
            base_version=base,
            number=number,
            digest=digest_of(f"{name}:v{number}:{next(_numbers)}"),
            status="ready",
            total_bytes=4_000_000,
            parameter_count=1_000_000,
            peft_type="LORA",
            r=16,
            tensor_count=8,
        )
        for number in range(start, start + count)
    ]
    return AdapterVersion.objects.bulk_create(rows)


@pytest.fixture
def base(db) -> BaseModelVersion:
    return make_base()


@pytest.fixture
def versions(base) -> list[AdapterVersion]:
    return make_adapter_versions(base, 3)


@pytest.fixture
def carol_client(carol):
    return _client_for(carol)
