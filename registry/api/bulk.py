"""POST /api/v1/adapters/bulk: many adapter versions in one multipart request.

The body is the single push's multipart upload, read by the same streaming parser with the same
limits, holding several adapters:

- a `manifest` field: a JSON list of items, each {"name", "base", "parent"?, "provenance"?,
  "files": [path, ...], "signature"?: true};
- then the `file` parts of every item, in manifest order, each named by its path as in a single
  push (item 0's files, then item 1's, ...); an item with "signature": true also sends one
  `signature` part (the signature parts in item order).

Parts are matched by their order rather than by an "<index>/<path>" name so that the parser's
path rule (a flat file name, refused otherwise) applies to each part unchanged.

A request the server cannot split into items (no manifest, bad JSON, too many items, parts that
do not match the manifest) is refused as a whole with 400 and registers nothing. Otherwise the
answer is 200 with one result per item: created, existing, or refused with the code and message
a single push would have given.
"""

import dataclasses

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api import serializers as s
from registry.api.permissions import CanPushOrReadOnly
from registry.api.schema import error_responses
from registry.api.views import refusal_recorded
from registry.errors import InvalidArtifact, RegistryError, UploadRefused
from registry.formats.artifact import IncomingFile
from registry.formats.strict_json import load_json
from registry.roles import SCOPE_PUSH
from registry.services.bulk import BULK_MAX_ITEMS, CREATED, EXISTING, REFUSED, BulkItem, adapter_versions_bulk_ingest
from registry.uploads import FILE_FIELD, SIGNATURE_FIELD, StreamingMultiPartParser, upload_scope

MANIFEST_FIELD = "manifest"
ITEM_KEYS = {"name", "base", "parent", "provenance", "files", "signature"}


def _manifest_invalid(message: str) -> UploadRefused:
    return UploadRefused("manifest_invalid", message)


def _manifest_items(raw) -> list[dict]:
    """The manifest's items, checked for shape only: field values are judged per item."""
    if not isinstance(raw, str) or not raw:
        raise UploadRefused("manifest_required", f"send the items as a JSON list in the '{MANIFEST_FIELD}' field")
    try:
        items = load_json(raw, MANIFEST_FIELD, storable=True, prefix="the manifest")
    except InvalidArtifact as exc:
        raise _manifest_invalid(exc.message) from None
    if not isinstance(items, list) or not items:
        raise _manifest_invalid("the manifest must be a non-empty JSON list of items")
    if len(items) > BULK_MAX_ITEMS:
        raise UploadRefused(
            "too_many_items", f"the manifest has {len(items)} items; send at most {BULK_MAX_ITEMS} per request"
        )
    for index, item in enumerate(items):
        _check_item_shape(index, item)
    return items


def _check_item_shape(index: int, item) -> None:
    if not isinstance(item, dict):
        raise _manifest_invalid(f"item {index} is not a JSON object")
    unknown = sorted(set(item) - ITEM_KEYS)
    if unknown:
        raise _manifest_invalid(
            f"item {index} has an unknown key {unknown[0]!r}; allowed: {', '.join(sorted(ITEM_KEYS))}"
        )
    paths = item.get("files")
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise _manifest_invalid(f"item {index}: 'files' must be the list of its file paths, in the order sent")
    if not isinstance(item.get("signature", False), bool):
        raise _manifest_invalid(f"item {index}: 'signature' must be true or false")


def _split_parts(items: list[dict], request) -> tuple[list[list[IncomingFile]], list[bytes | None]]:
    """Each item's files and signature, taken from the parts in manifest order."""
    parts = request.FILES.getlist(FILE_FIELD)
    expected = sum(len(item["files"]) for item in items)
    if len(parts) != expected:
        raise UploadRefused(
            "bulk_files_mismatch", f"the manifest lists {expected} files but the request has {len(parts)} file parts"
        )
    files, position = [], 0
    for index, item in enumerate(items):
        item_files = []
        for path in item["files"]:
            part = parts[position]
            position += 1
            if part.raw_name != path:
                raise UploadRefused(
                    "bulk_files_mismatch",
                    f"item {index}: expected the part for {path!r}, got {part.raw_name!r}; send parts in manifest order",
                )
            item_files.append(part.as_incoming())
        files.append(item_files)
    return files, _item_signatures(items, request)


