"""Promotions in the browser (ui/promotions.py, ui/webhooks.py): who sees and may do what on each
page, refusals shown beside the form (never a 500), hostile text escaped, keyset pages without a
COUNT, the version page's constant query count; then, in Chromium, a promotion from request to
execution, a canary, a rollback and the comparison page."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

import ui.promotions
from registry.models import AdapterAlias, AdapterVersion, AuditEvent, PromotionRequest, Webhook
from registry.services.promotions import promotion_approve, promotion_execute, promotion_request
from tests.conftest import sign_in
from tests.promotions import conftest as promotion_fixtures
from tests.promotions.conftest import evaluated, push, suite
from tests.ui.test_csp import Violations
from tests.ui.test_views import HOSTILE
from tests.webhooks import conftest as webhook_fixtures

# The promotions tests' fixtures: acme/bot v1..v3 ready, and approvers dave and erin; a real receiver.
ready, dave, erin = promotion_fixtures.ready, promotion_fixtures.dave, promotion_fixtures.erin
receiver = webhook_fixtures.receiver
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
TIMELINE = "/adapters/acme/bot/aliases/"


def signed_in(client, user):
    client.force_login(user)
    return client


def promoted(version, alias, requester, approver=None, reason="ship it") -> PromotionRequest:
    """Through the services, as the API does: request, approve when the policy wants it, execute."""
    created = promotion_request(version_ref=str(version.id), alias=alias, reason=reason, user=requester)
    if created.state == PromotionRequest.State.PENDING:
        promotion_approve(request_id=created.id, user=approver, comment="ok")
    promotion_execute(created.id)
    return PromotionRequest.objects.get(id=created.id)


def preview(client, version, alias="production", reason="better answers", **extra):
    return client.post("/promotions/new", {"version": str(version.id), "alias": alias, "reason": reason, **extra})


def confirm(client, version, alias="production", reason="better answers", **extra):
    return preview(client, version, alias, reason, confirm="1", **extra)


def text(response) -> str:
    return response.content.decode()


# --- Who sees and may do what --------------------------------------------------------------------


def test_pages_and_actions_follow_the_roles(client, alice, bob, carol, dave, ready):
    v1, v2, _ = ready
    promoted(v1, "staging", alice)
    pages = ["/promotions/", TIMELINE, "/adapters/acme/bot/compare?candidate=v2&alias=staging", "/webhooks/"]
    for url in pages:
        assert client.get(url).status_code == 302, url  # to the login page

    signed_in(client, bob)  # an auditor reads, and asks for nothing
    version_page = text(client.get("/adapters/acme/bot/v1/"))
    assert "<code>acme/bot:staging</code>" in version_page and "serves this version" in version_page
    assert 'action="/promotions/new"' not in version_page and TIMELINE in version_page
    assert preview(client, v2).status_code == 403
    assert "Waiting for your approval" not in text(client.get("/promotions/"))
    timeline = text(client.get(TIMELINE))
    assert "Roll back" not in timeline and "Start a canary" not in timeline
    rollback = client.post(f"{TIMELINE}staging/rollback", {"reason": "no"})
    assert rollback.status_code == 403
    assert client.get("/webhooks/").status_code == 403 and 'href="/webhooks/"' not in version_page
    assert AuditEvent.objects.filter(type="access.denied").count() == 2  # the two refused writes

    signed_in(client, alice)  # an engineer asks for promotions, and decides nothing
    assert 'action="/promotions/new"' in text(client.get("/adapters/acme/bot/v2/"))
    timeline = text(client.get(TIMELINE))
    assert "Start a canary" in timeline and "Roll back" not in timeline
    assert client.post(f"{TIMELINE}staging/canary", {"canary_action": "abort", "reason": "x"}).status_code == 403
    assert client.get("/webhooks/").status_code == 403

    signed_in(client, dave)  # an approver decides, rolls back and steers canaries
    assert "Roll back" in text(client.get(TIMELINE)) and "Waiting for your approval" in text(client.get("/promotions/"))
    assert client.get("/webhooks/").status_code == 403

    signed_in(client, carol)
    listed = client.get("/webhooks/")
    assert listed.status_code == 200 and 'href="/webhooks/"' in text(listed)
    assert 'href="/promotions/"' in text(listed)


def test_an_approver_by_namespace_grant_sees_its_own_namespace_only(client, alice, ready):
    from django.contrib.auth.models import User

    from registry import roles
    from registry.models import NamespaceRole

    nina = User.objects.create_user("nina", password="nina-password")
    NamespaceRole.objects.create(namespace="acme", role=roles.APPROVER, user=nina)
    pending = promotion_request(version_ref=str(ready[0].id), alias="production", reason="r", user=alice)
    signed_in(client, nina)
    assert "Waiting for your approval" in text(client.get("/promotions/"))
    assert [row.id for row in ui.promotions._waiting_for(nina)] == [pending.id]
    assert "Approve</button>" in text(client.get(f"/promotions/{pending.id}/"))

    NamespaceRole.objects.filter(user=nina).update(namespace="globex")  # an approver elsewhere only
    roles.invalidate()
    nina = User.objects.get(id=nina.id)
    signed_in(client, nina)
    assert ui.promotions._waiting_for(nina) == []
    assert "Approve</button>" not in text(client.get(f"/promotions/{pending.id}/"))


# --- Promote: preview, request, decide --------------------------------------------------------------


def test_the_preview_shows_what_changes_and_the_request_follows_four_eyes(client, alice, dave, ready):
    v1, v2, _ = ready
    shown = preview(signed_in(client, alice), v1)
    assert shown.status_code == 200
    body = text(shown)
    assert "acme/bot:production: nothing → v1" in body
    assert "1, by an approver other than you" in body and "gate-passed" in body
    assert "/adapters/acme/bot/compare?candidate=v1&amp;alias=production" in body
    assert 'name="override_reason"' not in body  # gates pass, and alice is no admin anyway
    assert not PromotionRequest.objects.exists()  # a preview asks for nothing

    created = confirm(client, v1)
    promotion = PromotionRequest.objects.get()
    assert created.status_code == 302 and created.url == f"/promotions/{promotion.id}/"
    page = text(client.get(created.url))
    assert "pending" in page and "Someone other than you approves it" in page and 'id="approve-form"' not in page

    # Four eyes, on the page: the requester's approval is refused beside the request, not a 500.
    own = client.post(f"/promotions/{promotion.id}/approve", {"text": "mine"})
    assert own.status_code == 403 and "four eyes" in text(own) and "permission_denied" in text(own)
    assert AuditEvent.objects.filter(type="access.denied").count() == 1
    again = confirm(client, v2)  # one open request per alias
    assert again.status_code == 409 and "alias_conflict" in text(again)
    assert f"/promotions/{promotion.id}/" in text(again)

    signed_in(client, dave)
    unexplained = client.post(f"/promotions/{promotion.id}/reject", {"text": " "})
    assert unexplained.status_code == 400 and "reason_required" in text(unexplained)
    assert 'id="approve-form"' in text(client.get(f"/promotions/{promotion.id}/"))
    approved = client.post(f"/promotions/{promotion.id}/approve", {"text": "lgtm", "next": "inbox"})
    assert approved.status_code == 302 and approved.url == "/promotions/"

    # The page polls while a worker has it; the fragment answers 286 (stop) once it is final.
    htmx = {"HX-Request": "true"}
    polled = client.get(f"/promotions/{promotion.id}/", headers=htmx)
    assert polled.status_code == 200 and "<html" not in text(polled) and 'hx-trigger="every 1s"' in text(polled)
    promotion_execute(promotion.id)
    final = client.get(f"/promotions/{promotion.id}/", headers=htmx)
    assert final.status_code == 286 and "executed" in text(final) and 'hx-trigger="every 1s"' not in text(final)
    assert "serves this version" in text(client.get("/adapters/acme/bot/v1/"))


def test_failing_gates_are_refused_inline_and_only_admins_override(
    client, alice, alice_client, carol, dave, ready, zoo
):
    checking = push_checking(alice_client, zoo)  # a version still being checked fails the ready gate
    shown = text(preview(signed_in(client, alice), checking))
    assert "gate-failed" in shown and "is checking, not ready" in shown and 'name="override_reason"' not in shown
    created = confirm(client, checking, override_reason="trust me")
    assert created.status_code == 403 and "only admins may override" in text(created)
    assert confirm(client, checking).status_code == 302
    promotion = PromotionRequest.objects.get()

    refused = signed_in(client, dave).post(f"/promotions/{promotion.id}/approve", {"text": "ok"})
    assert refused.status_code == 422 and "gates_failed" in text(refused) and "Gates" in text(refused)
    assert PromotionRequest.objects.get().state == "pending"

    signed_in(client, carol)
    assert 'name="override_reason"' in text(preview(client, checking, alias="canary-eu"))
    page = text(client.get(f"/promotions/{promotion.id}/"))
    assert 'name="override_reason"' in page  # carol may approve with an override
    client.post(f"/promotions/{promotion.id}/approve", {"text": "ok", "override_reason": "hotfix, checked by hand"})
    page = text(client.get(f"/promotions/{promotion.id}/"))
    assert "gates overridden" in page and "hotfix, checked by hand" in page


def push_checking(api_client, zoo) -> AdapterVersion:
    """A fourth version of acme/bot whose checks have not run."""
    return AdapterVersion.objects.get(id=push(api_client, zoo, "modules_to_save")["id"])


def test_bad_input_is_answered_on_the_page(client, alice, dave, ready):
    v1, v2, _ = ready
    signed_in(client, alice)
    for fields, code in [
        ({"alias": "Prod uction"}, "alias_invalid"),
        ({"alias": "latest"}, "alias_invalid"),
        ({"reason": "  "}, "reason_required"),
        ({"canary_weight": "100"}, "canary_weight_invalid"),
        ({"alias": ""}, "alias_required"),
    ]:
        refused = preview(client, v1, **fields)
        assert refused.status_code == 400 and code in text(refused), fields
        assert 'action="/promotions/new"' in text(refused)  # the form again, as typed
    unknown = client.post("/promotions/new", {"version": "acme/bot:v9", "alias": "staging", "reason": "r"})
    assert unknown.status_code == 404 and "adapter_not_found" in text(unknown)
    canary_first = preview(client, v1, canary_weight="10")
    assert "canary_without_alias" in text(canary_first) and "Request the canary" not in text(canary_first)

    assert client.get("/promotions/?state=lost").status_code == 400
    assert client.get("/promotions/?older=yesterday").status_code == 400
    assert client.get("/promotions/00000000-0000-0000-0000-000000000000/").status_code == 404
    for query, code in [
        ("candidate=v9", "adapter_not_found"),
        ("candidate=v1&alias=Bad", "alias_invalid"),
        ("", "candidate_required"),
    ]:
        refused = client.get(f"/adapters/acme/bot/compare?{query}")
        assert refused.status_code in (400, 404) and code in text(refused), query
    assert client.get("/adapters/acme/nothing/aliases/").status_code == 404

    signed_in(client, dave)
    nothing = client.post(f"{TIMELINE}production/rollback", {"reason": "r"})
    assert nothing.status_code == 404 and "alias_not_found" in text(nothing)
    promoted(v1, "staging", alice)
    first = client.post(f"{TIMELINE}staging/rollback", {"reason": "r"})
    assert first.status_code == 409 and "nothing_to_roll_back" in text(first)
    no_canary = client.post(f"{TIMELINE}staging/canary", {"canary_action": "ramp", "weight": "20", "reason": "r"})
    assert no_canary.status_code == 409 and "no_canary" in text(no_canary)
    promoted(v2, "staging", alice)
    unexplained = client.post(f"{TIMELINE}staging/rollback", {"reason": ""})
    assert unexplained.status_code == 400 and "acme/bot:staging: v2 → v1" in text(unexplained)


def test_hostile_text_is_escaped_everywhere(client, alice, dave, carol, ready, receiver):
    v1, v2, _ = ready
    first = promoted(v1, "staging", alice, reason=HOSTILE)
    promotion_request(version_ref=str(v2.id), alias="staging", reason=HOSTILE, user=alice)
    signed_in(client, dave)
    pages = [f"/promotions/{first.id}/", "/promotions/", TIMELINE, "/adapters/acme/bot/v1/"]
    for url in pages:
        body = text(client.get(url))
        assert HOSTILE not in body, url
    assert ESCAPED in text(client.get(f"/promotions/{first.id}/")) and ESCAPED in text(client.get(TIMELINE))
    preview_page = text(preview(client, v2, alias="prod", reason=HOSTILE))
    assert HOSTILE not in preview_page and ESCAPED in preview_page

    # A receiver's answer is its own text: shown escaped, like a description an admin typed.
    receiver.answer_body = HOSTILE.encode()
    signed_in(client, carol)
    client.post("/webhooks/", {"url": receiver.url, "events": ["alias.moved"], "description": HOSTILE})
    webhook = Webhook.objects.get()
    client.post(f"/webhooks/{webhook.id}/test")
    for url in ("/webhooks/", f"/webhooks/{webhook.id}/"):
        body = text(client.get(url))
        assert HOSTILE not in body and ESCAPED in body, url


# --- The inbox's keyset pages ---------------------------------------------------------------------


def test_the_inbox_pages_by_cursor_newest_first_without_counting(client, alice, dave, ready, monkeypatch):
    monkeypatch.setattr(ui.promotions, "PAGE_SIZE", 2)
    made = [
        promotion_request(version_ref=str(ready[0].id), alias=f"lane-{index}", reason=f"lane {index}", user=alice)
        for index in range(5)
    ]
    newest_first = [str(p.id) for p in reversed(made)]
    signed_in(client, dave)

    def shown(response) -> list[str]:
        ids = re.findall(r'href="/promotions/([0-9a-f-]{36})/"', text(response))
        return list(dict.fromkeys(ids))

    with CaptureQueriesContext(connection) as queries:
        first = client.get("/promotions/?state=approved")
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert first.status_code == 200
    assert shown(first) == newest_first[:2]  # no approval needed for these aliases: approved at once
    older = re.search(r'href="\?state=approved&amp;older=([^"]+)"', text(first)).group(1)
    second = client.get(f"/promotions/?state=approved&older={older}")
    assert shown(second) == newest_first[2:4]
    newer = re.search(r'href="\?state=approved&amp;newer=([^"]+)"', text(second)).group(1)
    assert shown(client.get(f"/promotions/?state=approved&newer={newer}")) == newest_first[:2]
    assert shown(client.get("/promotions/?state=rejected")) == []


def test_the_version_page_query_count_does_not_grow_with_aliases(client, alice, dave, ready):
    v1 = ready[0]
    signed_in(client, alice)
    with CaptureQueriesContext(connection) as before:
        assert client.get("/adapters/acme/bot/v1/").status_code == 200
    for alias in ("staging", "eu", "us"):
        promoted(v1, alias, alice)
    with CaptureQueriesContext(connection) as after:
        body = text(client.get("/adapters/acme/bot/v1/"))
    assert body.count("serves this version") == 3
    assert len(after) == len(before), [q["sql"][:120] for q in after.captured_queries]


# --- Webhooks ----------------------------------------------------------------------------------------


def test_an_admin_manages_webhooks_and_sees_each_delivery(client, carol, receiver):
    signed_in(client, carol)
    bad = client.post("/webhooks/", {"url": "ftp://example.com/x", "events": ["alias.moved"], "secret": "s" * 20})
    assert bad.status_code == 400 and "webhook_url_invalid" in text(bad) and "s" * 20 not in text(bad)
    none = client.post("/webhooks/", {"url": receiver.url})
    assert none.status_code == 400 and "webhook_events_empty" in text(none)

    created = client.post("/webhooks/", {"url": receiver.url, "events": ["alias.moved", "promotion.executed"]})
    webhook = Webhook.objects.get()
    assert created.status_code == 200 and webhook.secret in text(created)  # shown this once...
    assert webhook.secret not in text(client.get("/webhooks/"))  # ...and never again
    assert webhook.secret not in text(client.get(f"/webhooks/{webhook.id}/"))

    receiver.statuses = [503]
    tested = client.post(f"/webhooks/{webhook.id}/test", follow=True)
    assert "answered 503" in text(tested)
    receiver.wait_for(1)
    detail = text(client.get(f"/webhooks/{webhook.id}/"))
    assert "webhook.test" in detail and '<span class="status-code">503</span>' in detail

    client.post(f"/webhooks/{webhook.id}/deactivate")
    assert Webhook.objects.get().active is False
    client.post(f"/webhooks/{webhook.id}/activate")
    assert Webhook.objects.get().active is True
    assert client.post(f"/webhooks/{webhook.id}/delete").status_code == 302
    assert not Webhook.objects.exists()
    types = set(AuditEvent.objects.filter(type__startswith="webhook.").values_list("type", flat=True))
    assert types == {"webhook.create", "webhook.test", "webhook.update", "webhook.delete"}


# --- In Chromium ---------------------------------------------------------------------------------------


def browser_sign_in(page, live_server, username: str) -> None:
    sign_in(page, live_server, username, f"{username}-password")


def badge(page) -> str:
    return page.inner_text("#promotion .title-row .badge")


def test_in_chromium_an_engineer_promotes_an_approver_approves_and_the_page_follows_it(
    live_server, browser, page, alice, dave, ready, transactional_db
):
    violations = Violations(page)
    browser_sign_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/adapters/acme/bot/v1/")
    page.select_option("#promote-alias", "production")
    page.fill("#promote-reason", "first release of the bot")
    page.click("text=Review the promotion")
    assert "acme/bot:production: nothing → v1" in page.inner_text("#what-changes")
    assert "1, by an approver other than you" in page.inner_text("#what-changes")
    gates = page.locator("#gates table.gates > tbody > tr")
    assert gates.count() == 4 and page.locator("#gates .badge.gate-failed").count() == 0
    page.click("#confirm-promotion button[type=submit]")
    page.wait_for_url(re.compile(r"/promotions/[0-9a-f-]{36}/$"))
    assert badge(page) == "pending"
    promotion = PromotionRequest.objects.get()

    approver = browser.new_context(viewport={"width": 1280, "height": 860})
    dave_page = approver.new_page()
    browser_sign_in(dave_page, live_server, "dave")
    dave_page.click("nav >> text=Promotions")
    row = dave_page.locator(f"#waiting-{promotion.id}")
    assert "first release of the bot" in row.inner_text()
    row.locator("input[name=text]").fill("looks right")
    row.locator("button:has-text('Approve')").click()
    dave_page.wait_for_selector("text=Nothing waits for you.")
    approver.close()

    page.reload()  # approved: a worker's turn, and the page follows it
    assert badge(page) == "approved" and page.locator("#promotion[hx-trigger]").count() == 1
    promotion_execute(promotion.id)
    page.wait_for_selector("#promotion .title-row .badge.promotion-executed")  # swapped in by the poll
    steps = page.inner_text("#progress ol.steps")
    assert "verify" in steps and "move" in steps and "acme/bot:production → acme/bot:v1" in steps
    assert page.locator("#promotion[hx-trigger]").count() == 0  # polling stopped with the final answer
    assert "looks right" in page.inner_text("#approvals")

    page.goto(f"{live_server.url}/adapters/acme/bot/v1/")
    assert "acme/bot:production serves this version" in page.inner_text("#aliases")
    assert not violations.messages


def test_in_chromium_a_canary_starts_ramps_and_aborts_from_the_timeline(
    live_server, page, alice, dave, erin, ready, transactional_db
):
    v1, v2, _ = ready
    promoted(v1, "production", alice, dave)
    browser_sign_in(page, live_server, "dave")
    page.goto(f"{live_server.url}{TIMELINE}")
    start = page.locator("#alias-production form.start-canary")
    start.locator("select[name=version]").select_option(str(v2.id))
    start.locator("input[name=canary_weight]").fill("10")
    start.locator("input[name=reason]").fill("try v2 on a tenth")
    start.locator("button").click()
    assert "acme/bot:production: v1 → v1 90%, v2 10%" in page.inner_text("#what-changes")
    page.click("#confirm-promotion button[type=submit]")
    page.wait_for_url(re.compile(r"/promotions/[0-9a-f-]{36}/$"))
    canary = PromotionRequest.objects.get(kind="canary")
    promotion_approve(request_id=canary.id, user=erin, comment="ok")  # four eyes: someone else
    promotion_execute(canary.id)

    def canary_step(action: str, reason: str, expected_change: str, weight: str = "") -> None:
        page.goto(f"{live_server.url}{TIMELINE}")
        controls = page.locator("#alias-production form.canary-controls")
        if weight:
            controls.locator("input[name=weight]").fill(weight)
        controls.locator("input[name=reason]").fill(reason)
        controls.locator(f"button[value={action}]").click()
        assert expected_change in page.inner_text("#what-changes")
        page.click("#confirm-alias-action button[type=submit]")
        page.wait_for_url(f"{live_server.url}{TIMELINE}")

    page.goto(f"{live_server.url}{TIMELINE}")
    assert page.inner_text("#alias-production .serves") == "serves v1 90%, v2 10%"
    canary_step("ramp", "no errors at 10%", "acme/bot:production: v1 90%, v2 10% → v1 50%, v2 50%", weight="50")
    assert page.inner_text("#alias-production .serves") == "serves v1 50%, v2 50%"
    canary_step("abort", "latency went up", "acme/bot:production: v1 50%, v2 50% → v1")
    assert page.inner_text("#alias-production .serves") == "serves v1"
    moves = page.locator("#alias-production table.moves tbody tr")
    assert [moves.nth(i).get_attribute("class") for i in range(4)] == [
        "move move-canary_abort",
        "move move-canary_ramp",
        "move move-canary_start",
        "move move-promote",
    ]
    assert "latency went up" in moves.first.inner_text() and "dave" in moves.first.inner_text()


def test_in_chromium_an_approver_rolls_back_to_an_earlier_version(
    live_server, page, alice, dave, ready, transactional_db
):
    v1, v2, v3 = ready
    for version in ready:
        promoted(version, "staging", alice)
    browser_sign_in(page, live_server, "dave")
    page.goto(f"{live_server.url}{TIMELINE}")
    rollback = page.locator("#alias-staging form.rollback")
    rollback.locator("select[name=to]").select_option(str(v1.id))  # not the previous (v2): an earlier one
    rollback.locator("input[name=reason]").fill("v3 and v2 both mislabel tickets")
    rollback.locator("button").click()
    assert "acme/bot:staging: v3 → v1" in page.inner_text("#what-changes")
    page.click("#confirm-alias-action button[type=submit]")
    page.wait_for_url(f"{live_server.url}{TIMELINE}")
    assert "Rolled back: acme/bot:staging: v3 → v1" in page.inner_text("ul.messages")
    assert page.inner_text("#alias-staging .serves") == "serves v1"
    latest = page.locator("#alias-staging table.moves tbody tr").first
    assert latest.get_attribute("class") == "move move-rollback"
    assert "v3 → v1" in latest.inner_text() and "mislabel tickets" in latest.inner_text()
    assert AdapterAlias.objects.get(name="staging").version_id == v1.id


def test_in_chromium_the_comparison_shows_deltas_config_and_files(
    live_server, page, alice, alice_client, dave, ready, transactional_db
):
    v1, v2, _ = ready
    suite_ref = suite(alice_client)
    evaluated(alice_client, v1, suite_ref, {"accuracy": 0.80, "loss": 1.25, "examples": 10})
    evaluated(alice_client, v2, suite_ref, {"accuracy": 0.85, "loss": 1.5, "examples": 10})
    promoted(v1, "production", alice, dave)
    browser_sign_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/adapters/acme/bot/v2/")
    page.select_option("#promote-alias", "production")
    page.fill("#promote-reason", "better accuracy")
    page.click("text=Review the promotion")
    page.click("text=v2 beside what production serves now")  # from the confirmation to the comparison
    page.wait_for_url(re.compile(r"/compare\?candidate=v2&alias=production$"))

    rows = page.locator("#compare-metrics table tbody tr")
    accuracy = rows.filter(has_text="Accuracy").inner_text()
    assert "0.8500" in accuracy and "0.8000" in accuracy and "+0.05000" in accuracy and "better" in accuracy
    assert "worse" in rows.filter(has_text="Loss").inner_text()
    changed = page.locator("#compare-config tr.changed").all_inner_texts()
    assert any("Alpha" in row and "16" in row and "8" in row for row in changed)
    assert any("Target modules" in row for row in changed)
    assert not any(row.startswith("Base") for row in changed)  # both on acme/llama:v1
    sha = page.locator("#compare-files code.sha").first
    assert len(sha.inner_text()) == 12 and len(sha.get_attribute("title")) == 64
    assert "adapter_config.json" in page.inner_text("#compare-files")
