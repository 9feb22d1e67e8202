"""Streaming multipart uploads: each file is hashed while it is written to disk.

Django's multipart parser feeds our handler one chunk at a time, so a file is
never held whole in memory. The handler keeps the raw file name (Django would
strip directories, hiding path traversal we want to refuse loudly), enforces the
size limits as bytes arrive, and records every temporary file it made so that
`upload_scope` can remove them all, whatever happens to the request.
"""

import hashlib
import os
import queue
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, DataAndFiles

from registry.errors import UploadRefused
from registry.formats.artifact import IncomingFile
from registry.formats.files import validate_path

FILE_FIELD = "file"
# A model-signing bundle (usually model.sig): checked by the signature services, never one of the files.
SIGNATURE_FIELD = "signature"


class HashedUploadedFile(UploadedFile):
    """A file that finished streaming: where it lies, its size and SHA-256."""

    def __init__(self, raw_name: str, temp_path: Path, size: int, sha256: str, content_type: str):
        super().__init__(file=None, name=os.path.basename(raw_name) or "file", content_type=content_type, size=size)
        self.raw_name = raw_name
        self.temp_path = temp_path
        self.sha256 = sha256

    def as_incoming(self) -> IncomingFile:
        return IncomingFile(path=self.raw_name, temp_path=self.temp_path, size=self.size, sha256=self.sha256)

    def close(self):  # nothing open: the file was closed when it finished streaming
        pass


class _HashingWriter:
    """Hashes and writes chunks on a second thread while the parser reads the next ones.

    Both sha256 and file writes release the GIL, so on a multi-core server the
    upload costs about max(parse, hash + write) instead of their sum. The queue is
    bounded, which bounds memory at a few chunks per upload. A file that arrives in
    one chunk (a config, a card, a small adapter's weights) has nothing to overlap
    with, so the thread starts only with a file's second chunk; until then the first
    is held, and a one-chunk file is hashed and written in `finish`.
    """

    QUEUE_CHUNKS = 4

    def __init__(self, handle):
        self.handle = handle
        self.hasher = hashlib.sha256()
        self.first: bytes | None = None
        self.thread: threading.Thread | None = None
        self.chunks: queue.Queue = queue.Queue(maxsize=self.QUEUE_CHUNKS)
        self.error: BaseException | None = None

    def run(self):
        while (chunk := self.chunks.get()) is not None:
            if self.error is None:
                try:
                    self._consume(chunk)
                except BaseException as exc:  # surfaced to the request thread in put()/finish()
                    self.error = exc

    def _consume(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.handle.write(chunk)

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None and self.first is None:
            self.first = chunk
            return
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()
            self.chunks.put(self.first)
            self.first = None
        self.chunks.put(chunk)

    def finish(self) -> str:
        try:
            if self.thread is not None:
                self.chunks.put(None)
                self.thread.join()
            elif self.first is not None:
                self._consume(self.first)
        finally:
            self.first = None
            self.handle.close()
        if self.error is not None:
            raise self.error
        return self.hasher.hexdigest()


class HashingUploadHandler(FileUploadHandler):
    def __init__(self, temp_paths: list[Path]):
        super().__init__()
        self.chunk_size = settings.UPLOAD_CHUNK_BYTES
        self.temp_paths = temp_paths
        self.total_bytes = 0
        self.file_count = 0

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        if field_name not in (FILE_FIELD, SIGNATURE_FIELD):
            raise UploadRefused(
                "unexpected_file_field",
                f"files must be sent in the '{FILE_FIELD}' field (a signature in '{SIGNATURE_FIELD}'), not {field_name!r}",
            )
        self.limit = settings.MAX_FILE_BYTES
        if field_name == SIGNATURE_FIELD:
            self.limit = settings.MAX_SIGNATURE_BYTES
        else:
            validate_path(file_name)
            self.file_count += 1
            if self.file_count > settings.MAX_FILES_PER_UPLOAD:
                raise UploadRefused("too_many_files", f"at most {settings.MAX_FILES_PER_UPLOAD} files per upload")
        settings.UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix="upload-", dir=settings.UPLOAD_TEMP_DIR)
        self.temp_paths.append(Path(name))
        self.writer = _HashingWriter(os.fdopen(descriptor, "wb", buffering=0))
        self.size = 0

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        self.total_bytes += len(raw_data)
        if self.size > self.limit:
            raise UploadRefused(
                "file_too_large",
                f"{self.file_name!r} is larger than the limit of {self.limit} bytes",
                status_code=413,
                file=self.file_name,
            )
        if self.total_bytes > settings.MAX_UPLOAD_BYTES:
            raise UploadRefused(
                "upload_too_large", f"the upload exceeds {settings.MAX_UPLOAD_BYTES} bytes", status_code=413
            )
        self.writer.put(raw_data)
        return None

    def file_complete(self, file_size):
        sha256 = self.writer.finish()
        self.writer = None
        return HashedUploadedFile(
            raw_name=self.file_name,
            temp_path=self.temp_paths[-1],
            size=self.size,
            sha256=sha256,
            content_type=self.content_type,
        )

    def upload_interrupted(self):
        """Stop the writer thread of a file that did not finish; its temp file is removed by upload_scope."""
        writer, self.writer = getattr(self, "writer", None), None
        if writer is not None:
            try:
                writer.finish()
            except OSError:
                pass


