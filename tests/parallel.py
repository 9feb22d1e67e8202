"""Running the suite in parallel (`make test` runs `pytest -n 2`, pytest-xdist): what each process
needs of its own. Loaded with `-p tests.parallel` (pyproject.toml), i.e. before Django reads its
settings, so the environment set here is what the settings and every subprocess see.

- The Celery broker: each xdist process gets its own Redis database (or filesystem folder), so a
  real worker started by one process never takes, and a purge never drops, the other's messages.
- The test database needs nothing here: pytest-django suffixes its name per process (`_gw0`).

Tests that start real worker processes are also kept on one xdist process (tests/conftest.py,
`pytest_collection_modifyitems`), so at most one of them competes for the CPUs at a time.
"""

import os
from urllib.parse import urlsplit, urlunsplit

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... in an xdist process

if _WORKER.startswith("gw"):
    _index = int(_WORKER[2:])
    _broker = urlsplit(os.environ.get("CELERY_BROKER_URL", ""))
    if _broker.scheme == "redis":  # the database is the path: redis://host:port/N (none: 0)
        _db = int(_broker.path.strip("/") or 0)
        os.environ["CELERY_BROKER_URL"] = urlunsplit(_broker._replace(path=f"/{_db + 1 + _index}"))
    if os.environ.get("CELERY_FILESYSTEM_BROKER_DIR"):
        os.environ["CELERY_FILESYSTEM_BROKER_DIR"] += f"-{_WORKER}"
