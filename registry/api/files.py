"""Downloads: the exact bytes of a version's files, with the headers that let clients trust and resume them.

A file is served from the blob store in large chunks, never read whole into memory: a full
file through FileResponse (which gunicorn hands to sendfile), a `Range` through a generator
over the same handle. The `ETag` is the file's registered SHA-256, so a client that hashes what
it received can prove it got the registered bytes, and `If-None-Match` saves re-downloading
them. With the S3 backend the registry answers a short-lived presigned redirect instead and the
object store serves the bytes.
"""

import posixpath
import re

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import selectors
from registry.api.errors import error_response
from registry.api.schema import ErrorSerializer
from registry.api.serializers import FileSerializer
from registry.audit.services import audit_record, audit_subject
from registry.errors import NotFound
from registry.storage import get_blob_store

# Large chunks keep the per-chunk Python work negligible next to the bytes moved.
CHUNK_SIZE = 1024 * 1024
# How long a presigned S3 URL stays valid: long enough to start the download, short enough
# that a leaked URL is of little use.
PRESIGNED_URL_SECONDS = getattr(settings, "BLOB_DOWNLOAD_URL_SECONDS", 60)
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

_GETTERS = {"adapter": selectors.adapter_version_get, "base": selectors.base_version_get}


class _Unsatisfiable(Exception):
    pass


def _version_files(kind: str, ref: str):
    version = _GETTERS[kind](ref)
    return version, version.files.all()


def _version_file(kind: str, ref: str, path: str):
    version = _GETTERS[kind](ref)
    found = selectors.version_file(version, path)
    if found is None:
        raise NotFound("file_not_found", f"{version.ref} has no file {path!r}", ref=version.ref, path=path)
    return version, found


def _requested_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a single-range `Range` header, or None to send it all.

    A header this cannot read, or one asking for several ranges, is ignored (RFC 9110 allows
    answering with the whole file); a readable range that starts past the end is unsatisfiable.
    """
    match = _SINGLE_RANGE.fullmatch(header.strip().replace(" ", ""))
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # a suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - length), size - 1
    if last != "" and int(last) < int(first):
        return None
    if int(first) >= size:
        raise _Unsatisfiable
    return int(first), size - 1 if last == "" else min(int(last), size - 1)


def _etag_listed(header: str, etag: str) -> bool:
    """If-None-Match: `*` or a list of entity tags, compared weakly (RFC 9110 13.1.2)."""
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


def _ranged_chunks(handle, first: int, last: int):
    try:
        handle.seek(first)
        remaining = last - first + 1
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _download_recorded(version, file, span: tuple[int, int] | None) -> None:
    """A `file.download` audit event for a download that hands out bytes from the start: the whole
    file, a range from byte 0, or a presigned redirect. A resumed range (first byte > 0) continues a
    download already recorded, and a 304 or HEAD hands out nothing, so neither is recorded."""
    if not settings.AUDIT_DOWNLOADS or (span is not None and span[0] > 0):
        return
    evidence = {"path": file.path, "sha256": file.sha256, "size": file.size}
    if span is not None:
        evidence["range"] = f"{span[0]}-{span[1]}"
    audit_record(type="file.download", **audit_subject(version), evidence=evidence)


def _download(request, version, file, *, record: bool) -> HttpResponse:
    etag = f'"{file.sha256}"'
    filename = posixpath.basename(file.path)
    common = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-cache"}
    if _etag_listed(request.headers.get("If-None-Match", ""), etag):
        return HttpResponse(status=304, headers=common)
    store = get_blob_store()
    url = store.download_url(file.sha256, filename=filename, expires=PRESIGNED_URL_SECONDS)
    if url:
        if record:
            _download_recorded(version, file, None)
        return HttpResponseRedirect(url, headers={"ETag": etag, "Cache-Control": "no-store"})
    handle = store.open(file.sha256)
    size = file.size
    wanted = request.headers.get("Range", "")
    if request.headers.get("If-Range", etag) != etag:
        wanted = ""  # the client holds other bytes than these: send the whole file
    try:
        span = _requested_range(wanted, size) if wanted else None
    except _Unsatisfiable:
        handle.close()
        message = f"{file.path} is {size} bytes; the requested range {wanted!r} starts past its end"
        response = error_response("range_not_satisfiable", message, 416, {"size": size})
        for header, value in {**common, "Content-Range": f"bytes */{size}"}.items():
            response[header] = value
        return response
    if record:
        _download_recorded(version, file, span)
    disposition = content_disposition_header(True, filename)
    if span is None:
        response = FileResponse(handle, content_type="application/octet-stream", headers=common)
        response.block_size = CHUNK_SIZE
        response["Content-Disposition"] = disposition
        response["Content-Length"] = str(size)
        return response
    first, last = span
    response = StreamingHttpResponse(
        _ranged_chunks(handle, first, last), status=206, content_type="application/octet-stream", headers=common
    )
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Content-Length"] = str(last - first + 1)
    response["Content-Disposition"] = disposition
    return response


def _headers_only(response: HttpResponse) -> HttpResponse:
    """HEAD: the GET answer's status and headers, no body (and the blob handle closed)."""
    if response.streaming:
        # Close the blob handle only: response.close() would also send request_finished, which
        # closes the request's database connection before the request has finished.
        for close in response._resource_closers:
            close()
        response._resource_closers.clear()
    head = HttpResponse(status=response.status_code)
    for name, value in response.items():
        head[name] = value
    return head


