"""The Audit pages (ui/audit.py) and a version's History section: permissions, the API's filters,
keyset paging, bad filter values, event details, exports from the page, escaping and query counts.
The last tests run the page in Chromium with a real Celery worker building the export."""

import json
import re
import time
import uuid

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

import ui.audit
from registry import roles
from registry.audit.context import Actor, actor_for_user
from registry.audit.export import audit_export_build, audit_export_request
from registry.audit.verify import verify_export
from registry.models import AuditEvent, AuditExport, Job
from registry.services.transitions import job_cancelled
from tests.audit.export_helpers import record_events
from tests.audit.helpers import record
from tests.audit.test_export import cpu_worker  # noqa: F401  (fixture: a real worker on the cpu queue)
from tests.conftest import sign_in
from tests.ui.test_csp import Violations
from tests.ui.test_views import HOSTILE, family  # noqa: F401  (fixture)

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def signed_in(client, user):
    client.force_login(user)
    return client


def shown_seqs(response) -> list[int]:
    """The seq of each row of the events table, in the order shown."""
    return [int(seq) for seq in re.findall(r'<a href="/audit/events/(\d+)/">#\d+</a>', response.content.decode())]


def api_seqs(user, **filters) -> list[int]:
    api = APIClient()
    api.force_authenticate(user)
    response = api.get("/api/v1/audit/events", {**filters, "page_size": 200})
    assert response.status_code == 200, response.content
    return [event["seq"] for event in response.json()["results"]]


# --- Who may look ----------------------------------------------------------------------------


def test_it_is_for_auditors_and_admins_only(client, alice, bob, carol):
    event = record(type="version.status")
    export = audit_export_request(user=bob, filters={})
    pages = ["/audit/", f"/audit/events/{event.seq}/", f"/audit/exports/{export.id}/"]
    for url in pages:
        assert client.get(url).status_code == 302  # to the login page
    signed_in(client, alice)
    for url in pages:
        refused = client.get(url)
        assert refused.status_code == 403 and b"Not allowed" in refused.content, url
    assert client.post("/audit/exports/", {"namespace": "acme"}).status_code == 403
    assert AuditExport.objects.count() == 1  # nothing was exported for the engineer
    assert b'href="/audit/"' not in client.get("/adapters/").content  # no Audit link in the menu either
    for user in (bob, carol):
        signed_in(client, user)
        for url in pages:
            assert client.get(url).status_code == 200, (user, url)
        assert b'href="/audit/"' in client.get("/adapters/").content


def test_it_lists_events_newest_first_with_their_actor_object_and_outcome(client, bob):
    events = record_events(bob, count=6)
    denied = record(type="access.denied", outcome="denied", actor=actor_for_user(bob), object_type="job")
    response = signed_in(client, bob).get("/audit/")
    assert response.status_code == 200
    seqs = shown_seqs(response)
    assert seqs == sorted(seqs, reverse=True) and seqs[0] == denied.seq
    assert {e.seq for e in events} <= set(seqs)
    body = response.content.decode()
    row = body[body.index(f'<a href="/audit/events/{denied.seq}/">') :].split("</tr>", 1)[0]
    assert "access.denied" in row and "bob" in row and "user · auditor" in row
    assert 'class="badge outcome-denied">denied' in row and "job" in row
    assert re.search(r"<time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", row)


# --- Filters: the API's, from the query string --------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {"namespace": "acme"},
        {"adapter": "globex/bot-1"},
        {"type": "job.claim"},
        {"type": "audit.*"},
        {"actor": "bob"},
        {"outcome": "denied"},
        {"object_id": "v3"},
        {"namespace": "acme", "type": "version.status"},
    ],
)
def test_the_filters_select_what_the_api_selects(client, bob, filters):
    record_events(bob, count=9)
    record(type="access.denied", outcome="denied", namespace="acme")
    response = signed_in(client, bob).get("/audit/", filters)
    assert response.status_code == 200
    expected = api_seqs(bob, **filters)
    assert expected and shown_seqs(response) == expected
    # The form shows the filters it applied, so the view can be changed from there.
    for value in filters.values():
        assert f'value="{value}"' in response.content.decode() or f"selected>{value}<" in response.content.decode()


