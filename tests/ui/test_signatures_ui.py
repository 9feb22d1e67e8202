"""Signatures in the UI, in Debian's Chromium against a live server: the version page's panel
(signer, method, policy version, the registry's counter-signature, Verify now and its red state),
the unsigned badge in lists, the namespace policy page, and hostile signer names shown as text.

Real peft adapters from the session zoo, signed in the test with model_signing.
"""

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from registry import roles
from registry.errors import RegistryError
from registry.models import Signature, SignatureVerification, SigningPolicy
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.services.signatures import (
    CheckedSignature,
    signature_record,
    signing_policy_current,
    signing_policy_set,
    version_countersign,
)
from registry.signing.verify import load_trusted_root, verify_bundle
from registry.storage import get_blob_store
from registry.uploads import incoming_from_directory
from tests.conftest import sign_in
from tests.signing_helpers import (
    SHARED_FIXTURES,
    key_policy,
    make_ca_chain,
    make_key,
    sign_with_certificate,
    sign_with_key,
)
from tests.ui.test_csp import Violations

# `UI_SCREENSHOTS=1` saves the signature panel for the README, as `make screenshots` does for test_browser.py.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("UI_SCREENSHOTS") else None
PHONE = {"width": 390, "height": 844}


def _user(username: str, role: str) -> User:
    user = User.objects.create_user(username, password=f"{username}-password")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def _signed_copy(zoo, name: str, destination: Path, sign) -> tuple[Path, bytes]:
    """A copy of a zoo adapter and its bundle; model.sig is taken out so it is not pushed as a file."""
    directory = zoo.copy(name, destination)
    bundle = sign(directory)
    (directory / "model.sig").unlink()
    return directory, bundle


@pytest.fixture
def registry(transactional_db, zoo, tmp_path):
    """acme requires a signature by its CI key (policy v1, set after acme/legacy was pushed unsigned);
    research has no policy. erin pushes, ada administers, bob audits."""
    people = SimpleNamespace(
        erin=_user("erin", roles.ENGINEER), ada=_user("ada", roles.ADMIN), bob=_user("bob", roles.AUDITOR)
    )
    with incoming_from_directory(zoo.llama) as files:
        base = base_model_version_ingest(name="acme/llama-tiny", files=files, user=people.erin).version

    def push(directory, name, signature=None):
        with incoming_from_directory(directory) as files:
            return adapter_version_ingest(
                name=name, files=files, base_ref=base.ref, signature=signature, user=people.erin
            ).version

    legacy = push(zoo.adapters["dora"], "acme/legacy")
    key = make_key(tmp_path / "keys")
    signing_policy_set(namespace="acme", document=key_policy(key), user=people.ada, reason="CI key only")
    directory, bundle = _signed_copy(zoo, "adapter-attention", tmp_path / "bot", lambda d: sign_with_key(d, key))
    bot = push(directory, "acme/bot", signature=bundle)
    unsigned = push(zoo.adapters["all_linear"], "research/open")
    return SimpleNamespace(**vars(people), base=base, push=push, key=key, legacy=legacy, bot=bot, open=unsigned)


def page_url(live_server, version) -> str:
    return f"{live_server.url}/adapters/{version.adapter.namespace}/{version.adapter.name}/v{version.number}/"


def login(page, live_server, username: str) -> None:
    sign_in(page, live_server, username, f"{username}-password")


def test_a_key_signed_version_shows_its_signer_and_policy_version(page, live_server, registry):
    login(page, live_server, "bob")
    page.goto(page_url(live_server, registry.bot))
    signature = page.locator("#signatures article.signature")
    assert signature.count() == 1
    text = signature.inner_text()
    assert "Signed with key" in text and "verified" in text
    assert signature.locator("dd.signer").inner_text() == "ci"  # the policy's id for the key
    assert "acme policy v1" in text
    fingerprint = signature.locator("code.digest").first.get_attribute("title")
    assert fingerprint == Signature.objects.get().key_fingerprint
    assert "unsigned" not in page.inner_text("#signatures")
    page.click("#signatures .policy-link a")
    page.wait_for_url(re.compile(r"/namespaces/acme/signing-policy$"))


def test_the_registry_counter_signature_is_shown_apart(page, live_server, registry, tmp_path):
    version_countersign(registry.bot)
    login(page, live_server, "bob")
    page.goto(page_url(live_server, registry.bot))
    counter = page.locator("#signatures article.signature.registry")
    assert counter.count() == 1 and page.locator("#signatures article.signature").count() == 2
    assert "Registry counter-signature" in counter.inner_text()
    assert "the registry's own keys" in counter.inner_text()
    assert counter.locator(".badge").inner_text() == "verified"
    _save_panel(page, tmp_path)


