"""adapterctl never misleads: it names what did not resolve, turns any non-JSON answer into
one line, takes --json anywhere, and shows what a release manager needs."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from rest_framework.authtoken.models import Token


@pytest.fixture
def run(live_server, alice):
    token = Token.objects.create(user=alice).key

    def run_cli(*args, url=None):
        env = {**os.environ, "ADAPTER_REGISTRY_URL": url or live_server.url, "ADAPTER_REGISTRY_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, env=env, timeout=120
        )

    return run_cli


@pytest.fixture
def pushed(run, zoo, tmp_path):
    base = json.loads(run("--json", "push-base", str(zoo.llama), "--name", "acme/llama").stdout)
    provenance = tmp_path / "provenance.json"
    provenance.write_text(json.dumps({"dataset_name": "tickets", "code_commit": "abc123"}))
    args = ["push", str(zoo.adapters["attention"]), "--name", "acme/bot", "--base", base["ref"]]
    adapter = run("--json", *args, "--provenance", str(provenance))
    assert adapter.returncode == 0, adapter.stderr
    return base, json.loads(adapter.stdout)


def one_line(result) -> str:
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_missing_adapter_is_named_as_such(run, db):
    line = one_line(run("show", "ns/missing:v1"))
    assert "no adapter version" in line and "ns/missing:v1" in line
    assert "base_not_found" not in line


def test_json_is_accepted_before_or_after_the_subcommand(run, pushed):
    _, adapter = pushed
    after = run("show", adapter["ref"], "--json")
    before = run("--json", "show", adapter["ref"])
    assert after.returncode == before.returncode == 0, after.stderr
    assert json.loads(after.stdout)["ref"] == json.loads(before.stdout)["ref"] == "acme/bot:v1"
    assert json.loads(run("ls", "--json").stdout)[0]["ref"] == "acme/bot:v1"


def test_show_has_status_checks_and_provenance(run, pushed):
    _, adapter = pushed
    shown = run("show", adapter["ref"])
    assert shown.returncode == 0, shown.stderr
    assert "checking" in shown.stdout or "ready" in shown.stdout
    assert "check static: pass" in shown.stdout
    assert "dataset_name: tickets" in shown.stdout and "pushed:" in shown.stdout
    as_json = json.loads(run("show", adapter["ref"], "--json").stdout)
    assert as_json["checks"]["checks"][0]["kind"] == "static"


def test_ls_prints_a_header_dates_and_filters(run, pushed):
    listed = run("ls", "--created-by", "alice")
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:3] == ["VERSION", "STATUS", "PUSHED"]
    assert row.startswith("acme/bot:v1") and " alice " in row
    nobody = run("ls", "--created-by", "nobody")
    assert nobody.returncode == 0 and nobody.stdout == "" and "no versions match" in nobody.stderr


def _leaf_parsers(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _leaf_parsers(subparser, (*path, name))
            return
    yield path, parser


def test_every_subcommand_explains_each_of_its_options():
    from registry.cli import build_parser

    leaves = list(_leaf_parsers(build_parser()))
    assert len(leaves) >= 10
    for path, parser in leaves:
        for action in parser._actions:
            assert action.help, f"adapterctl {' '.join(path)}: {action.dest} has no help"


@pytest.fixture
def html_server():
    """Something that is not the registry: a server answering HTML pages, as a proxy would."""

    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200 if self.path.split("?")[0].endswith("/adapters/") else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_non_json_answer_is_one_line_naming_url_and_status(run, html_server):
    missing = one_line(run("show", "acme/bot:v1", url=html_server))
    assert "HTTP 404" in missing and "/api/v1/adapters/acme/bot:v1" in missing and "<html" not in missing
    ok_but_html = one_line(run("ls", url=html_server))
    assert "HTTP 200" in ok_but_html and "not the registry's JSON" in ok_but_html


def test_https_against_plain_http_fails_fast_with_one_line(run, live_server):
    url = live_server.url.replace("http://", "https://")
    line = one_line(run("ls", url=url))
    assert "TLS" in line and "http://" in line


def test_https_against_a_silent_port_is_one_line(run):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert "cannot reach" in one_line(run("ls", url=f"http://127.0.0.1:{port}"))
