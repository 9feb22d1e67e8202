"""Safe defaults: DEBUG off and a kept random key for `make run`, login throttling on every
login, TLS-proxy settings from the environment, a Content-Security-Policy, token rotation and expiry."""

import hashlib
import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.settings import embedded_secret_key

ROOT = Path(__file__).resolve().parents[2]

# --- DEBUG and SECRET_KEY ----------------------------------------------------------------------


def test_it_makes_a_random_key_once_private_and_keeps_it(tmp_path):
    var = tmp_path / "var"
    key = embedded_secret_key(var)
    path = var / "secret_key"
    assert len(key) >= 50
    assert path.stat().st_mode & 0o777 == 0o600
    assert embedded_secret_key(var) == key
    assert embedded_secret_key(tmp_path / "other") != key
    assert [p.name for p in var.iterdir()] == ["secret_key"]  # no temporary file left behind


def test_processes_starting_at_once_agree_on_one_key(tmp_path):
    var = tmp_path / "var"
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(embedded_secret_key(var))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert sorted(p.name for p in var.iterdir()) == ["secret_key"]


def test_it_tightens_a_loosened_key_file(tmp_path):
    key = embedded_secret_key(tmp_path)
    (tmp_path / "secret_key").chmod(0o644)
    assert embedded_secret_key(tmp_path) == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_it_refuses_an_empty_key_file(tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ImproperlyConfigured, match="delete it"):
        embedded_secret_key(tmp_path)


PRINT_SETTINGS = """
import hashlib, json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "debug": settings.DEBUG,
    "key": hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest(),
    "static": settings.STORAGES["staticfiles"]["BACKEND"],
    "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "session_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_secure": settings.CSRF_COOKIE_SECURE,
    "hsts": [settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, settings.SECURE_HSTS_PRELOAD],
    "login": [settings.AXES_FAILURE_LIMIT, settings.LOGIN_COOL_OFF_SECONDS],
    "token_ttl": settings.API_TOKEN_TTL_SECONDS,
}))
"""

SECURITY_ENV = {
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "TRUST_X_FORWARDED_PROTO",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_COOL_OFF_SECONDS",
    "API_TOKEN_TTL_SECONDS",
}