def _item_signatures(items: list[dict], request) -> list[bytes | None]:
    sent = request.FILES.getlist(SIGNATURE_FIELD)
    wanted = sum(1 for item in items if item.get("signature"))
    if len(sent) != wanted:
        raise UploadRefused(
            "bulk_files_mismatch", f"{wanted} items say they are signed but the request has {len(sent)} signature parts"
        )
    bundles = iter(sent)
    return [next(bundles).temp_path.read_bytes() if item.get("signature") else None for item in items]


def _item_fields_refusal(errors) -> RegistryError:
    """The refusal a single push gives for the same fields (registry/api/errors.py, validation_error)."""
    field_name, messages = next(iter(errors.items()))
    message = messages[0] if isinstance(messages, list) and messages else messages
    return RegistryError("validation_error", f"{field_name}: {message}")


def _bulk_item(index: int, raw: dict, files: list[IncomingFile], signature: bytes | None) -> BulkItem:
    form = s.AdapterUploadSerializer(
        data={key: raw[key] for key in ("name", "base", "parent", "provenance") if key in raw}
    )
    name = raw.get("name")
    item = BulkItem(index=index, name=name[:300] if isinstance(name, str) else "", files=files, signature=signature)
    if not form.is_valid():
        return dataclasses.replace(item, refusal=_item_fields_refusal(form.errors))
    data = form.validated_data
    return dataclasses.replace(
        item, base=data["base"], parent=data.get("parent") or None, provenance=data.get("provenance")
    )


class BulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=[CREATED, EXISTING, REFUSED])
    code = serializers.CharField(help_text="the refusal's code, as a single push gives it; empty unless refused")
    message = serializers.CharField()
    ref = serializers.CharField(help_text="namespace/name:vN; empty when refused")
    digest = serializers.CharField()
    id = serializers.CharField()
    version_status = serializers.CharField(help_text="received, checking, ready or rejected; empty when refused")


class BulkResultSerializer(serializers.Serializer):
    results = BulkItemResultSerializer(many=True)
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    refused = serializers.IntegerField()


class BulkUploadSerializer(serializers.Serializer):
    """What the OpenAPI schema shows of the body; the view reads it itself (see the module docstring)."""

    manifest = serializers.CharField(
        help_text='JSON list of {"name", "base", "parent"?, "provenance"?, "files": [path, ...], '
        f'"signature"?: true}}; at most {BULK_MAX_ITEMS} items'
    )
    file = serializers.ListField(
        child=serializers.FileField(), required=False, help_text="every item's files, in manifest order"
    )
    signature = serializers.ListField(
        child=serializers.FileField(), required=False, help_text="one bundle per signed item, in item order"
    )


class AdapterBulkView(APIView):
    """Register many adapter versions in one request; one result per item."""

    permission_classes = [CanPushOrReadOnly]
    required_scope = SCOPE_PUSH
    parser_classes = [StreamingMultiPartParser]

    @extend_schema(
        request={"multipart/form-data": BulkUploadSerializer},
        responses={200: BulkResultSerializer, **error_responses(400, 413)},
    )
    def post(self, request):
        with refusal_recorded(request, "adapter"), upload_scope(request):
            raw_items = _manifest_items(request.data.get(MANIFEST_FIELD))
            files, signatures = _split_parts(raw_items, request)
            items = [_bulk_item(index, raw, files[index], signatures[index]) for index, raw in enumerate(raw_items)]
            report = adapter_versions_bulk_ingest(items=items, user=request.user)
        return Response(
            {
                "results": [dataclasses.asdict(result) for result in report.results],
                "created": report.count(CREATED),
                "existing": report.count(EXISTING),
                "refused": report.count(REFUSED),
            }
        )
