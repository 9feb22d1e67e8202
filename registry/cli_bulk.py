"""adapterctl push-many: register many adapter directories, in batches, through POST /api/v1/adapters/bulk.

Two sources:
- a JSON Lines manifest, one adapter a line: {"dir", "name", "base", "parent"?, "provenance"?,
  "signature"?}, `dir` and `signature` relative to the manifest's folder;
- a directory whose subdirectories are adapters, each named NAMESPACE/<subdirectory> on --base.

The whole source is read and checked before anything is sent (a bad line is reported with its
number and nothing is pushed). Each batch holds at most --batch-size items, the server's file-part
limit and --batch-mb megabytes. Refused items are reported and the push goes on; the exit status
is 1 if any item was refused. Like registry/cli.py this module never imports Django.
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

# registry.cli.SIGNATURE_FILE: not imported, because `python -m registry.cli` would load that
# module a second time, with a second CliError class that its main() does not catch.
SIGNATURE_FILE = "model.sig"
BUNDLE_TYPE = "application/json"
MANIFEST_KEYS = {"dir", "name", "base", "parent", "provenance", "signature"}
# The server's limits on one request (registry/services/bulk.py BULK_MAX_ITEMS and the single
# push's settings.MAX_FILES_PER_UPLOAD, which bounds the file parts of a request whatever its kind).
MAX_ITEMS_PER_REQUEST = 200
MAX_PARTS_PER_REQUEST = 256


@dataclass
class Item:
    """One adapter to push: where it lies and what to register it as."""

    line: int  # its manifest line, or its position among the directory's subdirectories
    directory: Path
    name: str
    base: str
    parent: str = ""
    provenance: dict = field(default_factory=dict)
    signature: Path | None = None
    files: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for _, path in self.files) + (
            self.signature.stat().st_size if self.signature else 0
        )

    @property
    def parts(self) -> int:
        return len(self.files) + (1 if self.signature else 0)


def add_parser(commands, cli_error: type[Exception]) -> None:
    """Register `adapterctl push-many` on the CLI's subcommands; its handler raises `cli_error`."""
    push_many = commands.add_parser(
        "push-many",
        help="push many adapter directories (a JSONL manifest or a directory of adapters) in batches",
        description=(
            "Register many adapters through POST /api/v1/adapters/bulk, each validated like `adapterctl push`. "
            'SOURCE is a JSON Lines manifest ({"dir", "name", "base", "parent"?, "provenance"?, "signature"?} a '
            "line, paths relative to the manifest) or a directory whose subdirectories are adapters (named "
            "NAMESPACE/<subdirectory>, on --base). Prints one line per adapter (--json: one JSON object); exits 1 "
            "if any was refused."
        ),
    )
    push_many.add_argument("source", help="MANIFEST.jsonl, or a directory of adapter directories")
    push_many.add_argument("--base", help="with a directory: the base version every adapter was trained on")
    push_many.add_argument("--namespace", help="with a directory: the namespace of the adapters' names")
    push_many.add_argument(
        "--batch-size",
        type=int,
        default=MAX_ITEMS_PER_REQUEST,
        help=f"adapters per request (default and most: {MAX_ITEMS_PER_REQUEST})",
    )
    push_many.add_argument("--batch-mb", type=float, default=256.0, help="megabytes per request (default 256)")
    # Two: `make run` and docker-compose run two or more web workers, and a second request's
    # validation overlaps the first one's write (BENCHMARKS.md, "Bulk registration": 121 -> 186/s).
    push_many.add_argument(
        "--parallel",
        type=int,
        default=2,
        help="requests in flight at once (default 2, 1 to 8); a batch naming a parent pushed in one "
        "still in flight waits for it",
    )
    push_many.set_defaults(handler=lambda args, registry: push_many_run(args, registry, cli_error))