PATH_PARAMETER = OpenApiParameter(
    "path", OpenApiTypes.STR, OpenApiParameter.PATH, description="the file's path inside the version, as listed"
)
DOWNLOAD_DESCRIPTION = (
    "The file's bytes. `ETag` is its SHA-256; send `If-None-Match` to get 304 when you hold them, "
    "`Range: bytes=FIRST-[LAST]` (one range) to get 206 with that part, e.g. to resume. With the S3 "
    "backend the answer is a 302 to a short-lived presigned URL."
)
DOWNLOAD_RESPONSES = {
    (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="the whole file"),
    (206, "application/octet-stream"): OpenApiResponse(
        OpenApiTypes.BINARY, description="the requested range (`Content-Range`)"
    ),
    302: OpenApiResponse(description="S3 backend: a presigned URL to fetch the file from, in `Location`"),
    304: OpenApiResponse(description="`If-None-Match` names this file's ETag: you hold these bytes"),
    416: OpenApiResponse(
        ErrorSerializer,
        description="range_not_satisfiable: the range starts past the end (`Content-Range: bytes */SIZE`)",
    ),
}


class _FileListView(APIView):
    kind = ""
    pagination_class = None

    @extend_schema(responses=FileSerializer(many=True))
    def get(self, request, ref):
        _version, files = _version_files(self.kind, ref)
        return Response(FileSerializer(files, many=True).data)


class _FileDownloadView(APIView):
    kind = ""

    def perform_content_negotiation(self, request, force=False):
        # The success answer is raw bytes whatever the client accepts; errors are JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(parameters=[PATH_PARAMETER], description=DOWNLOAD_DESCRIPTION, responses=DOWNLOAD_RESPONSES)
    def get(self, request, ref, path):
        return _download(request, *_version_file(self.kind, ref, path), record=True)

    def head(self, request, ref, path):
        # The GET answer without its body, and not audited: no bytes leave.
        return _headers_only(_download(request, *_version_file(self.kind, ref, path), record=False))


class AdapterFileListView(_FileListView):
    """The files of an adapter version: path, size and SHA-256 of each (not paginated)."""

    kind = "adapter"


class BaseFileListView(_FileListView):
    """The files of a base model version: path, size and SHA-256 of each (not paginated)."""

    kind = "base"


class AdapterFileDownloadView(_FileDownloadView):
    kind = "adapter"


class BaseFileDownloadView(_FileDownloadView):
    kind = "base"
