"""The UI in a real Chromium (Debian's, driven by Playwright) against a live server on PostgreSQL.

Saves screenshots of the main pages to docs/screenshots/ (shown in the README).
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from registry import roles
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.uploads import incoming_from_directory
from tests.conftest import CHROMIUM
from tests.conftest import sign_in as shared_sign_in

# `make screenshots` refreshes the README's pictures; other runs keep theirs in a temp dir.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("UI_SCREENSHOTS") else None


@pytest.fixture
def catalogue(transactional_db, zoo):
    """An engineer and a small family: a base, a root adapter, its child, and a sibling."""
    engineer = User.objects.create_user("erin", password="erin-password")
    engineer.groups.add(Group.objects.get_or_create(name=roles.ENGINEER)[0])
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama-tiny", files=files, user=engineer).version

    def push(key_or_dir, name, parent=None, provenance=None):
        directory = zoo.adapters[key_or_dir] if isinstance(key_or_dir, str) else key_or_dir
        with incoming_from_directory(directory) as files:
            return adapter_version_ingest(
                name=name,
                files=files,
                base_ref=base.ref,
                parent_ref=parent.ref if parent else None,
                provenance=provenance,
                user=engineer,
            ).version

    root = push(
        "attention",
        "acme/support-bot",
        provenance={"dataset_name": "tickets-2026-10", "code_commit": "9f1c2e3", "params": {"lr": 0.0005}},
    )
    child = push(zoo.child_adapter, "acme/support-bot-v2", parent=root)
    push("dora", "acme/summarizer", parent=child)
    push("all_linear", "research/all-linear")
    return {"base": base, "root": root, "child": child}


def sign_in(page, live_server, username="erin"):
    shared_sign_in(page, live_server, username, f"{username}-password")
    page.wait_for_url(re.compile(r"/adapters/$"))


@pytest.fixture
def screenshot(tmp_path):
    directory = SCREENSHOTS or tmp_path
    directory.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> None:
        path = directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000  # a rendered page, not a blank image

    return take


def test_find_an_adapter_follow_its_lineage_and_base(page, live_server, catalogue, screenshot):
    sign_in(page, live_server)
    assert page.locator("table.list tbody tr").count() == 4
    screenshot(page, "adapters")

    page.fill("input[name=q]", "support")
    page.wait_for_url(re.compile(r"q=support"))
    page.wait_for_function("document.querySelectorAll('table.list tbody tr').length === 2")
    page.select_option("select[name=r]", "4")
    page.wait_for_url(re.compile(r"r=4"))

    page.click("text=acme/support-bot-v2:v1")
    page.wait_for_url(re.compile(r"/adapters/acme/support-bot-v2/v1/$"))
    assert page.locator(".identity code").first.inner_text() == "acme/support-bot-v2:v1"
    page.locator("svg.lineage").wait_for()  # a lazy panel: htmx fetches it once the page is shown
    assert page.locator("svg.lineage a").count() == 4  # base, parent, itself, child
    screenshot(page, "adapter-detail")

    page.locator('svg.lineage a[data-ref="acme/support-bot:v1"]').click()
    page.wait_for_url(re.compile(r"/adapters/acme/support-bot/v1/$"))
    assert "tickets-2026-10" in page.inner_text("body")

    page.click("text=acme/llama-tiny:v1 >> nth=0")
    page.wait_for_url(re.compile(r"/bases/acme/llama-tiny/v1/$"))
    assert "LlamaForCausalLM" in page.inner_text("body")
    screenshot(page, "base-detail")


def test_a_shared_search_url_opens_filtered(page, live_server, catalogue, screenshot):
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/adapters/?q=summar")
    assert page.locator("table.list tbody tr").count() == 1
    page.goto(f"{live_server.url}/bases/")
    assert page.locator("table.list tbody tr").count() == 1
    screenshot(page, "bases")


def test_upload_an_adapter_and_see_it_appear(page, live_server, catalogue, zoo, tmp_path):
    sign_in(page, live_server)
    page.click("text=Upload adapter")
    page.fill("input[name=name]", "acme/uploaded")
    page.select_option("select[name=base]", "acme/llama-tiny:v1")
    page.fill("input[name=parent]", "acme/support-bot:v1")
    directory = zoo.adapters["rslora"]
    page.set_input_files(
        "input[name=files]", [str(directory / "adapter_config.json"), str(directory / "adapter_model.safetensors")]
    )
    page.click("button:has-text('Upload')")
    page.wait_for_url(re.compile(r"/adapters/acme/uploaded/v1/$"))
    assert "rsLoRA" in page.inner_text("body")
    page.goto(f"{live_server.url}/adapters/")
    assert "acme/uploaded:v1" in page.inner_text("table.list")


def test_a_refused_upload_shows_the_api_error(page, live_server, catalogue, tmp_path, screenshot):
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/adapters/upload/")
    weights = tmp_path / "adapter_model.bin"
    weights.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")
    page.fill("input[name=name]", "acme/pickled")
    page.select_option("select[name=base]", "acme/llama-tiny:v1")
    page.set_input_files("input[name=files]", [str(weights)])
    page.click("button:has-text('Upload')")
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("pickle_refused:")
    screenshot(page, "upload-refused")


def test_narrow_window(page, live_server, catalogue, screenshot):
    sign_in(page, live_server)
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{live_server.url}/adapters/{catalogue['root'].adapter.namespace}/{catalogue['root'].adapter.name}/v1/")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    screenshot(page, "narrow")


def test_chromium_is_debians():
    assert shutil.which("chromium") == CHROMIUM or Path(CHROMIUM).exists()
