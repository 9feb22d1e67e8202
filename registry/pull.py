"""adapterctl pull: download every file of a version and prove they are the registered bytes.

Each file streams into `<final>.part`, hashed as it is written; a `.part` left by an interrupted
pull is resumed with a `Range` request. Only when every file's SHA-256 matches the registry's
listing and the files together give the version's manifest digest (the model-signing root the
registry computes, registry/formats/manifest.py) are the `.part` files fsynced-and-renamed to
their final names. So on any mismatch nothing is written under a final name, and a mismatching
`.part` is deleted rather than resumed from.

Like registry/cli.py, this talks HTTP only and never imports Django.
"""

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import httpx

from registry.cli import _progress_bar
from registry.formats.manifest import manifest_digest

# Large reads of local files keep Python's per-chunk work small next to hashing them.
CHUNK_SIZE = 4 * 1024 * 1024
# httpcore reads the socket 64 KiB at a time, and every read goes through h11's buffer copies:
# for a 1 GiB file that loop costs about as much as hashing the bytes. Reads of up to 4 MiB
# (recv returns what has arrived, so small answers are not delayed) cut receiving time by half
# (benchmarks/pull_throughput.py). Only the read size changes, as config/gunicorn.conf.py does
# for gunicorn's request bodies.
SOCKET_READ_BYTES = 4 * 1024 * 1024


def _widen_socket_reads() -> None:
    from httpcore._sync import http11

    if getattr(http11.HTTP11Connection, "READ_NUM_BYTES", 0) < SOCKET_READ_BYTES:
        http11.HTTP11Connection.READ_NUM_BYTES = SOCKET_READ_BYTES


class PullError(Exception):
    """A pull that cannot finish; reported as one line."""


@dataclass
class PulledFile:
    path: str
    size: int
    sha256: str
    target: Path
    written: bool = False  # False when an identical file was already there

    def as_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "written": self.written}


def _safe_target(directory: Path, path: str) -> Path:
    """Where a listed file goes; a path that would leave the directory is refused."""
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise PullError(f"the registry listed an unsafe file path {path!r}; nothing written")
    return directory.joinpath(*parts)


def _hash_file(path: Path, hasher=None):
    hasher = hasher or hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher


def _error_line(response: httpx.Response, what: str) -> str:
    response.read()
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']} (HTTP {response.status_code}, {what})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} from the registry for {what}"


