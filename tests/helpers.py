"""Test helpers: raw multipart bodies (so hostile file names reach the server
as sent) and a snapshot of everything an upload could leave behind."""

import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from registry.models import Adapter, AdapterVersion, BaseModel, BaseModelVersion, Blob


def multipart(
    fields: dict[str, str], files: list[tuple[str, bytes]], signature: bytes | None = None
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    file_parts = [("file", path, data) for path, data in files]
    if signature is not None:
        file_parts.append(("signature", "model.sig", signature))
    for field, path, data in file_parts:
        header = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(header.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def directory_files(directory: Path) -> list[tuple[str, bytes]]:
    """The files of a model directory as an upload sends them (a model.sig beside them is not one)."""
    return [(p.name, p.read_bytes()) for p in sorted(directory.iterdir()) if p.is_file() and p.name != "model.sig"]


def upload(client, url: str, fields: dict[str, str], files: list[tuple[str, bytes]], signature: bytes | None = None):
    body, content_type = multipart(fields, files, signature)
    return client.generic("POST", url, body, content_type=content_type)


@dataclass(frozen=True)
class Leftovers:
    rows: tuple[int, ...]
    blob_files: tuple[str, ...]
    temp_files: tuple[str, ...]


def _files_under(root: Path) -> tuple[str, ...]:
    return tuple(sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())) if root.exists() else ()


def leftovers() -> Leftovers:
    """Everything an upload writes: rows, blob files, temporary files."""
    rows = tuple(m.objects.count() for m in (BaseModel, BaseModelVersion, Adapter, AdapterVersion, Blob))
    return Leftovers(rows, _files_under(Path(settings.BLOB_ROOT)), _files_under(Path(settings.UPLOAD_TEMP_DIR)))