def _save_panel(page, tmp_path) -> None:
    directory = SCREENSHOTS or tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "signatures.png"
    page.locator("#signatures").screenshot(path=str(path))
    assert path.stat().st_size > 5_000


def test_verify_now_after_a_stored_blob_is_altered_shows_the_failure_in_red(page, live_server, registry):
    violations = Violations(page)  # htmx's swap runs under the Content-Security-Policy
    login(page, live_server, "erin")
    page.goto(page_url(live_server, registry.bot))
    page.click("#signatures button:has-text('Verify now')")
    page.locator(".verify-outcome.passed").wait_for()
    assert "Verified just now" in page.inner_text(".verify-outcome")

    blob = registry.bot.files.get(path="adapter_config.json").blob_id
    stored = get_blob_store().path(blob)
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes().replace(b'"r": 4', b'"r": 5'))

    page.click("#signatures button:has-text('Verify now')")
    outcome = page.locator(".verify-outcome.failed")
    outcome.wait_for()
    assert "signature_files_mismatch" in outcome.inner_text()
    assert "no longer hash" in outcome.inner_text()
    failed = page.locator("#signatures article.signature.state-failed")
    assert failed.locator(".badge").inner_text() == "failed"
    assert "signature_files_mismatch" in failed.locator(".signature-failure").inner_text()
    assert failed.evaluate("el => getComputedStyle(el).borderLeftColor") == "rgb(180, 35, 24)"  # --bad
    refused = page.locator("#signatures table.refused tbody tr")
    assert refused.count() == 1 and "On Demand of v1" in refused.inner_text()

    page.reload()  # the failure is recorded, not only shown
    assert page.locator("#signatures article.signature.state-failed").count() == 1
    assert violations.messages == []


def test_verify_now_works_without_javascript(browser, live_server, registry):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, live_server, "erin")
        page.goto(page_url(live_server, registry.bot))
        page.click("#signatures button:has-text('Verify now')")
        page.wait_for_url(re.compile(r"/adapters/acme/bot/v1/$"))
        assert "Verified: every signature holds" in page.inner_text(".messages")
    finally:
        context.close()


def test_unsigned_badge_only_where_the_namespace_does_not_require_signatures(page, live_server, registry):
    login(page, live_server, "erin")
    page.goto(f"{live_server.url}/adapters/")

    def row(ref):
        return page.locator("table.list tbody tr", has_text=ref)

    assert row("research/open:v1").locator(".badge.unsigned").count() == 1
    assert row("acme/legacy:v1").locator(".badge.unsigned").count() == 0  # acme requires: refused, not badged
    assert row("acme/bot:v1").locator(".badge.unsigned").count() == 0  # signed

    page.goto(page_url(live_server, registry.legacy))
    note = page.inner_text("#signatures .unsigned-note")
    assert "unsigned" in note and "acme requires signatures" in note
    page.goto(page_url(live_server, registry.open))
    assert "research does not require signatures" in page.inner_text("#signatures .unsigned-note")
    assert page.locator("#versions .badge.unsigned").count() == 1

    base = registry.base
    page.goto(f"{live_server.url}/bases/{base.base_model.namespace}/{base.base_model.name}/v{base.number}/")
    assert page.locator("table.list tbody tr", has_text="research/open:v1").locator(".badge.unsigned").count() == 1
    assert page.locator("table.list tbody tr", has_text="acme/legacy:v1").locator(".badge.unsigned").count() == 0


def test_an_admin_sets_a_new_policy_version_and_sees_errors_inline(page, live_server, registry):
    login(page, live_server, "ada")
    page.goto(f"{live_server.url}/namespaces/acme/signing-policy")
    textarea = page.locator("#policy-document")
    assert json.loads(textarea.input_value())["trusted_keys"][0]["id"] == "ci"  # prefilled with what holds now

    textarea.fill('{"require_signature": tru')
    page.click("#policy-form button[type=submit]")
    error = page.locator(".policy-error")
    assert error.inner_text().startswith("policy_invalid")
    assert "not JSON" in error.inner_text()
    assert page.locator("#policy-document").input_value() == '{"require_signature": tru'  # input kept

    page.locator("#policy-document").fill('{"require_signature": "yes", "methods": ["key"]}')
    page.click("#policy-form button[type=submit]")
    assert "require_signature" in page.inner_text(".policy-error")
    assert '"yes"' in page.locator("#policy-document").input_value()
    assert SigningPolicy.objects.filter(namespace="acme").count() == 1

    page.locator("#policy-document").fill('{"require_signature": false, "methods": ["key", "certificate"]}')
    page.fill("#policy-reason", "open the namespace for the migration")
    page.click("#policy-form button[type=submit]")
    page.wait_for_url(re.compile(r"/namespaces/acme/signing-policy$"))
    assert "Saved policy v2 of acme." in page.inner_text(".messages")
    history = page.locator("#policy-history tbody tr")
    assert history.count() == 2
    assert history.nth(0).inner_text().startswith("v2") and "ada" in history.nth(0).inner_text()
    assert "open the namespace" in history.nth(0).inner_text()
    assert "signatures optional" in page.inner_text(".title-row .badge")

    # acme no longer requires signatures: its unsigned version is badged now.
    page.goto(f"{live_server.url}/adapters/?namespace=acme")
    assert page.locator("table.list tbody tr", has_text="acme/legacy:v1").locator(".badge.unsigned").count() == 1


