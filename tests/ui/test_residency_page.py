"""The Residency page (issue 12, item 8): the latest plan per serving worker, recent telemetry, the
planner against LRU on the last day's traffic, and what the next plan will change.

The fleet is built through the services the API calls: serving_worker_register, alias_move (via
the plan tests' helper), telemetry_ingest and residency_replan. Catalog rows come from the fleet
tests' factories: planning reads sizes, ranks, bases and aliases, never files.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from registry.models import AuditEvent, ResidencyPlan, WebhookDelivery
from registry.services.residency import residency_preview, residency_replan
from registry.services.serving_fleet import residency_pin_add, serving_worker_register
from registry.services.telemetry import telemetry_ingest
from tests.residency_api.conftest import make_base
from tests.residency_plans.conftest import alias, one_version

HOSTILE = "<script>alert(1)</script>"
URL = "/residency/"
HTMX = {"HTTP_HX_REQUEST": "true"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("UI_SCREENSHOTS") else None


@pytest.fixture(autouse=True)
def fresh_cache():
    """The replay is cached for 10 minutes; each test starts without it."""
    cache.clear()
    yield
    cache.clear()


def window(version, *, minutes_ago: int, requests: int, cold: int = 0, p50=None, p99=None, length: int = 5) -> dict:
    end = timezone.now().replace(microsecond=0) - timedelta(minutes=minutes_ago)
    row = {
        "adapter": version.digest_ref,
        "start": (end - timedelta(minutes=length)).isoformat(),
        "end": end.isoformat(),
        "requests": requests,
        "cold_loads": cold,
    }
    if p50 is not None:
        row.update(ttft_p50_ms=p50, ttft_p99_ms=p99)
    return row


class Fleet:
    def __init__(self, admin, adapters: int = 30):
        self.admin = admin
        self.base = make_base("acme/llama")
        self.versions = []
        for index in range(adapters):
            version = one_version(self.base, f"acme/a{index:02d}", r=16)
            alias(version)
            self.versions.append(version)

    def register(self, name: str, bases=None, **fields):
        defaults = {"engine": "vllm", "endpoint": f"http://{name}.internal:8000", "gpu_slots": 25}
        refs = [base.ref for base in bases or [self.base]]
        return serving_worker_register(by=self.admin, name=name, base_refs=refs, **{**defaults, **fields})

    def post(self, worker: str, windows: list) -> None:
        telemetry_ingest(by=self.admin, worker_name=worker, windows=windows)


@pytest.fixture
def fleet(carol) -> Fleet:
    """w1 (vLLM, 25 GPU slots, 10 host slots) serves llama's 30 adapters, with telemetry for each
    (hotter with a lower index); w2 (SGLang, a hostile label, no telemetry) serves mistral, which
    has no adapter, so w1 holds every llama adapter the plan places."""
    fleet = Fleet(carol)
    fleet.register("w1", host_slots=10, labels={"team": "search"})
    mistral = make_base("acme/mistral")
    fleet.register(
        "w2", engine="sglang", gpu_slots=None, gpu_bytes=40_000_000, labels={"note": HOSTILE}, bases=[mistral]
    )
    rows = [window(v, minutes_ago=10, requests=300 - 10 * i) for i, v in enumerate(fleet.versions)]
    fleet.post("w1", rows)
    return fleet


def test_it_shows_each_worker_its_planned_tiers_and_its_telemetry(client, bob, fleet):
    plan = residency_replan(trigger="manual")
    state = plan.worker_states.get(worker__name="w1")
    client.force_login(bob)
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Re-plan now" not in html  # an auditor reads, never re-plans
    assert f"{plan.expected_gpu_hit_rate:.1%}" in html and "<code>manual</code>" in html
    card = _card(html, "w1")
    assert "vllm" in card and "http://w1.internal:8000" in card and "acme/llama:v1" in card and "25 slots" in card
    pinned = [e for e in state.desired["gpu"] if e["pinned"]]
    # 25 slots: 24 pinned, the planner's reserve slot loaded unpinned (the engine's LRU keeps it).
    assert len(pinned) == 24 and len(state.desired["gpu"]) == 25 and len(state.desired["host"]) == 5
    assert f'<span class="count">{len(pinned)}</span>' in card and "Show all 24" in card  # 20 shown of 24
    hottest = fleet.versions[0]
    assert f'href="/adapters/acme/a00/v1/" title="{hottest.digest_ref}"' in card
    assert card.count("<li>") == 20 + 1 + 5 + 0  # pinned GPU (first 20), unpinned GPU, host, disk
    assert "changed in the latest plan" in card
    assert "No telemetry from this worker" in _card(html, "w2")


def _card(html: str, name: str) -> str:
    match = re.search(rf'<section class="card worker-card" id="worker-{name}".*?</section>', html, re.S)
    assert match, f"no card for {name}"
    return match.group(0)


def test_it_sums_the_last_hour_and_day_request_weighted(client, bob, fleet):
    a, b = fleet.versions[0], fleet.versions[1]
    fleet.register("w3")
    fleet.post(
        "w3",
        [
            window(a, minutes_ago=5, requests=100, cold=10, p50=100.0, p99=400.0),
            window(b, minutes_ago=20, requests=300, cold=3, p50=200.0, p99=800.0),
            window(a, minutes_ago=180, requests=600, cold=6, p50=50.0, p99=100.0),
            window(b, minutes_ago=26 * 60, requests=9999),  # older than a day: not counted
        ],
    )
    client.force_login(bob)
    card = _card(client.get(URL).content.decode(), "w3")
    hour = re.search(r'<tr data-period="hour">(.*?)</tr>', card, re.S).group(1)
    day = re.search(r'<tr data-period="day">(.*?)</tr>', card, re.S).group(1)
    # hour: 400 requests, 13 cold (3.2%), p50 (100·100 + 200·300) / 400 = 175, p99 700
    assert _cells(hour) == ["last hour", "400", "13", "3.2%", "175.0 ms", "700.0 ms"]
    # day: 1000 requests, 19 cold, p50 (10000 + 60000 + 30000) / 1000 = 100, p99 (40000 + 240000 + 60000) / 1000
    assert _cells(day) == ["last day", "1000", "19", "1.9%", "100.0 ms", "340.0 ms"]
    top = re.search(r'<table class="list top-adapters">.*?</table>', card, re.S).group(0)
    assert _cells(top)[:6] == ["acme/a00:v1", "700", "16", "acme/a01:v1", "300", "3"]


def _cells(html: str) -> list:
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def test_it_shows_the_top_ten_adapters_only(client, bob, fleet):
    client.force_login(bob)
    top = re.search(
        r'<table class="list top-adapters">.*?</table>', _card(client.get(URL).content.decode(), "w1"), re.S
    )
    rows = re.findall(r"<tr><td>", top.group(0))
    assert len(rows) == 10 and "acme/a00:v1" in top.group(0) and "acme/a10:v1" not in top.group(0)


def test_it_tells_what_to_do_when_no_worker_is_registered(client, bob):
    client.force_login(bob)
    html = client.get(URL).content.decode()
    assert 'id="no-workers"' in html and "POST /api/v1/residency/workers" in html


def test_it_tells_when_the_planner_runs_before_the_first_plan(client, bob, carol, settings):
    Fleet(carol).register("w1")
    client.force_login(bob)
    html = client.get(URL).content.decode()
    assert 'id="no-plan"' in html and f"every {settings.RESIDENCY_PLAN_INTERVAL_SECONDS} s" in html
    assert "Not planned yet" in _card(html, "w1")
    assert "POST /api/v1/telemetry" in _card(html, "w1")  # and no telemetry either


def test_it_escapes_labels_and_other_worker_text(client, bob, fleet):
    residency_replan(trigger=HOSTILE)
    client.force_login(bob)
    html = client.get(URL).content.decode()
    assert HOSTILE not in html
    assert "note=&lt;script&gt;alert(1)&lt;/script&gt;" in _card(html, "w2")
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html  # the trigger


def test_it_offers_admins_a_replan_that_stores_a_manual_plan(client, carol, fleet):
    client.force_login(carol)
    assert "Re-plan now" in client.get(URL).content.decode()
    response = client.post("/residency/replan", follow=True)
    assert response.status_code == 200
    plan = ResidencyPlan.objects.get()
    assert plan.trigger == "manual" and f"Plan {plan.id} stored: 2 worker(s)" in response.content.decode()
    event = AuditEvent.objects.get(type="residency.plan")
    assert event.actor_name == "carol"


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_it_refuses_the_replan_to_anyone_but_an_admin(client, fleet, user, request):
    client.force_login(request.getfixturevalue(user))
    assert "Re-plan now" not in client.get(URL).content.decode()
    response = client.post("/residency/replan")
    assert response.status_code == 403
    assert not ResidencyPlan.objects.exists()
    assert AuditEvent.objects.filter(type="access.denied", actor_name=user).exists()


def test_it_needs_a_sign_in(client, fleet):
    assert client.get(URL).status_code == 302
    assert client.post("/residency/replan").status_code == 302
    assert not ResidencyPlan.objects.exists()


def test_the_replan_form_carries_the_csrf_token(carol, fleet):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(carol)
    assert strict.post("/residency/replan").status_code == 403
    html = strict.get(URL).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert strict.post("/residency/replan", {"csrfmiddlewaretoken": token}).status_code == 302
    assert ResidencyPlan.objects.count() == 1


# --- Show all ------------------------------------------------------------------------------------


def test_show_all_sends_every_entry_of_a_tier_as_a_fragment(client, bob, fleet):
    plan = residency_replan(trigger="manual")
    client.force_login(bob)
    response = client.get(f"/residency/workers/w1/gpu-pinned/?plan={plan.id}", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert html.count("<li>") == 24 and "Next →" not in html
    refs = re.findall(r'title="([^"]+)"', html)
    state = plan.worker_states.get(worker__name="w1")
    assert refs == [entry["ref"] for entry in state.desired["gpu"] if entry["pinned"]]  # hottest first, as stored


def test_show_all_pages_from_a_position_and_works_without_htmx(client, bob, fleet):
    plan = residency_replan(trigger="manual")
    client.force_login(bob)
    html = client.get(f"/residency/workers/w1/gpu-pinned/?plan={plan.id}&start=20").content.decode()
    assert "<html" in html and '<ol class="entries" start="21">' in html and html.count("<li>") == 4
    assert "21–24 of 24" in html and "← Previous" in html


@pytest.mark.parametrize(
    "path",
    ["/residency/workers/nobody/gpu-pinned/", "/residency/workers/w1/cpu/", "/residency/workers/w1/host/?plan=x"],
)
def test_show_all_answers_404_for_what_does_not_exist(client, bob, fleet, path):
    residency_replan(trigger="manual")
    client.force_login(bob)
    assert client.get(path).status_code == 404


# --- The replay ------------------------------------------------------------------------------------


def test_the_replay_fragment_draws_both_policies_and_is_cached(client, bob, fleet):
    client.force_login(bob)
    page = client.get(URL).content.decode()
    assert 'hx-get="/residency/?panel=replay" hx-trigger="load"' in page and "<svg" not in page
    response = client.get(f"{URL}?panel=replay", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert html.count('<svg class="hit-rate"') == 1
    assert '<path class="series planner" d="M' in html and '<path class="series lru" d="M' in html
    requests = sum(300 - 10 * i for i in range(30))
    assert f"{requests} in the telemetry of 1 worker" in html and "scaled down" not in html
    lru = re.search(r'<dd class="lru-rate">([\d.]+)%', html).group(1)
    planner = re.search(r'<dd class="planner-rate">([\d.]+)%', html).group(1)
    assert 0 < float(lru) <= 100 and 0 < float(planner) <= 100
    fleet.post("w1", [window(fleet.versions[0], minutes_ago=40, requests=1000)])
    assert client.get(f"{URL}?panel=replay", **HTMX).content.decode() == html  # the cached figures


def test_the_replay_scales_a_big_day_down_and_says_so(client, bob, fleet):
    fleet.post("w1", [window(fleet.versions[0], minutes_ago=70, requests=250_000)])
    client.force_login(bob)
    html = client.get(f"{URL}?panel=replay", **HTMX).content.decode()
    seen = 250_000 + sum(300 - 10 * i for i in range(30))
    assert f"The day held {seen} requests" in html
    replayed = int(re.search(r"scaled down proportionally to (\d+)", html).group(1))
    assert 199_999 <= replayed <= 200_000  # every (seen / 200,000)-th request, give or take the rounding
    planner = re.search(r'<dd class="planner-rate">.*?\((\d+) of (\d+)\)', html, re.S)
    assert int(planner.group(2)) == replayed


def test_the_replay_without_telemetry_says_what_to_post(client, bob, carol):
    Fleet(carol).register("w1")
    client.force_login(bob)
    html = client.get(f"{URL}?panel=replay", **HTMX).content.decode()
    assert "No telemetry in the last 24 hours" in html and "<svg" not in html


def test_a_panel_without_htmx_renders_the_whole_page_with_it(client, bob, fleet):
    client.force_login(bob)
    html = client.get(f"{URL}?panel=replay").content.decode()
    assert "<html" in html and '<svg class="hit-rate"' in html and 'id="worker-w1"' in html
    assert client.get(f"{URL}?panel=nothing").status_code == 404


# --- The next plan -----------------------------------------------------------------------------------


def test_it_previews_the_next_plan_without_storing_it(fleet):
    plan = residency_replan(trigger="manual")
    events, deliveries = AuditEvent.objects.count(), WebhookDelivery.objects.count()
    preview = residency_preview()
    assert ResidencyPlan.objects.count() == 1
    assert (AuditEvent.objects.count(), WebhookDelivery.objects.count()) == (events, deliveries)
    stored = {state.worker.name: state for state in plan.worker_states.select_related("worker")}
    assert set(preview.desired) == set(stored) == set(preview.current)
    for name, state in stored.items():  # same inputs: the same state as the stored plan
        assert preview.desired[name]["digest"] == state.digest


def test_the_next_plan_panel_lists_loads_per_worker_and_tier(client, bob, fleet):
    residency_replan(trigger="manual")
    phi = make_base("acme/phi")
    alias(one_version(phi, "acme/b0"))
    fleet.register("w3", bases=[phi], gpu_slots=2)  # new: everything it will hold is a load
    residency_pin_add(by=fleet.admin, target="acme/b0:production", reason="no traffic yet, keep it warm")
    client.force_login(bob)
    html = client.get(f"{URL}?panel=next", **HTMX).content.decode()
    assert "<html" not in html and "1 of 3 workers would change" in html
    rows = re.findall(r'<tr data-worker="w3" data-tier="gpu">(.*?)</tr>', html, re.S)
    assert len(rows) == 1 and "(first plan)" in rows[0] and "+1" in rows[0] and "acme/b0:v1" in rows[0]
    assert re.search(r'<tr data-worker="w1"><td><code>w1</code></td><td colspan="3" class="sub">no change', html)
    assert ResidencyPlan.objects.count() == 1  # a preview stores nothing


# --- Chromium -------------------------------------------------------------------------------------


def a_day_of_drifting_traffic(versions: list) -> list:
    """Hourly windows over the last 22 hours, Zipf-like over the versions, the hot set moving every 6 hours."""
    rows = []
    for hours_ago in range(1, 23):
        for index, version in enumerate(versions):
            rank = (index + (hours_ago // 6) * 7) % len(versions)
            rows.append(window(version, minutes_ago=60 * hours_ago, length=60, requests=1000 // (rank + 1)))
    return rows


def _screenshot(page, tmp_path) -> None:
    """`make screenshots` (UI_SCREENSHOTS=1) refreshes the README's picture; other runs keep it in a temp dir."""
    directory = SCREENSHOTS or tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "residency.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank image


