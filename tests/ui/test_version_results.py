"""The version page's results: readable metrics, the reference and why, the suite picker,
and the out-of-band updates that keep the badge and versions table live; the Workers page's
recency and resident adapters."""

import pytest
from django.utils import timezone

from registry.models import AdapterVersion, Job, Status, Worker
from tests.workers.test_reference_choice import push
from tests.workers.test_worker_pool import push_base, register_suite


@pytest.fixture
def bot(alice, zoo):
    base = push_base(alice, zoo.llama)
    parent = push(alice, zoo.adapters["attention"], base, "acme/general")
    return push(alice, zoo.child_adapter, base, "acme/bot", parent=parent)


def page_of(client, version, **headers):
    return client.get(f"/adapters/acme/bot/v{version.number}/", **headers)


def test_it_shows_metrics_with_direction_deltas_and_the_reference(client, alice, bot, tmp_path):
    suite = register_suite(alice, tmp_path, [{"text": "hello"}])
    finished = timezone.now()
    Job.objects.create(
        kind=Job.Kind.EVALUATION,
        adapter_version=bot,
        suite=suite,
        state=Job.State.SUCCEEDED,
        ran_on="w1@host",
        finished_at=finished,
        result={
            "metrics": {
                "adapter": {"loss": 2.345678, "perplexity": 10.44, "examples": 1, "examples_per_second": 3.21},
                "base": {"loss": 2.567, "perplexity": 13.03, "examples": 1},
                "reference": {"loss": 2.3, "perplexity": 9.974, "examples": 1},
            },
            "reference": {"ref": "acme/general:v1", "reason": "parent version", "compared": True},
            "device": "cpu",
            "duration_seconds": 1.25,
            "seed": 0,
            "notes": [],
        },
    )
    client.force_login(alice)
    html = page_of(client, bot).content.decode()
    assert 'Loss <span class="sub">(lower is better)</span>' in html
    assert "2.346" in html and "2.345678" not in html  # 4 significant digits
    assert "-0.2213 (-8.622%)" in html and "▲ better" in html  # against base: lower loss
    assert "+0.04568 (+1.986%)" in html and "▼ worse" in html  # against the reference
    assert "delta-better" in html and "delta-worse" in html  # colour as well as the marker
    assert "<code>acme/general:v1</code> (parent version)" in html
    assert f"Ran {timezone.localtime(finished):%Y-%m-%d %H:%M} UTC" in html and "Device: cpu" in html
    assert "Duration: 1.25 s" in html and "Examples per second: 3.210" in html


def test_check_details_are_a_readable_list(client, alice, bot):
    client.force_login(alice)
    html = page_of(client, bot).content.decode()
    assert '<dl class="details">' in html and "<dt>Lora modules</dt><dd>4</dd>" in html
    assert "<dt>Notes</dt><dd>—</dd>" in html  # an empty list says so
    assert "lora_modules=" not in html


def test_engineers_start_an_evaluation_from_the_page(client, alice, bot, tmp_path):
    corpus = register_suite(alice, tmp_path, [{"text": "hello"}])
    register_suite(alice, tmp_path, [{"text": "great", "label": 1}], task_type="classification", name="acme/reviews")
    client.force_login(alice)
    html = page_of(client, bot).content.decode()
    assert 'name="suite"' in html and "acme/corpus:v1" in html
    assert "acme/reviews:v1" not in html  # a causal LM cannot run it: not offered

    response = client.post("/adapters/acme/bot/v1/evaluate", {"suite": "acme/corpus"}, follow=True)
    assert "Evaluation on acme/corpus:v1 queued" in response.content.decode()
    assert Job.objects.filter(kind=Job.Kind.EVALUATION, adapter_version=bot, suite=corpus).count() == 1

    refused = client.post("/adapters/acme/bot/v1/evaluate", {"suite": "acme/reviews"}, follow=True)
    assert "suite_incompatible" in refused.content.decode() and "modules_to_save" in refused.content.decode()
    assert Job.objects.filter(kind=Job.Kind.EVALUATION).count() == 1


def test_auditors_get_no_picker_and_cannot_post(client, bob, bot, alice, tmp_path):
    register_suite(alice, tmp_path, [{"text": "hello"}])
    client.force_login(bob)
    assert 'name="suite"' not in page_of(client, bot).content.decode()
    assert client.post("/adapters/acme/bot/v1/evaluate", {"suite": "acme/corpus"}).status_code == 403
    assert not Job.objects.filter(kind=Job.Kind.EVALUATION).exists()


def test_the_polled_checks_bring_the_badge_lineage_and_versions_out_of_band(client, alice, bot):
    client.force_login(alice)
    fragment = page_of(client, bot, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert fragment.status_code == 200  # the dynamic check is queued: keep polling
    for region in ('id="version-status" hx-swap-oob="true"', 'id="lineage" hx-swap-oob="true"', 'id="versions"'):
        assert region in html
    assert "badge status-checking" in html

    Job.objects.filter(adapter_version=bot).update(state=Job.State.SUCCEEDED)
    AdapterVersion.objects.filter(id=bot.id).update(status=Status.READY)
    done = page_of(client, bot, HTTP_HX_REQUEST="true")
    assert done.status_code == 286 and "badge status-ready" in done.content.decode()
    assert "hx-swap-oob" not in page_of(client, bot).content.decode()  # the full page has each region once


def test_the_workers_page_links_resident_adapters_and_says_how_recent(client, alice, bot):
    Worker.objects.create(
        hostname="w1@host",
        direct_queue="w1",
        device_type="cpu",
        last_heartbeat_at=timezone.now(),
        resident={
            "bases": [{"id": str(bot.base_version_id), "ref": "acme/llama:v1", "head": "causal_lm", "bytes": 1}],
            "adapters": [{"id": str(bot.id), "ref": bot.ref, "base": str(bot.base_version_id)}],
        },
    )
    client.force_login(alice)
    html = client.get("/workers/", HTTP_HX_REQUEST="true").content.decode()
    assert '<a href="/adapters/acme/bot/v1/">acme/bot:v1</a>' in html and "on acme/llama:v1 (causal lm)" in html
    assert " s ago</time>" in html and 'title="20' in html and ' UTC"' in html
    assert 'id="queue-line"' in html and "job(s) waiting in queues" in html  # refreshed with the table
