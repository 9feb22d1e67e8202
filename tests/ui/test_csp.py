"""The Content-Security-Policy in a real Chromium: the UI and the API docs run under it with no
violation, and the API docs need nothing but this server."""

import re
from urllib.parse import urlsplit

import pytest

from tests.ui.test_browser import catalogue, sign_in  # noqa: F401 (catalogue is a fixture)


class Violations:
    """CSP violations a page reports, from both the console and the securitypolicyviolation event."""

    # Injected through the DevTools protocol, which the page's CSP does not apply to.
    LISTENER = """
      document.addEventListener("securitypolicyviolation", (event) => {
        console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
      });
    """

    def __init__(self, page):
        self.messages: list[str] = []
        page.add_init_script(self.LISTENER)
        page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or text.startswith("CSP violation")):
            self.messages.append(text)


@pytest.fixture
def violations(page):
    return Violations(page)


def _wait_idle(page) -> None:
    page.wait_for_load_state("networkidle")


def test_the_detector_sees_a_violation(page, live_server, violations, transactional_db):
    """Guards the test below: an inline script on our pages is refused and reported."""
    page.goto(f"{live_server.url}/login/")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.ran") is None
    assert violations.messages


def test_the_main_pages_run_under_the_policy(page, live_server, catalogue, violations, tmp_path):  # noqa: F811
    page.goto(f"{live_server.url}/login/")
    policy = page.context.request.get(f"{live_server.url}/login/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    sign_in(page, live_server)  # lands on the adapters list

    # Live search: htmx (served from our static files) swaps the results in.
    page.fill("input[name=q]", "support")
    page.wait_for_url(re.compile(r"q=support"))
    page.wait_for_function("document.querySelectorAll('table.list tbody tr').length === 2")
    assert page.evaluate("() => typeof htmx") == "object"
    assert page.evaluate("() => document.querySelectorAll('head style').length") == 0  # htmx injected none

    root = catalogue["root"]
    page.goto(f"{live_server.url}/adapters/{root.adapter.namespace}/{root.adapter.name}/v1/")
    page.click("button.copy >> nth=0")  # copy.js runs (clipboard may be refused headless; no CSP error)
    _wait_idle(page)

    # upload.js posts to the API (connect-src 'self') and shows its refusal.
    page.goto(f"{live_server.url}/adapters/upload/")
    weights = tmp_path / "adapter_model.bin"
    weights.write_bytes(b"\x80\x04K\x01.")
    page.fill("input[name=name]", "acme/pickled")
    page.select_option("select[name=base]", "acme/llama-tiny:v1")
    page.set_input_files("input[name=files]", [str(weights)])
    page.click("button:has-text('Upload')")
    page.locator("#upload-error").wait_for(state="visible")
    assert page.inner_text("#upload-error").startswith("pickle_refused:")

    page.goto(f"{live_server.url}/workers/")
    _wait_idle(page)
    page.goto(f"{live_server.url}/bases/")
    _wait_idle(page)

    assert violations.messages == []


def test_the_api_docs_render_offline_under_the_policy(page, live_server, violations, transactional_db):
    server = urlsplit(live_server.url).netloc
    elsewhere = []

    def only_this_server(route):
        if urlsplit(route.request.url).netloc == server:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".opblock").first.wait_for()
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/auth/token/rotate" in path.replace("\u200b", "") for path in operations)
    assert len(operations) >= 10
    _wait_idle(page)
    assert elsewhere == []
    assert violations.messages == []


def test_the_admin_runs_under_the_policy(page, live_server, violations, transactional_db):
    from django.contrib.auth.models import User

    User.objects.create_superuser("root", password="root-password")
    page.goto(f"{live_server.url}/admin/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "root-password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    for path in ("auth/user/", "auth/user/add/", "axes/accessattempt/"):
        page.goto(f"{live_server.url}/admin/{path}")
        _wait_idle(page)
    assert violations.messages == []