def test_in_chromium_the_plot_loads_lazily_and_show_all_opens_a_tier(page, live_server, transactional_db, tmp_path):
    from django.contrib.auth.models import Group, User
    from playwright.sync_api import expect

    from registry import roles
    from tests.conftest import sign_in
    from tests.ui.test_csp import Violations

    admin = User.objects.create_user("carol", password="carol-password")
    admin.groups.add(Group.objects.get_or_create(name=roles.ADMIN)[0])
    fleet = Fleet(admin, adapters=60)
    fleet.register("w1", host_slots=10, labels={"team": "search", "note": HOSTILE})
    fleet.register("w2", engine="sglang", gpu_slots=None, gpu_bytes=40_000_000, bases=[make_base("acme/mistral")])
    fleet.post("w1", a_day_of_drifting_traffic(fleet.versions))
    residency_replan(trigger="manual")

    violations = Violations(page)  # the CSP: no inline style or script in the plot or the fragments
    sign_in(page, live_server, "carol", "carol-password")
    page.goto(f"{live_server.url}/residency/")
    page.locator("svg.hit-rate").wait_for(timeout=60_000)  # the lazy panel replaced itself
    assert page.locator("svg.hit-rate path.series").count() == 2
    page.locator("#next table.next-changes").wait_for()
    assert HOSTILE in page.inner_text("#worker-w1")  # shown as text, never run
    _screenshot(page, tmp_path)

    tier = page.locator('#worker-w1 .tier[data-tier="gpu-pinned"]')
    assert tier.locator("li").count() == 20
    tier.locator("a.show-all").click()
    expect(tier.locator("li")).to_have_count(24)  # a locator wait: the CSP refuses wait_for_function's eval
    assert page.url.endswith("/residency/")  # swapped in place, no navigation

    page.click("text=Re-plan now")
    page.wait_for_url(re.compile(r"/residency/$"))
    assert "stored: 2 worker(s)" in page.inner_text(".messages")
    page.wait_for_load_state("networkidle")
    assert violations.messages == []