def push_many_run(args, registry, cli_error) -> None:
    if not 1 <= args.batch_size <= MAX_ITEMS_PER_REQUEST:
        raise cli_error(f"--batch-size must be from 1 to {MAX_ITEMS_PER_REQUEST}")
    if not 1 <= args.parallel <= 8:
        raise cli_error("--parallel must be from 1 to 8")
    items = read_source(Path(args.source), args.base, args.namespace, cli_error)
    progress = Progress(total=len(items), enabled=args.progress)
    counts = {"created": 0, "existing": 0, "refused": 0}
    all_batches = list(batches(items, args.batch_size, int(args.batch_mb * 1024 * 1024)))
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        try:
            for wave in waves(all_batches):
                sent = pool.map(lambda batch: (batch, _push_batch(registry, batch, cli_error)), wave)
                for batch, body in sent:  # in order, whatever order the answers came in
                    for item, result in zip(batch, body["results"], strict=True):
                        counts[result["status"]] += 1
                        _print_result(item, result, args.json)
                    progress.advance(len(batch))
        finally:
            pool.shutdown(cancel_futures=True)  # after a batch refused whole, send no more
    progress.close()
    summary = f"{counts['created']} created, {counts['existing']} already registered, {counts['refused']} refused"
    if counts["refused"]:
        raise cli_error(f"{counts['refused']} of {len(items)} adapters refused ({summary})")
    print(f"push-many: {summary}", file=sys.stderr)


# --- Reading the source: everything is checked before the first request --------------------


def read_source(source: Path, base: str | None, namespace: str | None, cli_error) -> list[Item]:
    if source.is_dir():
        if not base or not namespace:
            raise cli_error("push-many DIRECTORY needs --base REF and --namespace NS (each subdirectory is NS/<name>)")
        return _directory_items(source, base, namespace, cli_error)
    if base or namespace:
        raise cli_error("--base and --namespace go with a directory; a manifest names each adapter's base itself")
    return _manifest_items(source, cli_error)


def _directory_items(source: Path, base: str, namespace: str, cli_error) -> list[Item]:
    directories = sorted(path for path in source.iterdir() if path.is_dir() and not path.is_symlink())
    if not directories:
        raise cli_error(f"{source} has no subdirectories: each adapter is one subdirectory")
    items = []
    for position, directory in enumerate(directories, 1):
        signature = directory / SIGNATURE_FILE
        item = Item(position, directory, f"{namespace}/{directory.name}", base)
        item.signature = signature if signature.is_file() else None
        item.files = _adapter_files(item, cli_error, where=str(directory))
        items.append(item)
    return items


def _manifest_items(source: Path, cli_error) -> list[Item]:
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise cli_error(f"cannot read manifest {source}: {exc}") from None
    items = [_manifest_item(source, number, line, cli_error) for number, line in enumerate(lines, 1) if line.strip()]
    if not items:
        raise cli_error(f"{source} lists no adapters")
    return items


