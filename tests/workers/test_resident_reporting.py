"""What the pool's readers make of the resident snapshot a heartbeat stored: the Workers page,
/metrics, `adapterctl workers` and routing by affinity, with well-formed and malformed snapshots."""

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from registry.models import Job, Worker
from registry.residency.snapshot import CacheStats, ResidentAdapterEntry, ResidentBaseEntry, ResidentSnapshot
from registry.services.jobs import route_job
from tests.workers.test_cli_api_ui import cli
from tests.workers.test_reference_choice import push
from tests.workers.test_worker_pool import push_base


@pytest.fixture
def bot(alice, zoo):
    return push(alice, zoo.adapters["attention"], push_base(alice, zoo.llama), "acme/bot")


def reported(bot, *, attached: bool = True) -> dict:
    base = str(bot.base_version_id)
    return ResidentSnapshot(
        bases=(ResidentBaseEntry(base, "acme/llama:v1", "causal_lm", 4096),),
        adapters=(ResidentAdapterEntry(str(bot.id), bot.ref, base, "slot-0123456789ab"),) if attached else (),
        budget_bytes=10**9,
        stats=CacheStats(hits=4, misses=1, attach_count=6, attach_seconds_total=0.5, switches=3, loads=1, hotswaps=2),
    ).to_dict()


def worker(name: str, resident, queues=("gpu",)) -> Worker:
    return Worker.objects.create(
        hostname=name,
        direct_queue=f"worker.{name}",
        queues=list(queues),
        device_type="cpu",
        last_heartbeat_at=timezone.now(),
        resident=resident,
    )


def malformed(bot) -> dict:
    resident = reported(bot)
    resident["bases"].append({"id": 7, "ref": "acme/other:v1"})
    resident["adapters"].append("not an object")
    resident["stats"]["hits"] = "many"
    return resident


def test_the_workers_page_shows_residents_and_survives_a_malformed_snapshot(client, alice, bot):
    worker("w1@host", malformed(bot))
    worker("w2@host", "not a snapshot")
    client.force_login(alice)
    response = client.get("/workers/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<a href="/adapters/acme/bot/v1/">acme/bot:v1</a>' in html and "slot <code>slot-0123456789ab</code>" in html
    assert "acme/llama:v1" in html and "3 malformed entries in the last heartbeat left out" in html
    assert "1 malformed entry in the last heartbeat left out" in html  # w2's snapshot is not even an object
    assert "attaches: 3 switch · 2 hot-swap · 1 load" in html


def test_metrics_count_residents_and_attach_paths_from_a_malformed_snapshot(client, alice, bot):
    worker("w1@host", malformed(bot))
    worker("w2@host", "not a snapshot")
    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    response = client.get("/metrics")
    metrics = response.content.decode()
    assert response.status_code == 200
    assert 'registry_worker_resident_bytes{worker="w1@host"} 4096.0' in metrics
    assert 'registry_worker_resident_bytes{worker="w2@host"} 0.0' in metrics
    assert 'registry_resident_cache_hits_total{worker="w1@host"} 0.0' in metrics  # "many" is no count
    assert 'registry_adapter_attach_paths_total{path="hotswap",worker="w1@host"} 2.0' in metrics
    assert 'registry_adapter_attach_paths_total{path="switch",worker="w1@host"} 3.0' in metrics


def test_adapterctl_workers_lists_what_validates(live_server, alice, bot):
    worker("w1@host", malformed(bot))
    worker("w2@host", "not a snapshot")
    listed = cli(live_server, Token.objects.create(user=alice).key, "workers")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("w1@host") and lines[0].endswith("resident: acme/llama:v1")
    assert lines[1].startswith("w2@host") and lines[1].endswith("resident: -")


def test_routing_prefers_a_holder_of_the_base_and_then_one_with_the_adapter_attached(bot):
    job = Job.objects.create(kind=Job.Kind.COMPATIBILITY, adapter_version=bot)
    worker("a-empty@host", {})
    worker("b-malformed@host", "not a snapshot")
    assert route_job(job) == "gpu"
    worker("c-base@host", reported(bot, attached=False))
    assert route_job(job) == "worker.c-base@host"
    worker("d-adapter@host", reported(bot))
    assert route_job(job) == "worker.d-adapter@host"
