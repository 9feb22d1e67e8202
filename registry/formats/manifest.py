"""The identity digest of a version: the OpenSSF model-signing v1.0 manifest root.

model-signing hashes each file with SHA-256 (file serialization), orders the
resources by path, and uses as the in-toto subject digest the SHA-256 of the
concatenated raw per-file digests. Computing it the same way lets a
model-signing signature's subject be matched to a stored version exactly.
"""

import hashlib
from collections.abc import Iterable


def manifest_digest(files: Iterable[tuple[str, str]]) -> str:
    """Return the hex root digest for (path, sha256-hex) pairs, in model-signing's order."""
    root = hashlib.sha256()
    for _path, sha256_hex in sorted(files):
        root.update(bytes.fromhex(sha256_hex))
    return root.hexdigest()


def manifest_resources(files: Iterable[tuple[str, str]]) -> list[dict]:
    """The manifest's resource list, as model-signing's v1.0 predicate records it."""
    return [{"name": path, "algorithm": "sha256", "digest": digest} for path, digest in sorted(files)]