def _manifest_item(source: Path, number: int, line: str, cli_error) -> Item:
    where = f"{source}:{number}"
    try:
        entry = json.loads(line)
    except ValueError as exc:
        raise cli_error(f"{where}: not a JSON object ({exc})") from None
    if not isinstance(entry, dict):
        raise cli_error(f"{where}: not a JSON object")
    unknown = sorted(set(entry) - MANIFEST_KEYS)
    if unknown:
        raise cli_error(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(MANIFEST_KEYS))}")
    for key in ("dir", "name", "base"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise cli_error(f"{where}: {key!r} is required (a non-empty string)")
    for key in ("parent", "signature"):
        if not isinstance(entry.get(key, ""), str):
            raise cli_error(f"{where}: {key!r} must be a string")
    if not isinstance(entry.get("provenance", {}), dict):
        raise cli_error(f"{where}: 'provenance' must be a JSON object")
    item = Item(
        number,
        source.parent / entry["dir"],
        entry["name"],
        entry["base"],
        parent=entry.get("parent", ""),
        provenance=entry.get("provenance", {}),
    )
    item.signature = _manifest_signature(item, source.parent, entry.get("signature"), where, cli_error)
    item.files = _adapter_files(item, cli_error, where=where)
    return item


def _manifest_signature(item: Item, folder: Path, given: str | None, where: str, cli_error) -> Path | None:
    """The bundle sent with an item: its "signature" file, else DIR/model.sig when present (as push does)."""
    if given:
        path = folder / given  # an absolute `given` stays itself
        if not path.is_file():
            raise cli_error(f"{where}: signature {given}: no such file")
        return path
    default = item.directory / SIGNATURE_FILE
    return default if default.is_file() else None


def _adapter_files(item: Item, cli_error, *, where: str) -> list[tuple[str, Path]]:
    """The files a push sends (as `adapterctl push` lists them): every regular file but the signature."""
    directory = item.directory
    if not directory.is_dir():
        raise cli_error(f"{where}: {directory} is not a directory")
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if relative == SIGNATURE_FILE or (item.signature is not None and path.resolve() == item.signature.resolve()):
            continue
        if path.is_symlink():
            raise cli_error(f"{where}: {relative} is a symbolic link; the registry accepts regular files only")
        if path.is_file():
            files.append((relative, path))
    if not files:
        raise cli_error(f"{where}: {directory} contains no files")
    return files


# --- Sending ---------------------------------------------------------------------------------


def waves(all_batches: list[list[Item]]) -> list[list[list[Item]]]:
    """The batches in consecutive groups that may be in flight together. A batch naming a parent
    that a batch of its group pushes starts a new group, so it is sent once that parent's batch has
    answered: the server finds a parent pushed earlier in the same request, not one in a request
    still being written."""
    groups: list[list[list[Item]]] = []
    pushed: set[str] = set()  # the names the current group pushes
    for batch in all_batches:
        parents = {_parent_name(item.parent) for item in batch if item.parent}
        if not groups or parents & pushed:
            groups.append([])
            pushed = set()
        groups[-1].append(batch)
        pushed |= {item.name for item in batch}
    return groups


def _parent_name(parent: str) -> str:
    """`namespace/name` of a parent reference (`ns/name:v3`, `ns/name@sha256:…`, `ns/name`)."""
    return parent.split("@", 1)[0].split(":", 1)[0]


def batches(items: list[Item], max_items: int, max_bytes: int):
    """Consecutive runs of items within the request limits (an item alone may exceed max_bytes)."""
    batch, size, parts = [], 0, 0
    for item in items:
        item_size, item_parts = item.size, item.parts
        full = len(batch) >= max_items or size + item_size > max_bytes or parts + item_parts > MAX_PARTS_PER_REQUEST
        if batch and full:
            yield batch
            batch, size, parts = [], 0, 0
        batch.append(item)
        size, parts = size + item_size, parts + item_parts
    if batch:
        yield batch


def _manifest_entry(item: Item) -> dict:
    entry = {"name": item.name, "base": item.base, "files": [relative for relative, _ in item.files]}
    if item.parent:
        entry["parent"] = item.parent
    if item.provenance:
        entry["provenance"] = item.provenance
    if item.signature:
        entry["signature"] = True
    return entry


def _push_batch(registry, batch: list[Item], cli_error) -> dict:
    manifest = json.dumps([_manifest_entry(item) for item in batch])
    with ExitStack() as stack:
        parts = [
            ("file", (relative, stack.enter_context(path.open("rb")), "application/octet-stream"))
            for item in batch
            for relative, path in item.files
        ]
        parts += [
            ("signature", (SIGNATURE_FILE, stack.enter_context(item.signature.open("rb")), BUNDLE_TYPE))
            for item in batch
            if item.signature
        ]
        try:
            return registry.request("POST", "adapters/bulk", data={"manifest": manifest}, files=parts)
        except cli_error as exc:  # the request as a whole was refused: say which one
            raise cli_error(
                f"{exc} (the batch from {batch[0].directory}; lines above say what was registered)"
            ) from None


def _print_result(item: Item, result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**result, "dir": str(item.directory)}), flush=True)
    elif result["status"] == "refused":
        print(f"refused   {result['name']}  {result['code']}: {result['message']}  ({item.directory})", flush=True)
    else:
        print(f"{result['status']:<9} {result['ref']}  {result['version_status']}", flush=True)


class Progress:
    """done/total and the rate so far, on one stderr line redrawn in place (only on a terminal)."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled
        self.done = 0
        self.started = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        if self.enabled:
            rate = self.done / max(time.monotonic() - self.started, 1e-9)
            print(f"\rpush-many: {self.done}/{self.total} ({rate:.1f}/s)", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)