def test_a_time_range_from_the_form_or_a_link_is_the_same_instant(client, bob):
    first = record_events(bob, count=4)
    time.sleep(0.01)
    later = record(type="version.status")
    cut = later.time.strftime("%Y-%m-%dT%H:%M:%S.%f")
    form = signed_in(client, bob).get("/audit/", {"after": cut})  # datetime-local: no zone, the page's (UTC)
    link = client.get("/audit/", {"after": later.time.isoformat().replace("+00:00", "Z")})  # RFC 3339
    assert shown_seqs(form) == shown_seqs(link) == [later.seq]
    assert shown_seqs(client.get("/audit/", {"before": cut}))[0] == first[-1].seq
    assert 'type="datetime-local" step="1" name="after" value="' in link.content.decode()


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"after": "yesterday"}, "after", "Datetime has wrong format"),
        ({"before": "2026-13-45T99:00"}, "before", "Datetime has wrong format"),
        ({"adapter": "no-slash"}, "adapter", "invalid_name"),
        ({"adapter": HOSTILE}, "adapter", "invalid_name"),
        ({"outcome": "maybe"}, "outcome", "is not a valid choice"),
        ({"older": "abc"}, "older", "sequence number"),
        ({"newer": "-3"}, "newer", "sequence number"),
        ({"older": "99999999999999999999"}, "older", "sequence number"),
    ],
)
def test_bad_filter_values_get_an_inline_error_not_a_500(client, bob, query, field, message):
    record_events(bob, count=2)
    response = signed_in(client, bob).get("/audit/", query)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body and f"<strong>{field}</strong>" in body
    assert "Nothing was searched" in body and 'role="alert"' in body
    assert shown_seqs(response) == [] and "Export these events" not in body
    assert HOSTILE not in body


def test_several_bad_values_are_all_reported(client, bob):
    response = signed_in(client, bob).get("/audit/", {"adapter": "x", "after": "soon", "outcome": "?"})
    assert response.status_code == 400
    body = response.content.decode()
    for field in ("adapter", "after", "outcome"):
        assert f'id="error-{field}"' in body and f"<strong>{field}</strong>" in body


def test_hostile_filter_values_are_shown_as_text(client, bob):
    response = signed_in(client, bob).get("/audit/", {"actor": HOSTILE, "type": HOSTILE, "namespace": HOSTILE})
    assert response.status_code == 200
    body = response.content.decode()
    assert HOSTILE not in body and ESCAPED in body
    assert "No event matches these filters." in body


# --- Paging ------------------------------------------------------------------------------------


def test_pages_walk_the_chain_by_seq_and_never_count_it(client, bob, monkeypatch):
    monkeypatch.setattr(ui.audit, "PAGE_SIZE", 4)
    for index in range(11):
        record(type="version.status", namespace="acme", object_id=f"v{index}")
        record(type="job.claim", namespace="globex")
    expected = api_seqs(bob, namespace="acme")
    signed_in(client, bob)
    seen, url, pages = [], "/audit/?namespace=acme", []
    with CaptureQueriesContext(connection) as queries:
        while url:
            response = client.get(url)
            pages.append(shown_seqs(response))
            seen += pages[-1]
            older = re.search(r'href="\?([^"]*older=\d+)" rel="next"', response.content.decode())
            url = f"/audit/?{older.group(1).replace('&amp;', '&')}" if older else None
    assert seen == expected and [len(page) for page in pages] == [4, 4, 3]
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    # And back: "Newer" from the last page gives the page before it.
    newer = re.search(r'href="\?([^"]*newer=\d+)" rel="prev"', response.content.decode()).group(1)
    back = client.get(f"/audit/?{newer.replace('&amp;', '&')}")
    assert shown_seqs(back) == pages[1] and "namespace=acme" in newer


def test_the_list_costs_the_same_queries_however_long_the_chain(client, bob):
    record_events(bob, count=3)
    signed_in(client, bob)
    with CaptureQueriesContext(connection) as few:
        client.get("/audit/")
    for _ in range(ui.audit.PAGE_SIZE + 10):
        record(type="version.status")
    with CaptureQueriesContext(connection) as many:
        response = client.get("/audit/")
    assert len(shown_seqs(response)) == ui.audit.PAGE_SIZE
    assert len(many) == len(few), [q["sql"][:100] for q in many.captured_queries]


