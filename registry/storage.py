"""Content-addressed blob store: each file's bytes live once, under their SHA-256.

The filesystem backend moves a finished upload into place with a rename (the
upload temp directory sits on the same filesystem), so a 1 GiB file is never
copied. The S3 backend goes through django-storages. Either way a blob's name is
`sha256/<aa>/<bb>/<hex>`, and writing the same bytes twice is a no-op.
"""

import os
from functools import cache
from pathlib import Path

from django.conf import settings


def blob_name(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


class FilesystemBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / blob_name(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def put_file(self, sha256: str, source: Path) -> bool:
        """Move `source` into the store; return True when this call created the blob."""
        target = self.path(sha256)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(source, 0o444)
        # A hard link fails if another upload of the same bytes won the race,
        # which is fine: the bytes are the same.
        try:
            os.link(source, target)
        except FileExistsError:
            return False
        except OSError:
            os.replace(source, target)  # filesystems without hard links
            return True
        return True

    def open(self, sha256: str):
        return self.path(sha256).open("rb")

    def download_url(self, sha256: str, *, filename: str, expires: int) -> str | None:
        """Blobs on a local disk are streamed by the registry itself: no URL to hand out."""
        return None

    def materialize(self, sha256: str, target: Path) -> None:
        """Make the blob appear at `target` (workers build model directories this way)."""
        os.symlink(self.path(sha256), target)

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


class DjangoStorageBlobStore:
    """Blobs in any django-storages backend (S3-compatible object storage)."""

    def __init__(self):
        from storages.backends.s3 import S3Storage

        self.storage = S3Storage()

    def exists(self, sha256: str) -> bool:
        return self.storage.exists(blob_name(sha256))

    def put_file(self, sha256: str, source: Path) -> bool:
        if self.exists(sha256):
            return False
        with source.open("rb") as handle:
            self.storage.save(blob_name(sha256), handle)
        return True

    def open(self, sha256: str):
        return self.storage.open(blob_name(sha256), "rb")

    def download_url(self, sha256: str, *, filename: str, expires: int) -> str | None:
        """A presigned GET URL valid for `expires` seconds (django-storages' querystring_expire),
        so the bytes go from the object store to the client, not through the registry."""
        from django.utils.http import content_disposition_header

        return self.storage.url(
            blob_name(sha256),
            parameters={"ResponseContentDisposition": content_disposition_header(True, filename)},
            expire=expires,
        )

    def materialize(self, sha256: str, target: Path) -> None:
        with self.open(sha256) as source, target.open("wb") as destination:
            while chunk := source.read(8 * 1024 * 1024):
                destination.write(chunk)

    def delete(self, sha256: str) -> None:
        self.storage.delete(blob_name(sha256))


@cache
def _store_for(backend: str, root: str):
    if backend == "s3":
        return DjangoStorageBlobStore()
    return FilesystemBlobStore(Path(root))


def get_blob_store():
    return _store_for(settings.BLOB_BACKEND, str(settings.BLOB_ROOT))
