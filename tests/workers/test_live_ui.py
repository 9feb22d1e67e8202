"""The adapter page updates by itself while a worker checks the adapter (Chromium)."""

from registry.models import Status
from tests.conftest import sign_in
from tests.workers.test_worker_pool import push_adapter, push_base


def test_the_checks_section_updates_live(pool, live_server, alice, zoo, page):
    base = push_base(alice, zoo.llama)
    version = push_adapter(alice, zoo.adapters["attention"], base)
    assert version.status == Status.CHECKING

    sign_in(page, live_server, "alice", "alice-password")
    page.goto(f"{live_server.url}/adapters/acme/bot/v1/")
    checks = page.locator("#checks")
    assert "running" in checks.inner_text() and "queued" in checks.inner_text()

    pool.start("w1")  # only now can the dynamic check run; the page is not reloaded
    page.locator("#checks .badge.verdict-pass").nth(1).wait_for(timeout=90_000)
    assert "running" not in page.locator("#checks h2").inner_text()
    assert page.locator("#checks tbody tr").count() == 2  # static and dynamic, both pass