# --- One event ---------------------------------------------------------------------------------


def test_the_event_page_shows_every_field_and_escapes_them(client, bob):
    hostile_actor = Actor(kind="user", id="7", name=HOSTILE, role=HOSTILE, token_id="sha256:0123456789abcdef")
    event = record(
        type="version.status",
        object_type="adapter_version",
        object_id=HOSTILE,
        object_digest="ab" * 32,
        adapter="acme/bot",
        before={"status": "checking", "reason": ""},
        after={"status": "rejected", "reason": HOSTILE, "new": [1, 2]},
        reason=HOSTILE,
        evidence={"checks": [HOSTILE]},
        outcome="failed",
        actor=hostile_actor,
    )
    response = signed_in(client, bob).get(f"/audit/events/{event.seq}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert HOSTILE not in body and body.count(ESCAPED) >= 6
    for text in (str(event.id), event.entry_hash, event.prev_hash, "ab" * 32, "sha256:0123456789abcdef", "acme/bot"):
        assert text in body, text
    assert event.time.strftime("%Y-%m-%d %H:%M:%S UTC") in body  # the time with its zone
    assert json.loads(event.body)["time"] in body  # and as hashed
    changes = body[body.index('<table class="list changes">') : body.index("</table>", body.index("list changes"))]
    assert changes.count('class="changed"') == 3  # new, reason, status; nothing else changed
    assert "&quot;checking&quot;" in changes and "&quot;rejected&quot;" in changes
    assert '<pre class="json before">' in body and '<pre class="json after">' in body
    assert "outcome-failed" in body


def test_an_event_recorded_in_a_request_shows_its_request_id_and_client_address(client, bob):
    signed_in(client, bob)
    response = client.post("/audit/exports/", {"namespace": "acme"}, headers={"X-Request-ID": "ui-req-42"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(type="audit.export")
    body = client.get(f"/audit/events/{event.seq}/").content.decode()
    assert "<code>ui-req-42</code>" in body and "<code>127.0.0.1</code>" in body
    assert (event.actor_name, event.actor_kind, event.request_id) == ("bob", "user", "ui-req-42")


@pytest.mark.parametrize("seq", ["999999", "99999999999999999999", "0"])
def test_an_unknown_event_is_a_404_page(client, bob, seq):
    record(type="version.status")
    assert signed_in(client, bob).get(f"/audit/events/{seq}/").status_code == 404


# --- Exports from the page ------------------------------------------------------------------------


def test_export_these_events_exports_the_filters_through_the_api_services(client, bob, tmp_path):
    record_events(bob, count=6)
    signed_in(client, bob)
    page = client.get("/audit/", {"namespace": "acme", "type": "job.*"}).content.decode()
    assert '<input type="hidden" name="namespace" value="acme">' in page
    assert '<input type="hidden" name="type" value="job.*">' in page
    response = client.post("/audit/exports/", {"namespace": "acme", "type": "job.*"})
    assert response.status_code == 302 and response.url == "/audit/?namespace=acme&type=job.%2A#exports"
    export = AuditExport.objects.get()
    assert export.filters == {"namespace": "acme", "type": "job.*"} and export.state == "done"  # small: built at once
    event = AuditEvent.objects.get(type="audit.export", object_id=str(export.id))
    assert event.actor_name == "bob" and event.after == {"filters": export.filters}

    listed = client.get(response.url).content.decode()
    assert f'id="export-{export.id}"' in listed and "Download ZIP" in listed
    download = client.get(f"/api/v1/audit/exports/{export.id}/download")
    path = tmp_path / "export.zip"
    path.write_bytes(b"".join(download.streaming_content))
    assert verify_export(path).filters == {"namespace": "acme", "type": "job.*"}


def test_an_export_with_bad_filters_exports_nothing(client, bob):
    response = signed_in(client, bob).post("/audit/exports/", {"after": "soon"})
    assert response.status_code == 302 and not AuditExport.objects.exists()
    assert "fix the filters" in client.get(response.url).content.decode()


def test_the_progress_fragment_polls_until_the_export_is_finished(client, bob):
    record_events(bob, count=3)
    export = audit_export_request(user=bob, filters={"namespace": "acme"})
    signed_in(client, bob)
    url = f"/audit/exports/{export.id}/"
    running = client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200 and b"<html" not in running.content
    assert b'hx-trigger="every 1s"' in running.content and b"export-queued" in running.content
    assert b"<progress" in running.content and b"Download ZIP" not in running.content

    audit_export_build(export_id=export.id)
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling
    assert b"hx-trigger" not in done.content and b"Download ZIP" in done.content
    assert f"/api/v1/audit/exports/{export.id}/download".encode() in done.content
    assert b'value="100"' in done.content
    whole = client.get(url)  # without htmx: a page of its own
    assert whole.status_code == 200 and b"<html" in whole.content and b"Download ZIP" in whole.content


def test_a_failed_export_shows_its_error_escaped_and_stops_polling(client, bob):
    export = audit_export_request(user=bob, filters={})
    AuditExport.objects.filter(pk=export.pk).update(state="failed", error=f"OSError: {HOSTILE}")
    response = signed_in(client, bob).get(f"/audit/exports/{export.id}/", headers={"HX-Request": "true"})
    assert response.status_code == 286
    body = response.content.decode()
    assert "The export failed: OSError: " + ESCAPED in body and HOSTILE not in body
    assert "hx-trigger" not in body and "Download ZIP" not in body


def test_the_page_lists_only_the_users_own_recent_exports(client, bob, carol):
    mine = audit_export_request(user=bob, filters={"namespace": "acme"})
    theirs = audit_export_request(user=carol, filters={})
    body = signed_in(client, bob).get("/audit/").content.decode()
    assert f'id="export-{mine.id}"' in body and f'id="export-{theirs.id}"' not in body
    assert "<code>namespace=acme</code>" in body
    assert signed_in(client, carol).get(f"/audit/exports/{uuid.uuid4()}/").status_code == 404


# --- A version's history --------------------------------------------------------------------------


def test_a_version_page_shows_its_history_to_every_reader(client, alice, bob, family):  # noqa: F811
    base, (root, child, grandchild) = family
    job = Job.objects.create(kind=Job.Kind.EVALUATION, adapter_version=child)
    job_cancelled(job, reason=HOSTILE)
    other = Job.objects.create(kind=Job.Kind.EVALUATION, adapter_version=root)
    job_cancelled(other, reason="not this version's")
    url = "/adapters/acme/bot-1/v1/"
    body = signed_in(client, alice).get(url).content.decode()
    history = body[body.index('<section class="card" id="history">') :]
    # The version's events and its jobs' (the push's compatibility job is dispatched in the push).
    child_jobs = [str(j.id) for j in Job.objects.filter(adapter_version=child)]
    about_child = AuditEvent.objects.filter(object_id__in=[str(child.id), *child_jobs]).order_by("-seq")
    assert [int(s) for s in re.findall(r'<td class="num">#(\d+)</td>', history)] == [e.seq for e in about_child]
    assert {"adapter.upload", "job.dispatch", "job.cancel"} <= {e.type for e in about_child}
    assert "not this version" not in history and HOSTILE not in history and ESCAPED in history
    assert "/audit/" not in history  # an engineer gets no links to pages they may not open
    audited = signed_in(client, bob).get(url).content.decode()
    history = audited[audited.index('id="history"') :]
    assert f'href="/audit/?object_id={child.id}"' in history
    assert all(f'href="/audit/events/{e.seq}/"' in history for e in about_child)


def test_a_base_page_shows_its_own_history(client, alice, family):  # noqa: F811
    base, _ = family
    body = signed_in(client, alice).get("/bases/acme/llama/v1/").content.decode()
    history = body[body.index('id="history"') :]
    upload = AuditEvent.objects.get(type="base.upload", object_id=str(base.id))
    assert f"#{upload.seq}" in history and "base.upload" in history and "adapter.upload" not in history


def test_the_history_shows_the_latest_twenty_and_costs_the_same_queries(client, alice, family):  # noqa: F811
    base, (root, child, grandchild) = family
    signed_in(client, alice)
    urls = ("/adapters/acme/bot-1/v1/", "/bases/acme/llama/v1/")
    before = {}
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        before[url] = len(queries)
    for index in range(25):
        record(type="version.status", object_type="adapter_version", object_id=str(child.id), reason=f"step {index}")
        record(type="base.upload", object_type="base_version", object_id=str(base.id))
    job = Job.objects.create(kind=Job.Kind.EVALUATION, adapter_version=child)
    job_cancelled(job, reason="cancelled by a test")
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert len(queries) == before[url], [q["sql"][:120] for q in queries.captured_queries]
        # Job ids as a list, not a subquery under an OR, which PostgreSQL answers by walking the whole chain.
        history_sql = [q["sql"] for q in queries.captured_queries if '"registry_auditevent"' in q["sql"]]
        assert len(history_sql) == 1 and history_sql[0].upper().count("SELECT") == 1, history_sql
        history = response.content.decode().split('id="history"', 1)[1]
        assert history.count('<td class="num">#') == ui.audit.HISTORY_SIZE
    assert "cancelled by a test" in client.get(urls[0]).content.decode()


def test_the_polled_checks_bring_the_history_along(client, alice, family):  # noqa: F811
    _, (root, child, grandchild) = family
    fragment = signed_in(client, alice).get("/adapters/acme/bot-1/v1/", headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert '<section class="card" id="history" hx-swap-oob="true">' in body and "adapter.upload" in body


# --- In Chromium, with a real worker building the export ---------------------------------------------


@pytest.fixture
def auditor(transactional_db):
    user = User.objects.create_user("audrey", password="audrey-password")
    user.groups.add(Group.objects.get_or_create(name=roles.AUDITOR)[0])
    return user


def test_an_auditor_filters_opens_an_event_exports_and_verifies_the_download(
    page,
    live_server,
    auditor,
    cpu_worker,  # noqa: F811
    settings,
    tmp_path,
):
    settings.AUDIT_EXPORT_SYNC_MAX_EVENTS = 0  # every export goes to the worker on the cpu queue
    record_events(auditor, count=8)
    record(type="version.status", namespace="acme", reason=HOSTILE, actor=Actor(kind="user", name=HOSTILE))
    violations = Violations(page)
    dialogs, polls = [], []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message) or dialog.dismiss())
    page.on("request", lambda request: polls.append(request.url) if "/audit/exports/" in request.url else None)
    sign_in(page, live_server, "audrey", "audrey-password")

    page.goto(f"{live_server.url}/audit/")
    page.fill("input[name=namespace]", "acme")
    page.select_option("select[name=type]", "version.status")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url(re.compile(r"namespace=acme"))
    assert "type=version.status" in page.url
    rows = page.locator("table.audit-events tbody tr")
    expected = [e.seq for e in AuditEvent.objects.filter(namespace="acme", type="version.status").order_by("-seq")]
    assert rows.count() == len(expected) >= 3
    assert dialogs == []  # the hostile actor name is text, not a script
    assert rows.first.locator("td").nth(3).inner_text().startswith(HOSTILE)

    rows.nth(1).locator("a").first.click()
    page.wait_for_url(re.compile(rf"/audit/events/{expected[1]}/$"))
    assert page.locator("table.changes tr.changed").count() >= 1
    assert (
        page.locator("dl.chain-fields code.hash").first.inner_text()
        == AuditEvent.objects.get(seq=expected[1]).prev_hash
    )
    page.go_back()

    page.click("button:has-text('Export these events')")
    page.wait_for_url(re.compile(r"#exports$"))
    export = AuditExport.objects.get()
    item = page.locator(f"#export-{export.id}")
    item.locator(".badge.export-done").wait_for(timeout=90_000)
    assert item.locator("progress").get_attribute("value") == "100"
    export.refresh_from_db()
    assert f"{export.events_total} of {export.events_total} events" in item.inner_text()
    assert export.started_at is not None  # built by the worker, not in the request
    polled = len(polls)
    page.wait_for_timeout(2500)
    assert len(polls) == polled  # polling stopped once done

    with page.expect_download() as download_info:
        item.locator("a:has-text('Download ZIP')").click()
    path = tmp_path / "audit.zip"
    download_info.value.save_as(path)
    report = verify_export(path)
    assert report.filters == {"namespace": "acme", "type": "version.status"}
    assert report.exported == len(expected)
    assert violations.messages == [] and dialogs == []
