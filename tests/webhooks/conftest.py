"""A real HTTP receiver on 127.0.0.1 that checks each delivery's signature as the README says to."""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry.webhooks.services import webhook_create

SECRET = "receiver-secret-0123456789"


def verify_webhook(secret: str, headers, body: bytes, tolerance_seconds: int = 300) -> bool:
    """The README's verification snippet, as a receiver runs it."""
    timestamp = headers["X-Registry-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance_seconds:
        return False  # too old: a replay
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", headers["X-Registry-Signature"])


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    verified: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next of `statuses` (then 200), after `delay` seconds."""

    secret: str = SECRET
    statuses: list = field(default_factory=list)
    delay: float = 0.0
    answer_body: bytes = b'{"ok": true}'
    headers: dict = field(default_factory=dict)
    received: list = field(default_factory=list)
    url: str = ""

    def wait_for(self, count: int, seconds: float = 60) -> list[Received]:
        deadline = time.monotonic() + seconds
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"the receiver got {len(self.received)} of {count} deliveries"
        return self.received


def _handler_for(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = dict(self.headers.items())
            receiver.received.append(Received(self.path, headers, body, verify_webhook(receiver.secret, headers, body)))
            time.sleep(receiver.delay)
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(receiver.answer_body)))
            self.end_headers()
            self.wfile.write(receiver.answer_body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def receiver():
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def carol_client(carol):
    from tests.conftest import _client_for

    return _client_for(carol)


@pytest.fixture
def webhook(receiver, carol):
    """A webhook on the receiver for every event."""
    hook, _ = webhook_create(url=receiver.url, events=["*"], secret=SECRET, user=carol)
    return hook
