"""The Model card section of version pages: fields, warnings, the sanitised card, with the
Django test client and in Chromium under the Content-Security-Policy."""

import pytest

from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory
from tests.ui.test_browser import sign_in
from tests.ui.test_csp import Violations

HOSTILE_CARD = b"""---
base_model: meta-llama/Llama-3.2-1B
license: apache-2.0
datasets: [tatsu-lab/alpaca]
tags: [lora, "<b>bold</b>"]
---
# Support bot

<script>window.pwned = 1</script>

<img src=x onerror="window.pwned = 2">

[click me](javascript:window.pwned=3) [docs](https://docs.example/bot)
"""


def _ingest(user, zoo, tmp_path, readme: bytes | None, base_name="acme/llama"):
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name=base_name, files=files, user=user).version
    adapter = zoo.copy("adapter-attention", tmp_path / "adapter")
    if readme is None:
        (adapter / "README.md").unlink()
    else:
        (adapter / "README.md").write_bytes(readme)
    with incoming_from_directory(adapter) as files:
        return adapter_version_ingest(name="acme/bot", files=files, base_ref=base.ref, user=user).version


def _page(client, version) -> str:
    response = client.get(f"/adapters/{version.adapter.namespace}/{version.adapter.name}/v{version.number}/")
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_the_peft_card_without_warnings(client, alice, zoo, tmp_path):
    version = _ingest(alice, zoo, tmp_path, (zoo.adapters["attention"] / "README.md").read_bytes())
    client.force_login(alice)
    html = _page(client, version)
    assert '<section class="card model-card" id="model-card">' in html
    assert f"<code>{zoo.llama}</code>" in html and "<dd>peft</dd>" in html
    assert "<h2>Model Details</h2>" in html
    assert "card-warning" not in html


def test_it_shows_fields_and_warnings_and_escapes_the_hostile_card(client, alice, zoo, tmp_path):
    version = _ingest(alice, zoo, tmp_path, HOSTILE_CARD)
    client.force_login(alice)
    html = _page(client, version)
    section = html[html.index('id="model-card"') : html.index("</section>", html.index('id="model-card"'))]
    assert "<strong>Warning:</strong> the model card names base model &#x27;meta-llama/Llama-3.2-1B&#x27;" in section
    assert "<dd>apache-2.0</dd>" in section and "<code>tatsu-lab/alpaca</code>" in section
    assert '<span class="tag">&lt;b&gt;bold&lt;/b&gt;</span>' in section
    assert "<script" not in section and "<img" not in section and 'href="javascript' not in section
    assert '<a href="https://docs.example/bot" rel="nofollow noopener">docs</a>' in section


def test_a_version_without_a_card_has_no_section(client, alice, zoo, tmp_path):
    version = _ingest(alice, zoo, tmp_path, None)
    client.force_login(alice)
    assert 'id="model-card"' not in _page(client, version)


def test_a_base_page_shows_its_card(client, alice, zoo, tmp_path):
    base_dir = zoo.copy("llama", tmp_path / "base")
    (base_dir / "README.md").write_text("---\nlicense: mit\n---\n# Tiny llama\n")
    with incoming_from_directory(base_dir) as files:
        base = base_model_version_ingest(name="acme/llama", files=files, user=alice).version
    client.force_login(alice)
    html = client.get(f"/bases/acme/llama/v{base.number}/").content.decode()
    assert 'id="model-card"' in html and "<dd>mit</dd>" in html and "<h1>Tiny llama</h1>" in html


@pytest.mark.django_db(transaction=True)
def test_the_hostile_card_runs_nothing_in_chromium_under_the_policy(page, live_server, zoo, tmp_path):
    from django.contrib.auth.models import Group, User

    from registry import roles

    erin = User.objects.create_user("erin", password="erin-password")
    erin.groups.add(Group.objects.get_or_create(name=roles.ENGINEER)[0])
    version = _ingest(erin, zoo, tmp_path, HOSTILE_CARD)
    violations = Violations(page)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/adapters/acme/bot/v{version.number}/")
    page.wait_for_load_state("networkidle")
    card = page.locator("#model-card")
    assert card.locator(".card-warning").is_visible()
    assert "meta-llama/Llama-3.2-1B" in card.locator(".card-warning").inner_text()
    card.locator("summary").click()  # the card's text is folded under its fields
    assert card.locator(".card-body h1").inner_text() == "Support bot"
    card.locator("text=click me").click()  # plain text now, not a link
    assert page.evaluate("() => window.pwned") is None
    assert card.locator(".card-body a").evaluate_all("links => links.map(a => a.rel)") == ["nofollow noopener"]
    assert violations.messages == []