def test_the_page_costs_the_same_queries_for_more_workers(client, bob, fleet):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    residency_replan(trigger="manual")
    client.force_login(bob)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    for name in ("w3", "w4", "w5"):
        fleet.register(name, gpu_slots=5)
    fleet.post("w3", [window(v, minutes_ago=3, requests=10) for v in fleet.versions[:12]])
    residency_replan(trigger="manual")
    with CaptureQueriesContext(connection) as more:
        html = client.get(URL).content.decode()
    top = re.search(r'<table class="list top-adapters">.*?</table>', _card(html, "w3"), re.S).group(0)
    assert 'id="worker-w5"' in html and top.count("<tr><td>") == 10
    assert len(more) == len(few), [query["sql"][:120] for query in more.captured_queries]


def test_worker_cards_come_in_keyset_pages(client, bob, carol):
    fleet = Fleet(carol, adapters=1)
    names = [f"s{index:02d}" for index in range(22)]
    for name in names:
        fleet.register(name, gpu_slots=1)
    client.force_login(bob)
    first = client.get(URL).content.decode()
    assert re.findall(r'data-worker="(s\d+)"', first) == names[:20]
    assert f'href="/residency/?after={names[19]}"' in first
    second = client.get(f"{URL}?after={names[19]}", **HTMX)
    html = second.content.decode()
    assert "<html" not in html and re.findall(r'data-worker="(s\d+)"', html) == names[20:]
    assert "More workers" not in html and "First workers" in html


def test_the_replay_lists_each_worker_beside_the_fleet(client, bob, fleet):
    fleet.register("w3", gpu_slots=1)
    fleet.post("w3", [window(fleet.versions[i % 2], minutes_ago=30, length=1 + i, requests=5) for i in range(4)])
    client.force_login(bob)
    html = client.get(f"{URL}?panel=replay", **HTMX).content.decode()
    table = re.search(r'<table class="list replay-workers">.*?</table>', html, re.S).group(0)
    assert re.findall(r"<tr><td><code>(w\d)</code>", table) == ["w1", "w3"]
    assert "4670 in the telemetry of 2 workers" in html
