"""Shared fixtures: named actors, API clients, and real models built once per session.

Actors: alice is an engineer (pushes), bob an auditor (reads only), carol an admin.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db.backends.signals import connection_created
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry import roles
from registry.demo import build


def _allow_audit_truncate(sender, connection, **kwargs):
    """The audit table refuses TRUNCATE (migration 0007) unless the session allows it: the flush that
    empties the database after each transactional (live server) test truncates every table."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET registry.audit_truncate = 'allow'")


connection_created.connect(_allow_audit_truncate, dispatch_uid="tests.allow_audit_truncate")

# Tests that start real processes (Celery workers and beat, gunicorn, `make run`) run on one xdist
# process, one at a time; the lighter tests share the other CPU (tests/parallel.py).
PROCESS_FIXTURES = {"pool", "cpu_worker"}
PROCESS_TEST_FILES = {"test_make_run.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in PROCESS_TEST_FILES:
            item.add_marker(pytest.mark.xdist_group("processes"))


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Each test gets its own blob store and upload temp dir, so leftovers are visible."""
    settings.BLOB_ROOT = tmp_path / "blobs"
    settings.UPLOAD_TEMP_DIR = tmp_path / "upload-tmp"
    settings.UPLOAD_TEMP_DIR.mkdir()
    settings.REGISTRY_SIGNING_KEY_FILE = tmp_path / "signing" / "registry-key.pem"
    # Production settings use WhiteNoise's manifest storage, which needs collectstatic first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return settings


def _user(username: str, role: str) -> User:
    user = User.objects.create_user(username=username, password=f"{username}-password")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    return user


@pytest.fixture
def alice(db):
    return _user("alice", roles.ENGINEER)


@pytest.fixture
def bob(db):
    return _user("bob", roles.AUDITOR)


@pytest.fixture
def carol(db):
    return _user("carol", roles.ADMIN)


def _client_for(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def alice_client(alice):
    return _client_for(alice)


@pytest.fixture
def bob_client(bob):
    return _client_for(bob)


# --- Real models, built once per test session -------------------------------------

LORA_CONFIGS = {
    "attention": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    "all_linear": {"r": 4, "lora_alpha": 16, "target_modules": "all-linear"},
    "dora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "k_proj"], "use_dora": True},
    "rslora": {"r": 8, "lora_alpha": 8, "target_modules": ["q_proj"], "use_rslora": True},
    "modules_to_save": {"r": 4, "lora_alpha": 8, "target_modules": ["v_proj"], "modules_to_save": ["lm_head"]},
}


class ModelZoo:
    def __init__(self, root: Path):
        self.root = root
        self.llama = build.build_llama_base(root / "llama")
        self.llama_sharded = build.build_llama_base(root / "llama-sharded", max_shard_size="40KB", seed=1)
        self.adapters = {
            key: build.build_lora_adapter(self.llama, root / f"adapter-{key}", train_steps=2, **options)
            for key, options in LORA_CONFIGS.items()
        }
        self.child_adapter = build.build_lora_adapter(
            self.llama, root / "adapter-child", train_steps=3, seed=7, **LORA_CONFIGS["attention"]
        )

    def copy(self, name: str, destination: Path) -> Path:
        """A writable copy of a built model, for tests that tamper with files."""
        return Path(shutil.copytree(self.root / name, destination))


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> ModelZoo:
    return ModelZoo(tmp_path_factory.mktemp("zoo"))


# --- A real browser: Debian's Chromium driven by Playwright ------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls tests make
    # around page work never run concurrently with it.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install -y chromium); .ci/run does"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def sign_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)