class _RawNameMultiPartParser(MultiPartParser):
    """Keeps the client's file name as sent; `validate_path` judges it instead."""

    def sanitize_file_name(self, file_name):
        return file_name or None


class _CountingStream:
    """Counts the bytes the parser reads, to tell a complete body from a cut-off one."""

    def __init__(self, stream):
        self.stream = stream
        self.bytes_read = 0

    def read(self, size=-1):
        data = self.stream.read(size)
        self.bytes_read += len(data)
        return data


class StreamingMultiPartParser(BaseParser):
    """DRF parser for `multipart/form-data` uploads that stream through `HashingUploadHandler`."""

    media_type = "multipart/form-data"

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        handler = HashingUploadHandler(temp_paths=upload_temp_paths(request))
        counting = _CountingStream(stream)
        try:
            data, files = _RawNameMultiPartParser(
                meta, counting, [handler], parser_context.get("encoding", "utf-8")
            ).parse()
        except MultiPartParserError as exc:
            raise ParseError(f"the multipart body could not be read: {exc}") from None
        except (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig) as exc:
            raise _limit_refusal(exc) from None
        finally:
            handler.upload_interrupted()
        # Django's parser accepts a body that simply stops; a dropped connection must not
        # register a truncated file, so the body must be as long as the client announced.
        expected = int(meta.get("CONTENT_LENGTH") or 0)
        if counting.bytes_read < expected:
            raise UploadRefused(
                "upload_incomplete",
                f"the connection ended after {counting.bytes_read} of {expected} bytes; nothing was kept, send the upload again",
            )
        return DataAndFiles(data, files)


def _limit_refusal(exc: Exception) -> UploadRefused:
    """Django's own body limits, answered in the registry's vocabulary instead of an HTML 400."""
    if isinstance(exc, TooManyFilesSent):
        # Django counts file parts before our handler sees them; the lower limit wins.
        limits = [settings.MAX_FILES_PER_UPLOAD, settings.DATA_UPLOAD_MAX_NUMBER_FILES]
        limit = min(limit for limit in limits if limit is not None)
        return UploadRefused("too_many_files", f"more than {limit} files sent; at most {limit} are accepted")
    if isinstance(exc, TooManyFieldsSent):
        return UploadRefused("too_many_fields", f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields sent")
    return UploadRefused(
        "request_too_large",
        f"the form fields exceed {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (files do not count)",
        status_code=413,
    )


def upload_temp_paths(request) -> list[Path]:
    """The list where temporary files of this request are recorded (on the Django request)."""
    django_request = getattr(request, "_request", request)
    if not hasattr(django_request, "registry_upload_temp_paths"):
        django_request.registry_upload_temp_paths = []
    return django_request.registry_upload_temp_paths


@contextmanager
def upload_scope(request):
    """Remove every temporary file of the request's upload when the block ends, success or not."""
    temp_paths = upload_temp_paths(request)
    try:
        yield
    finally:
        for path in temp_paths:
            path.unlink(missing_ok=True)
        temp_paths.clear()


def incoming_files(request) -> list[IncomingFile]:
    return [f.as_incoming() for f in request.FILES.getlist(FILE_FIELD)]


def incoming_signature(request) -> bytes | None:
    """The bundle sent in the 'signature' field, if any (at most one per request)."""
    sent = request.FILES.getlist(SIGNATURE_FIELD)
    if not sent:
        return None
    if len(sent) > 1:
        raise UploadRefused("too_many_signatures", f"send one bundle in '{SIGNATURE_FIELD}'; attach others afterwards")
    return sent[0].temp_path.read_bytes()


def _hashed_copy(path: Path, temp_paths: list[Path]) -> IncomingFile:
    """Copy a local file into the upload temp dir, hashing it on the way, as an upload would."""
    if path.is_symlink():
        raise UploadRefused("symlink_refused", f"{path.name!r} is a symbolic link; upload regular files only")
    settings.UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="upload-", dir=settings.UPLOAD_TEMP_DIR)
    temp_paths.append(Path(name))
    hasher = hashlib.sha256()
    with path.open("rb") as source, os.fdopen(descriptor, "wb") as target:
        while chunk := source.read(4 * 1024 * 1024):
            hasher.update(chunk)
            target.write(chunk)
    return IncomingFile(path=path.name, temp_path=Path(name), size=path.stat().st_size, sha256=hasher.hexdigest())


@contextmanager
def _local_upload(paths):
    temp_paths: list[Path] = []
    try:
        yield [_hashed_copy(path, temp_paths) for path in paths]
    finally:
        for path in temp_paths:
            path.unlink(missing_ok=True)


def incoming_from_directory(directory: Path):
    """Files of a local directory as an upload (seeding, tests): hashed copies in the temp dir."""
    paths = sorted(p for p in Path(directory).iterdir() if p.is_symlink() or p.is_file())
    return _local_upload(paths)


@contextmanager
def incoming_from_file(path: Path):
    """One local file as an upload (evaluation suites)."""
    with _local_upload([Path(path)]) as files:
        yield files[0]