def _settings_in_a_new_process(var: Path, **env) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items() if name not in SECURITY_ENV}
    clean.update(ADAPTER_REGISTRY_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def _settings_of(var: Path, **env) -> dict:
    result = _settings_in_a_new_process(var, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_make_run_has_debug_off_and_a_key_of_its_own_kept_across_runs(tmp_path):
    """The embedded default (no DATABASE_URL), in a fresh var/: starts its own PostgreSQL there."""
    var = tmp_path / "var"
    first = _settings_of(var)
    assert first["debug"] is False
    assert first["static"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    key_file = var / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first["key"] == hashlib.sha256(key_file.read_text().strip().encode()).hexdigest()

    second = _settings_of(var, DEBUG="1")
    assert second["debug"] is True
    assert second["key"] == first["key"]  # signed cookies survive a restart


def test_production_still_needs_a_secret_key(tmp_path):
    result = _settings_in_a_new_process(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_tls_proxy_settings_are_off_by_default(tmp_path):
    values = _settings_of(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused", SECRET_KEY="k" * 50)
    assert values["debug"] is False
    assert values["proxy_header"] is None
    assert [values["ssl_redirect"], values["session_secure"], values["csrf_secure"]] == [False, False, False]
    assert values["hsts"] == [0, False, False]
    assert values["login"] == [5, 900]
    assert values["token_ttl"] == 0


def test_tls_proxy_settings_come_from_the_environment(tmp_path):
    values = _settings_of(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
        SECRET_KEY="k" * 50,
        TRUST_X_FORWARDED_PROTO="1",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="yes",
        LOGIN_FAILURE_LIMIT="3",
        LOGIN_COOL_OFF_SECONDS="60",
        API_TOKEN_TTL_SECONDS="86400",
    )
    assert values["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    # Secure cookies follow the redirect to HTTPS unless set on their own.
    assert [values["ssl_redirect"], values["session_secure"], values["csrf_secure"]] == [True, True, True]
    assert values["hsts"] == [31536000, True, True]
    assert values["login"] == [3, 60]
    assert values["token_ttl"] == 86400


def test_the_documented_production_set_passes_the_deploy_check(tmp_path):
    # The browser fixture sets DJANGO_ALLOW_ASYNC_UNSAFE in this process; a deployment would not.
    clean = {n: v for n, v in os.environ.items() if n not in SECURITY_ENV | {"DJANGO_ALLOW_ASYNC_UNSAFE"}}
    clean.update(
        ADAPTER_REGISTRY_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
        SECRET_KEY="a-long-random-production-key-" + "x7Q9" * 10,
        TRUST_X_FORWARDED_PROTO="1",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_a_bad_value_fails_loudly(tmp_path):
    result = _settings_in_a_new_process(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
        SECRET_KEY="k" * 50,
        SECURE_HSTS_SECONDS="1y",
    )
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS must be an integer" in result.stderr


def test_behind_a_trusted_proxy_https_is_recognised(db, client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    assert client.get("/login/").status_code == 301  # plain HTTP is sent to HTTPS
    response = client.get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=3600"
    assert client.get("/healthz").status_code == 200  # probes stay on plain HTTP


# --- Login throttling --------------------------------------------------------------------------

LIMIT = 5


def _api_login(password: str, address: str = "127.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/v1/auth/token", {"username": "alice", "password": password}, format="json"
    )


def _ui_login(client, url: str, username: str, password: str):
    return client.post(url, {"username": username, "password": password})


def test_the_api_answers_429_after_repeated_failures(alice):
    for _ in range(LIMIT - 1):
        assert _api_login("wrong").status_code == 400
    locked = _api_login("wrong")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    error = locked.json()["error"]
    assert error["code"] == "too_many_login_failures"
    assert "try again in 15 min" in error["message"]
    # Even the right password waits out the cool-off...
    assert _api_login("alice-password").status_code == 429
    # ...from this address only: the lock is per username and address.
    assert _api_login("alice-password", address="10.0.0.7").status_code == 200


def test_a_successful_api_login_resets_the_count(alice):
    for _ in range(LIMIT - 1):
        assert _api_login("wrong").status_code == 400
    assert _api_login("alice-password").status_code == 200
    for _ in range(LIMIT - 1):
        assert _api_login("wrong").status_code == 400
    assert _api_login("alice-password").status_code == 200


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_the_login_pages_answer_429_after_repeated_failures(client, carol, url):
    for _ in range(LIMIT - 1):
        assert _ui_login(client, url, "carol", "wrong").status_code == 200  # the form again, with its error
    locked = _ui_login(client, url, "carol", "wrong")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert locked["Content-Type"].startswith("text/html")
    assert b"Too many failed sign-ins" in locked.content
    assert b"Try again in 15 minutes" in locked.content
    assert _ui_login(client, url, "carol", "carol-password").status_code == 429


def test_a_successful_ui_login_resets_the_count(client, carol):
    for _ in range(LIMIT - 1):
        _ui_login(client, "/login/", "carol", "wrong")
    assert _ui_login(client, "/login/", "carol", "carol-password").status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        assert _ui_login(client, "/login/", "carol", "wrong").status_code == 200
    assert _ui_login(client, "/login/", "carol", "carol-password").status_code == 302


def test_the_limits_come_from_settings(alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.LOGIN_COOL_OFF_SECONDS = 60
    settings.AXES_COOLOFF_TIME = timedelta(seconds=60)
    assert _api_login("wrong").status_code == 400
    locked = _api_login("wrong")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "60"


# --- Content-Security-Policy -------------------------------------------------------------------------


def _directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def test_pages_carry_a_strict_content_security_policy(db, client):
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = _directives(policy)
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


def test_the_api_docs_use_local_files_and_a_separate_init_script(db, client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn.jsdelivr.net" not in html and "unpkg" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    directives = _directives(page["Content-Security-Policy"])
    assert directives["script-src"] == "'self'"
    assert directives["style-src"].startswith("'self' 'nonce-")  # the page's one <style> block
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


# --- API tokens: rotation and expiry ------------------------------------------------------------------


def _token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_rotating_a_token_retires_the_old_one_at_once(alice):
    old = _api_login("alice-password").json()["token"]
    rotated = _token_client(old).post("/api/v1/auth/token/rotate")
    assert rotated.status_code == 200
    new = rotated.json()["token"]
    assert new != old
    assert _token_client(new).get("/api/v1/adapters/").status_code == 200
    refused = _token_client(old).get("/api/v1/adapters/")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert _token_client(old).post("/api/v1/auth/token/rotate").status_code == 401
    assert list(Token.objects.filter(user=alice).values_list("key", flat=True)) == [new]


def test_rotation_needs_a_token(alice, client):
    response = APIClient().post("/api/v1/auth/token/rotate")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    client.force_login(alice)  # a browser session is no token to rotate
    assert client.post("/api/v1/auth/token/rotate").status_code == 401


def test_tokens_do_not_expire_by_default(alice_client, alice):
    Token.objects.filter(user=alice).update(created=timezone.now() - timedelta(days=3650))
    assert alice_client.get("/api/v1/adapters/").status_code == 200


def test_an_expired_token_says_how_to_get_a_new_one(alice_client, alice, settings):
    settings.API_TOKEN_TTL_SECONDS = 3600
    assert alice_client.get("/api/v1/adapters/").status_code == 200
    Token.objects.filter(user=alice).update(created=timezone.now() - timedelta(seconds=3601))
    expired = alice_client.get("/api/v1/adapters/")
    assert expired.status_code == 401
    error = expired.json()["error"]
    assert error["code"] == "token_expired"
    assert "POST /api/v1/auth/token" in error["message"]
    assert expired["WWW-Authenticate"] == "Token"
    assert alice_client.post("/api/v1/auth/token/rotate").json()["error"]["code"] == "token_expired"

    fresh = _api_login("alice-password")  # a password login replaces the expired token
    assert fresh.status_code == 200
    assert _token_client(fresh.json()["token"]).get("/api/v1/adapters/").status_code == 200
    assert alice_client.get("/api/v1/adapters/").status_code == 401


def test_rotating_restarts_the_lifetime(alice_client, alice, settings):
    settings.API_TOKEN_TTL_SECONDS = 3600
    Token.objects.filter(user=alice).update(created=timezone.now() - timedelta(seconds=3000))
    new = alice_client.post("/api/v1/auth/token/rotate").json()["token"]
    assert Token.objects.get(key=new).created > timezone.now() - timedelta(seconds=60)


def test_adapterctl_rotates_its_token(live_server, alice):
    old = Token.objects.create(user=alice).key

    def adapterctl(*args, token):
        env = {**os.environ, "ADAPTER_REGISTRY_URL": live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, env=env, timeout=60
        )

    rotated = adapterctl("token", "rotate", token=old)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new and new != old and "old token no longer works" in rotated.stderr
    assert adapterctl("ls", token=new).returncode == 0
    refused = adapterctl("ls", token=old)
    assert refused.returncode == 1
    assert "authentication_failed" in refused.stderr


def test_an_expired_token_no_longer_reads_metrics(alice, settings):
    alice.is_staff = True
    alice.save()
    key = Token.objects.create(user=alice).key
    client = _token_client(key)
    assert client.get("/metrics").status_code == 200
    settings.API_TOKEN_TTL_SECONDS = 3600
    Token.objects.filter(key=key).update(created=timezone.now() - timedelta(seconds=3601))
    assert client.get("/metrics").status_code == 403
