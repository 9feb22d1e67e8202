"""The adapter list's namespace filter as a type-ahead, in a real Chromium (Debian's, driven by
Playwright) against a live server: typing asks for suggestions, picking one filters the list."""

import re

from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from registry import roles
from registry.models import Adapter, AdapterVersion, BaseModel, BaseModelVersion
from tests.conftest import sign_in


def test_typing_a_prefix_suggests_namespaces_and_picking_one_filters_the_list(page, live_server, transactional_db):
    user = User.objects.create_user("erin", password="erin-password")
    user.groups.add(Group.objects.get_or_create(name=roles.ENGINEER)[0])
    model = BaseModel.objects.create(namespace="acme", name="llama")
    base = BaseModelVersion.objects.create(
        base_model=model, number=1, digest="b" * 64, total_bytes=1, parameter_count=1
    )
    names = [("research", "probe"), ("retail", "bot"), ("retail", "helper"), ("support", "router")]
    adapters = Adapter.objects.bulk_create([Adapter(namespace=ns, name=name) for ns, name in names])
    AdapterVersion.objects.bulk_create(
        [
            AdapterVersion(
                adapter=adapter,
                number=1,
                digest=f"{index:064x}",
                base_version=base,
                total_bytes=1,
                parameter_count=1,
                peft_type="LORA",
                r=8,
                tensor_count=2,
            )
            for index, adapter in enumerate(adapters)
        ]
    )

    sign_in(page, live_server, "erin", "erin-password")
    page.goto(f"{live_server.url}/adapters/")
    assert page.locator("table.list tbody tr").count() == 4

    page.locator("input[name=namespace]").press_sequentially("re", delay=30)
    suggestions = page.locator("#namespace-suggestions a")
    expect(suggestions).to_have_text(["research", "retail"])  # waits; no script evaluated (the CSP forbids eval)

    page.locator("input[name=namespace]").press_sequentially("t", delay=30)
    expect(suggestions).to_have_text(["retail"])
    suggestions.first.click()
    page.wait_for_url(re.compile(r"/adapters/\?namespace=retail$"))
    expect(page.locator("input[name=namespace]")).to_have_value("retail")
    expect(page.locator("table.list tbody tr td:first-child > a")).to_have_text(["retail/helper:v1", "retail/bot:v1"])
