"""The version page's badge, lineage node and versions table turn `ready` by themselves when a
real worker finishes the checks (Chromium, no reload); re-uploading the same files says so."""

from registry.models import Status
from tests.conftest import sign_in
from tests.workers.test_worker_pool import push_adapter, push_base


def test_the_status_badge_turns_ready_without_a_reload(pool, live_server, alice, zoo, page):
    base = push_base(alice, zoo.llama)
    version = push_adapter(alice, zoo.adapters["attention"], base)
    assert version.status == Status.CHECKING

    sign_in(page, live_server, "alice", "alice-password")
    page.goto(f"{live_server.url}/adapters/acme/bot/v1/")
    assert page.locator("#version-status .badge").inner_text() == "checking"
    assert page.locator("#versions .badge:not(.unsigned)").inner_text() == "checking"
    page.evaluate("window.stillTheSamePage = true")  # a reload would drop it

    pool.start("w1")
    page.locator("#version-status .badge.status-ready").wait_for(timeout=90_000)
    assert page.locator("#versions .badge:not(.unsigned)").inner_text() == "ready"
    assert "status-ready" in page.locator("#lineage .node.current").get_attribute("class")
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator("#version-status").count() == 1  # swapped in place, not appended


def test_uploading_the_same_files_again_says_already_registered(live_server, alice, zoo, page):
    base = push_base(alice, zoo.llama)
    push_adapter(alice, zoo.adapters["attention"], base)

    sign_in(page, live_server, "alice", "alice-password")
    page.goto(f"{live_server.url}/adapters/upload/")
    page.fill("input[name=name]", "acme/bot")
    page.select_option("select[name=base]", base.ref)
    directory = zoo.adapters["attention"]
    page.set_input_files("input[name=files]", [str(p) for p in sorted(directory.iterdir()) if p.is_file()])
    page.click("button:has-text('Upload')")
    status = page.locator("#upload-status")
    status.locator("a").wait_for()
    assert status.inner_text().startswith("Already registered as acme/bot:v1")
    assert status.locator("a").get_attribute("href") == "/adapters/acme/bot/v1/"
    assert page.url.endswith("/adapters/upload/")