def _download_part(client: httpx.Client, url: str, entry: PulledFile, part: Path, bar) -> str:
    """Bring `part` to the whole file, resuming what it holds; return the SHA-256 of its bytes."""
    hasher = hashlib.sha256()
    have = part.stat().st_size if part.exists() else 0
    if have > entry.size:
        have = 0
    # identity: the hash is over the stored bytes, not over a compressed transfer of them.
    headers = {"Accept-Encoding": "identity"}
    if 0 < have < entry.size:
        headers |= {"Range": f"bytes={have}-", "If-Range": f'"{entry.sha256}"'}
    if have == entry.size:
        _hash_file(part, hasher)
        if bar is not None:
            bar.update(have)
        return hasher.hexdigest()
    with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
        if response.status_code == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            _hash_file(part, hasher)
            mode = "ab"
        elif response.status_code == 200:
            have, mode = 0, "wb"  # the server sent the whole file: start over
        else:
            raise PullError(_error_line(response, entry.path))
        if bar is not None:
            bar.update(have)
        with part.open(mode) as out, _Sink(hasher, out) as sink:
            for chunk in response.iter_raw():  # as received: no re-chunking copies
                sink.put(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    return hasher.hexdigest()


class _Sink:
    """Hashes and writes chunks on two threads of their own while the caller receives the next ones.

    hashlib and file writes release the GIL on large buffers, so receiving, hashing and writing
    overlap; the writer flushes to disk every SYNC_BYTES so that the final fsync does not wait for
    a whole file's writeback, and the hasher never waits for the disk. Bounded queues cap the
    memory held at a few chunks per thread.
    """

    SYNC_BYTES = 64 * 1024 * 1024

    def __init__(self, hasher, out):
        self.hasher, self.out = hasher, out
        self.errors = []
        self.queues = [queue.Queue(maxsize=8), queue.Queue(maxsize=8)]
        self.threads = [
            threading.Thread(target=self._drain, args=(q, step), daemon=True)
            for q, step in zip(self.queues, (self._hash, self._write), strict=True)
        ]
        self.unsynced = 0

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def put(self, chunk: bytes) -> None:
        if self.errors:
            raise self.errors[0]
        for q in self.queues:
            q.put(chunk)

    def _hash(self, chunk: bytes) -> None:
        self.hasher.update(chunk)

    def _write(self, chunk: bytes | None) -> None:
        if chunk is None:  # the end: everything on disk before the rename
            self.out.flush()
            os.fsync(self.out.fileno())
            return
        self.out.write(chunk)
        self.unsynced += len(chunk)
        if self.unsynced >= self.SYNC_BYTES:
            self.out.flush()
            os.fdatasync(self.out.fileno())
            self.unsynced = 0

    def _drain(self, chunks: queue.Queue, step) -> None:
        try:
            while (chunk := chunks.get()) is not None:
                step(chunk)
            if step == self._write:
                step(None)
        except BaseException as exc:  # reported on the caller's thread
            self.errors.append(exc)
            while chunks.get() is not None:  # let the caller finish putting
                pass

    def __exit__(self, exc_type, exc, tb):
        for q in self.queues:
            q.put(None)
        for thread in self.threads:
            thread.join()
        if self.errors and exc is None:
            raise self.errors[0]
        return False


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pull_version(
    client: httpx.Client, kind: str, version: dict, directory: Path | None, *, progress: bool = False
) -> dict:
    """Download `version` (an adapter or base detail from the API) into `directory`, verified.

    Files are fetched by the version's id, so an alias moving during the pull cannot mix versions.
    """
    _widen_socket_reads()
    directory = Path(directory or f"{version['name']}-v{version['number']}")
    entries = [
        PulledFile(f["path"], f["size"], f["sha256"], _safe_target(directory, f["path"])) for f in version["files"]
    ]
    listed = manifest_digest((e.path, e.sha256) for e in entries)
    if listed != version["digest"]:
        raise PullError(f"the file list of {version['ref']} does not give its digest sha256:{version['digest']}")
    bar = _progress_bar(sum(e.size for e in entries), progress, desc="pull")
    try:
        for entry in entries:
            _fetch(client, kind, version, entry, bar)
    finally:
        if bar is not None:
            bar.close()
    # Every file matched its listed SHA-256 (_fetch), and the listing gives the digest (above).
    for entry in entries:
        if entry.written:
            os.replace(_part_of(entry.target), entry.target)
    for parent in {e.target.parent for e in entries if e.written}:
        _fsync_directory(parent)
    return {
        "ref": version["ref"],
        "digest": version["digest"],
        "directory": str(directory),
        "files": [e.as_dict() for e in entries],
    }


def _part_of(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _fetch(client: httpx.Client, kind: str, version: dict, entry: PulledFile, bar) -> None:
    target, part = entry.target, _part_of(entry.target)
    if target.is_file() and target.stat().st_size == entry.size and _hash_file(target).hexdigest() == entry.sha256:
        if bar is not None:
            bar.update(entry.size)
        return  # already here, byte for byte
    target.parent.mkdir(parents=True, exist_ok=True)
    url = f"{kind}/{version['id']}/files/{quote(entry.path)}"
    received = _download_part(client, url, entry, part, bar)
    if received != entry.sha256:
        part.unlink(missing_ok=True)  # wrong bytes are no basis for a resume
        raise PullError(
            f"sha256 mismatch for {entry.path} of {version['ref']}: received {received}, "
            f"registered {entry.sha256}; nothing written under {target}"
        )
    entry.written = True


def add_parser(commands):
    """Register `adapterctl pull` on the CLI's subcommands."""
    pull = commands.add_parser(
        "pull",
        help="download every file of a version, verified against its SHA-256s and digest",
        description=(
            "Download every file of an adapter (else base model) version into DIRECTORY "
            "(default ./<name>-v<N>). Each file's SHA-256 and the version's manifest digest are "
            "verified before any file appears under its final name; an interrupted pull resumes "
            "from the .part files it left."
        ),
    )
    pull.add_argument("ref", help="any reference: ns/name:vN, ns/name@sha256:<hex>, ns/name:<alias>, a UUID")
    pull.add_argument("directory", nargs="?", help="where to write the files (default ./<name>-v<N>)")
    pull.add_argument("--base", action="store_true", help="look the reference up as a base model only")
    return pull


def run(args, registry) -> dict:
    """The `pull` subcommand: `registry` is the CLI's Registry client."""
    kind, version = registry.get_version(args.ref, "bases" if args.base else None)
    try:
        return pull_version(registry.client, kind, version, args.directory, progress=args.progress)
    except httpx.HTTPError as exc:
        raise PullError(f"download from {registry.url} failed: {exc}; run pull again to resume") from None
    except OSError as exc:
        raise PullError(f"cannot write the files: {exc}") from None


def summary_line(result: dict) -> str:
    written = sum(f["written"] for f in result["files"])
    total = sum(f["size"] for f in result["files"])
    return (
        f"{result['ref']}  sha256:{result['digest']}  verified: {len(result['files'])} files, "
        f"{total:,} bytes ({written} downloaded) in {result['directory']}"
    )