def test_others_read_the_policy_but_cannot_change_it(page, live_server, registry):
    login(page, live_server, "erin")
    url = f"{live_server.url}/namespaces/acme/signing-policy"
    page.goto(url)
    assert page.locator("#policy-form").count() == 0
    current = page.inner_text("#current-policy")
    assert "Version 1" in current and "ci" in current and "active" in current
    assert SigningPolicy.objects.get().document["trusted_keys"][0]["fingerprint"] in current
    token = page.evaluate("() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    response = page.request.post(url, form={"document": "{}"}, headers={"X-CSRFToken": token, "Referer": url})
    assert response.status == 403
    assert SigningPolicy.objects.count() == 1


def test_a_certificate_signer_with_markup_in_its_names_is_shown_as_text(page, live_server, registry, zoo, tmp_path):
    hostile_email = '"<script>window.pwned=1</script>"@evil.example'
    hostile_ca = "<img src=x onerror=window.pwned=2>"
    chain = make_ca_chain(tmp_path / "ca", email=hostile_email, root_name=hostile_ca)
    signing_policy_set(
        namespace="evil", document={"require_signature": True, "certificate": {"ca_chain_pem": chain.ca_chain_pem}},
        user=registry.ada,
    )  # fmt: skip
    directory, bundle = _signed_copy(
        zoo, "adapter-rslora", tmp_path / "evil", lambda d: sign_with_certificate(d, chain)
    )
    version = registry.push(directory, "evil/bot", signature=bundle)

    login(page, live_server, "erin")
    page.goto(page_url(live_server, version))
    assert page.locator("#signatures dd.signer").inner_text().startswith(hostile_email)
    assert page.locator("#signatures script").count() == 0
    page.goto(f"{live_server.url}/namespaces/evil/signing-policy")
    assert "CN=\\<img src=x onerror=window.pwned=2\\>" in page.inner_text("#current-policy")  # RFC 4514 text
    assert page.locator("#current-policy img").count() == 0
    assert page.evaluate("() => window.pwned") is None


def test_signature_pages_do_not_scroll_sideways_on_a_phone(browser, live_server, registry, zoo):
    version_countersign(registry.bot)
    with pytest.raises(RegistryError):  # an unsigned push refused: a row in the refused list
        registry.push(zoo.adapters["rslora"], "acme/bot")
    assert SignatureVerification.objects.filter(result="failed").count() == 1
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        login(page, live_server, "ada")
        for path in (page_url(live_server, registry.bot), f"{live_server.url}/namespaces/acme/signing-policy"):
            page.goto(path)
            assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, path
        page.goto(page_url(live_server, registry.bot))
        assert page.locator("#signatures button:has-text('Verify now')").is_visible()
        assert page.locator("#signatures article.signature.registry").is_visible()
    finally:
        context.close()


# --- Without a browser: a real keyless bundle, and the admin ------------------------------------


@pytest.mark.skipif(
    not SHARED_FIXTURES.is_dir(), reason=f"the third-party Sigstore fixtures are not at {SHARED_FIXTURES}"
)
def test_a_keyless_signer_no_rule_names_is_valid_but_not_trusted(client, registry):
    """The model-transparency keyless bundle (production Rekor entry) recorded as the service records it.

    Its files are not an adapter's, so it is stored through signature_record without the file match:
    this test is about what the panel says of a keyless signer, not about matching files.
    """
    raw = (SHARED_FIXTURES / "model-transparency" / "v1.1.0-sigstore" / "model.sig").read_bytes()
    current = signing_policy_current("research")  # the default: no keyless identity trusted
    root = load_trusted_root(str(SHARED_FIXTURES / "trusted_root.production.json"))
    verified = verify_bundle(raw, current.policy, root)
    signature_record(
        registry.open, CheckedSignature(raw=raw, verified=verified, current=current), trigger="attach", user=None
    )

    client.force_login(registry.bob)
    html = client.get("/adapters/research/open/v1/").content.decode()
    assert "valid, signer not trusted by policy" in html and "state-untrusted" in html
    assert "stefanb@us.ibm.com" in html and "issued by https://sigstore.verify.ibm.com/oauth2" in html
    assert f"logged in Rekor #{verified.signer.rekor_log_index} at" in html
    assert "research policy v0</a> (the default)" in html


@pytest.fixture
def root_client(client, registry):
    client.force_login(User.objects.create_superuser("root", password="root-password"))
    return client


def test_the_admin_adds_policy_versions_through_the_service_and_edits_none(root_client, registry):
    add = "/admin/registry/signingpolicy/add/"
    prefilled = root_client.get(f"{add}?namespace=acme").content.decode()
    assert "CI key only" not in prefilled and "&quot;id&quot;: &quot;ci&quot;" in prefilled  # acme's document

    refused = root_client.post(add, {"namespace": "acme", "document": '{"methods": ["magic"]}', "reason": ""})
    assert refused.status_code == 200
    assert "methods[0]: &#x27;magic&#x27; is not one of keyless, key, certificate" in refused.content.decode()

    saved = root_client.post(add, {"namespace": "acme", "document": '{"require_signature": false}', "reason": "r"})
    assert saved.status_code == 302
    latest = SigningPolicy.objects.filter(namespace="acme").order_by("-version").first()
    assert (latest.version, latest.created_by.username, latest.reason) == (2, "root", "r")
    assert latest.document["methods"] == ["keyless", "key", "certificate"]  # normalised by the service

    view = root_client.get(f"/admin/registry/signingpolicy/{latest.pk}/change/").content.decode()
    assert 'name="_save"' not in view  # shown, never edited
    assert root_client.post(f"/admin/registry/signingpolicy/{latest.pk}/delete/").status_code == 403
    for model in ("signature", "signatureverification", "registrykey"):
        assert root_client.get(f"/admin/registry/{model}/").status_code == 200
        assert root_client.get(f"/admin/registry/{model}/add/").status_code == 403
    signature = Signature.objects.get()
    assert root_client.get(f"/admin/registry/signature/{signature.pk}/change/").status_code == 200


# --- The upload page ---------------------------------------------------------------------------


def _fill_upload(page, live_server, name: str) -> None:
    page.goto(f"{live_server.url}/adapters/upload/")
    page.fill("input[name=name]", name)
    page.select_option("select[name=base]", "acme/llama-tiny:v1")


def test_the_upload_page_sends_the_chosen_signature(page, live_server, registry, zoo, tmp_path):
    directory, bundle = _signed_copy(
        zoo, "adapter-rslora", tmp_path / "signed", lambda d: sign_with_key(d, registry.key)
    )
    signature = tmp_path / "release.sig"
    signature.write_bytes(bundle)
    login(page, live_server, "erin")
    _fill_upload(page, live_server, "acme/uploaded")
    page.set_input_files("input[name=files]", [str(p) for p in sorted(directory.iterdir())])
    page.set_input_files("input[name=signature]", str(signature))
    page.click("button:has-text('Upload')")
    page.wait_for_url(re.compile(r"/adapters/acme/uploaded/v1/$"))
    assert page.locator("#signatures dd.signer").inner_text() == "ci"


def test_a_model_sig_in_the_chosen_directory_is_its_signature(page, live_server, registry, zoo, tmp_path):
    directory = zoo.copy("adapter-modules_to_save", tmp_path / "with-sig")
    sign_with_key(directory, registry.key)  # writes directory/model.sig, as `adapterctl sign` does
    login(page, live_server, "erin")
    _fill_upload(page, live_server, "acme/from-directory")
    page.set_input_files("input[name=directory]", str(directory))
    page.click("button:has-text('Upload')")
    page.wait_for_url(re.compile(r"/adapters/acme/from-directory/v1/$"))
    assert page.locator("#signatures article.signature").count() == 1
    assert "model.sig" not in page.inner_text("table.files")


def test_signature_refusals_show_like_other_upload_errors(page, live_server, registry, zoo, tmp_path):
    login(page, live_server, "erin")
    _fill_upload(page, live_server, "acme/unsigned")
    directory = zoo.adapters["rslora"]
    page.set_input_files("input[name=files]", [str(p) for p in sorted(directory.iterdir())])
    page.click("button:has-text('Upload')")
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("signature_required: namespace 'acme' requires a signature")

    garbage = tmp_path / "model.sig"
    garbage.write_bytes(b"not a bundle")
    page.set_input_files("input[name=signature]", str(garbage))
    page.click("button:has-text('Upload')")
    expect(error).to_have_text(re.compile(r"^signature_invalid: "))
