"""Fail a test that tries to reach anything but this machine.

Verification must work offline (the trusted root is pinned, never refreshed), so
tests of it run with Python's sockets limited to loopback: connecting to, or
resolving, any other host raises `pytest.fail`'s exception, a BaseException that
code under test cannot swallow with `except Exception`. Attempts are also
recorded, so one made on a thread (where an exception would be lost) still fails
the test when the fixture in tests/registry/conftest.py tears down.

Only Python-level sockets are covered; libpq (PostgreSQL) connects from C, and
the tests point it at 127.0.0.1 anyway.
"""

import ipaddress
import socket
from contextlib import contextmanager

import pytest

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_local_host(host) -> bool:
    """True for loopback addresses and the names that mean this machine."""
    if host is None:  # getaddrinfo(None, port): a local, passive address
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").split("%", 1)[0].lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_local_address(family, address) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True
    if isinstance(address, tuple) and address:
        return is_local_host(address[0])
    return False


@contextmanager
def network_blocked():
    """Within the block, non-loopback connects and name look-ups fail; yields the attempts made."""
    attempts: list[str] = []

    def refuse(what: str):
        attempts.append(what)
        pytest.fail(f"network access attempted in a test that must work offline: {what}", pytrace=True)

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create_connection, real_getaddrinfo = socket.create_connection, socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname

    def connect(self, address):
        if not _is_local_address(self.family, address):
            refuse(f"connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not _is_local_address(self.family, address):
            refuse(f"connect_ex to {address!r}")
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not is_local_host(address[0]):
            refuse(f"create_connection to {address!r}")
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        if not is_local_host(host):
            refuse(f"name look-up of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not is_local_host(host):
            refuse(f"name look-up of {host!r}")
        return real_gethostbyname(host)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "create_connection", create_connection)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        patch.setattr(socket, "gethostbyname", gethostbyname)
        yield attempts
