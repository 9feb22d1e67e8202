"""Phone-sized windows (390 x 844) in Chromium: no page scrolls sideways, and nothing is hidden.
Wide tables scroll inside their own box; evaluation deltas, check details and worker memory stay."""

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from registry import roles
from registry.models import AuditEvent, Job, Worker
from registry.services.promotions import promotion_execute, promotion_request
from registry.webhooks.services import webhook_create
from tests.ui.test_browser import catalogue, sign_in  # noqa: F401  (fixture)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def evaluated(catalogue):  # noqa: F811
    """An evaluation result on the root adapter, shaped as the evaluation runner records it."""
    version = catalogue["root"]
    now = timezone.now()
    Job.objects.create(
        kind=Job.Kind.EVALUATION,
        adapter_version=version,
        state=Job.State.SUCCEEDED,
        started_at=now,
        finished_at=now,
        ran_on="w1@host",
        result={
            "task_type": "causal_lm",
            "device": "cpu",
            "seed": 1234,
            "duration_seconds": 1.25,
            "metrics": {
                "adapter": {"loss": 2.3456789, "perplexity": 10.44, "examples": 12},
                "base": {"loss": 2.5, "perplexity": 12.18, "examples": 12},
                "reference": None,
            },
            "reference": None,
        },
    )
    Worker.objects.create(
        hostname="w1@host",
        direct_queue="worker.w1@host",
        queues=["gpu", "cpu"],
        device_type="cpu",
        host_memory_available=8 * 1024**3,
        last_heartbeat_at=now,
    )
    erin = catalogue["root"].created_by
    erin.groups.add(Group.objects.get_or_create(name=roles.ADMIN)[0])
    return version


@pytest.fixture
def promoted(evaluated):
    """A webhook for every event, then the root adapter on staging (by an admin's override: its checks
    have not run), so the webhook has deliveries waiting (no worker sends them here)."""
    erin = evaluated.created_by
    webhook, _ = webhook_create(url="http://127.0.0.1:9/hooks/registry", events=["*"], user=erin)
    request = promotion_request(
        version_ref=str(evaluated.id), alias="staging", reason="narrow windows", user=erin,
        override_reason="its checks do not matter here",
    )  # fmt: skip
    promotion_execute(request.id)
    return request, webhook


def page_overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_no_main_page_scrolls_sideways_and_deltas_stay_visible(phone, live_server, evaluated, catalogue, promoted):  # noqa: F811
    sign_in(phone, live_server)
    base = catalogue["base"]
    request, webhook = promoted
    adapter_path = f"/adapters/{evaluated.adapter.namespace}/{evaluated.adapter.name}"
    pages = {
        "adapters": "/adapters/",
        "bases": "/bases/",
        "workers": "/workers/",
        "upload": "/adapters/upload/",
        "adapter": f"/adapters/{evaluated.adapter.namespace}/{evaluated.adapter.name}/v{evaluated.number}/",
        "base": f"/bases/{base.base_model.namespace}/{base.base_model.name}/v{base.number}/",
        "audit": "/audit/",  # erin is an admin (the evaluated fixture)
        "audit event": f"/audit/events/{AuditEvent.objects.latest('seq').seq}/",
        "promotions": "/promotions/",
        "promotion": f"/promotions/{request.id}/",
        "aliases": f"{adapter_path}/aliases/",
        "compare": f"{adapter_path}/compare?candidate=v{evaluated.number}&alias=staging",
        "webhooks": "/webhooks/",
        "webhook": f"/webhooks/{webhook.id}/",
    }
    for name, path in pages.items():
        phone.goto(f"{live_server.url}{path}")
        assert page_overflow(phone) <= 0, f"{name} page scrolls sideways at 390 px"

    phone.goto(f"{live_server.url}{pages['adapter']}")
    delta = phone.locator("table.evaluation .delta").first
    assert delta.is_visible() and "better" in delta.inner_text()
    assert phone.locator("#checks dl.details").first.is_visible()  # check details, not hidden
    digest = phone.locator("dl.identity code.digest")
    assert digest.evaluate("el => el.scrollWidth > el.clientWidth")  # cut with an ellipsis...
    assert digest.get_attribute("title").startswith("sha256:")  # ...the whole value in the title

    phone.goto(f"{live_server.url}/workers/")
    memory = phone.locator("#results table.list td.num").nth(1)
    assert memory.is_visible() and "GiB" in memory.inner_text()
