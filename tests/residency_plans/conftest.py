"""A small serving fleet for the re-plan, its API and `adapterctl residency apply`.

Catalog rows come from the fleet tests' factories (tests/residency_api/conftest.py): planning reads
sizes, ranks, bases and aliases, never files. Aliases move through the one writer, alias_move, as
promotions move them; telemetry rows are what the fleet would have posted.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import AdapterVersion, ResidencyPin, ServingWorker, TelemetryWindow
from registry.services.transitions import AliasTarget, alias_move
from tests.residency_api.conftest import make_adapter_versions, make_base

MB = 1_000_000


def serving_worker(name: str, bases: list, **fields) -> ServingWorker:
    values = {"engine": "vllm", "endpoint": f"http://{name}.internal:8000"}
    worker = ServingWorker.objects.create(name=name, **{**values, **fields})
    worker.base_versions.set(bases)
    return worker


def alias(version: AdapterVersion, name: str = "production", canary: AdapterVersion | None = None, weight: int = 0):
    target = AliasTarget(version, canary, weight)
    kind = "canary_start" if canary is not None else "promote"
    return alias_move(version.adapter, name, target, kind=kind, reason="test")


def traffic(worker: ServingWorker, version: AdapterVersion, requests: int, minutes_ago: int = 5) -> None:
    """One five-minute window of `requests` ending `minutes_ago` minutes ago."""
    end = timezone.now() - timedelta(minutes=minutes_ago)
    TelemetryWindow.objects.create(
        worker=worker, adapter_version=version, window_start=end - timedelta(minutes=5), window_end=end,
        requests=requests,
    )  # fmt: skip


def one_version(base, name: str, *, r: int = 16, size: int = 4 * MB) -> AdapterVersion:
    (version,) = make_adapter_versions(base, 1, name=name)
    AdapterVersion.objects.filter(id=version.id).update(r=r, total_bytes=size)
    version.r, version.total_bytes = r, size
    return version


@dataclass
class Fleet:
    workers: dict = field(default_factory=dict)
    served: dict = field(default_factory=dict)  # name -> version with a production alias on a served base
    others: dict = field(default_factory=dict)  # versions that must never be planned


@pytest.fixture
def fleet(db) -> Fleet:
    """Base llama served by w1 (vLLM, 3 GPU slots, rank <= 32) and w2 (SGLang, 10 MB of GPU);
    base mistral by w3 (2 slots); base phi by nobody. Demand falls with the index; a5 is cold but
    pinned everywhere, b2 pinned on w3 through its alias."""
    llama, mistral, phi = make_base("acme/llama"), make_base("acme/mistral"), make_base("acme/phi")
    fleet = Fleet()
    fleet.workers["w1"] = serving_worker("w1", [llama], gpu_slots=3, max_rank=32, host_slots=2, disk_bytes=12 * MB)
    fleet.workers["w2"] = serving_worker(
        "w2", [llama], engine="sglang", gpu_bytes=10 * MB, max_rank=64, host_bytes=8 * MB
    )
    fleet.workers["w3"] = serving_worker("w3", [mistral], gpu_slots=2)
    for index in range(8):
        version = one_version(llama, f"acme/a{index}", r=64 if index == 1 else 16)
        alias(version)
        fleet.served[f"a{index}"] = version
        if index != 5:
            traffic(fleet.workers["w1"], version, requests=1000 // (index + 1))
    for index in range(3):
        version = one_version(mistral, f"acme/b{index}")
        alias(version)
        fleet.served[f"b{index}"] = version
        traffic(fleet.workers["w3"], version, requests=500 // (index + 1))
    fleet.others["phi"] = one_version(phi, "acme/c0")
    alias(fleet.others["phi"])  # served by an alias, but on a base no worker serves
    fleet.others["unaliased"] = one_version(llama, "acme/a0")  # a second version nobody points at
    traffic(fleet.workers["w1"], fleet.others["unaliased"], requests=5000)  # however hot it was
    ResidencyPin.objects.create(adapter_version=fleet.served["a5"], reason="keep warm")
    ResidencyPin.objects.create(adapter=fleet.served["b2"].adapter, alias="production", worker=fleet.workers["w3"])
    return fleet
