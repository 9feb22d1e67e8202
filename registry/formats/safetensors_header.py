"""Strict validation of a safetensors file, reading only its header.

The file layout is: 8 bytes little-endian header length N, N bytes of UTF-8 JSON,
then the tensor data. Nothing in the header is trusted until every rule below
holds; only then is the file handed to `safetensors.safe_open` as a second,
independent parser.
"""

import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from registry.errors import InvalidArtifact
from registry.formats.strict_json import load_json

MAX_HEADER_BYTES = 8 * 1024 * 1024
MAX_RANK = 8
MAX_DIM = 2**40
MAX_TENSOR_NAME_LENGTH = 512
MAX_METADATA_ENTRIES = 1024
TENSOR_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-/:]+$")
TENSOR_KEYS = {"dtype", "shape", "data_offsets"}

# Bytes per element of every dtype we accept. Anything else is refused.
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
FLOAT_DTYPES = {"F8_E4M3", "F8_E5M2", "F16", "BF16", "F32", "F64"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def element_count(self) -> int:
        return math.prod(self.shape)


@dataclass
class SafetensorsHeader:
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    header_length: int = 0
    data_length: int = 0

    @property
    def parameter_count(self) -> int:
        return sum(t.element_count for t in self.tensors.values())

    @property
    def dtypes(self) -> list[str]:
        return sorted({t.dtype for t in self.tensors.values()})


def _refuse(code: str, message: str, path_label: str) -> InvalidArtifact:
    return InvalidArtifact(code, f"{path_label}: {message}", file=path_label)


# The header keeps the codes it always had; depth and number range use the shared ones.
HEADER_JSON_CODES = {
    "invalid": "safetensors_header_not_json",
    "duplicate_key": "safetensors_duplicate_key",
    "nonfinite": "safetensors_nonfinite_number",
}


def _parse_header_json(raw: bytes, label: str) -> dict:
    if not raw.startswith(b"{"):
        raise _refuse("safetensors_header_not_json", "the header does not start with '{'", label)
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise _refuse("safetensors_header_not_utf8", f"the header is not valid UTF-8 ({exc.reason})", label) from None
    # The format pads the header with spaces for alignment.
    parsed = load_json(text.rstrip(" "), label, codes=HEADER_JSON_CODES, prefix=f"{label}: the header")
    if not isinstance(parsed, dict):
        raise _refuse("safetensors_header_not_json", "the header is not a JSON object", label)
    return parsed


def _validate_metadata(value, label: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_METADATA_ENTRIES:
        raise _refuse("safetensors_bad_metadata", "__metadata__ must be an object of at most 1024 strings", label)
    for key, item in value.items():
        if not isinstance(item, str):
            raise _refuse("safetensors_bad_metadata", f"__metadata__[{key!r}] must be a string", label)
    return value


def _validate_tensor_name(name: str, label: str) -> None:
    if not name or len(name) > MAX_TENSOR_NAME_LENGTH or not TENSOR_NAME_PATTERN.match(name):
        shown = name[:80]
        raise _refuse(
            "safetensors_bad_tensor_name",
            f"tensor name {shown!r} must be 1-{MAX_TENSOR_NAME_LENGTH} characters of A-Z a-z 0-9 _ . - / :",
            label,
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_tensor(name: str, entry, label: str) -> TensorInfo:
    _validate_tensor_name(name, label)
    if not isinstance(entry, dict) or set(entry) != TENSOR_KEYS:
        raise _refuse(
            "safetensors_bad_tensor_entry",
            f"tensor {name!r} must have exactly the keys dtype, shape and data_offsets",
            label,
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_BYTES:
        raise _refuse("safetensors_bad_dtype", f"tensor {name!r} has dtype {dtype!r}, which is not accepted", label)
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise _refuse("safetensors_bad_shape", f"tensor {name!r} must have a shape of rank 0 to {MAX_RANK}", label)
    if not all(_is_int(dim) and 0 <= dim <= MAX_DIM for dim in shape):
        raise _refuse(
            "safetensors_bad_shape", f"tensor {name!r} has a dimension that is not an integer in 0..2^40", label
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise _refuse("safetensors_bad_offsets", f"tensor {name!r} must have data_offsets [begin, end]", label)
    start, end = offsets
    expected_bytes = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - start != expected_bytes:
        raise _refuse(
            "safetensors_bad_offsets",
            f"tensor {name!r} spans {end - start} bytes but dtype and shape need {expected_bytes}",
            label,
        )
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), start=start, end=end)


def _check_contiguous(tensors: list[TensorInfo], data_length: int, label: str) -> None:
    """Tensors must tile the data region exactly: no gaps, no overlaps, no trailing bytes."""
    position = 0
    for tensor in sorted(tensors, key=lambda t: (t.start, t.end)):
        if tensor.start != position:
            kind = "overlaps another tensor" if tensor.start < position else "leaves a gap before it"
            raise _refuse("safetensors_bad_offsets", f"tensor {tensor.name!r} {kind}", label)
        position = tensor.end
    if position != data_length:
        raise _refuse(
            "safetensors_size_mismatch",
            f"the tensors cover {position} bytes of data but the file holds {data_length}",
            label,
        )


def parse_header_bytes(prefix: bytes, file_size: int, label: str) -> SafetensorsHeader:
    """Validate a header given the file's first bytes (8 + header length) and its total size."""
    if file_size < 8 or len(prefix) < 8:
        raise _refuse("safetensors_truncated", "the file is shorter than the 8-byte header length", label)
    (header_length,) = struct.unpack("<Q", prefix[:8])
    if header_length > MAX_HEADER_BYTES:
        raise _refuse(
            "safetensors_header_too_large",
            f"the header claims {header_length} bytes; at most {MAX_HEADER_BYTES} are accepted",
            label,
        )
    if header_length < 2 or 8 + header_length > file_size or len(prefix) < 8 + header_length:
        raise _refuse("safetensors_truncated", "the header length points past the end of the file", label)
    parsed = _parse_header_json(prefix[8 : 8 + header_length], label)
    metadata = _validate_metadata(parsed.pop("__metadata__", {}), label)
    tensors = [_validate_tensor(name, entry, label) for name, entry in parsed.items()]
    data_length = file_size - 8 - header_length
    _check_contiguous(tensors, data_length, label)
    return SafetensorsHeader(
        tensors={t.name: t for t in tensors},
        metadata=metadata,
        header_length=header_length,
        data_length=data_length,
    )


def read_header_from(handle, file_size: int, label: str) -> SafetensorsHeader:
    """Read and validate only the header from an open binary file (local or object storage)."""
    length_bytes = handle.read(8)
    if len(length_bytes) < 8:
        raise _refuse("safetensors_truncated", "the file is shorter than the 8-byte header length", label)
    (header_length,) = struct.unpack("<Q", length_bytes)
    prefix = length_bytes + handle.read(min(header_length, MAX_HEADER_BYTES))
    return parse_header_bytes(prefix, file_size, label)


def read_header(path: Path, label: str | None = None) -> SafetensorsHeader:
    """Read and validate only the header of the safetensors file at `path`."""
    with path.open("rb") as handle:
        return read_header_from(handle, path.stat().st_size, label or path.name)


def cross_check_with_safetensors(path: Path, header: SafetensorsHeader, label: str | None = None) -> None:
    """Open the file with the safetensors library as a second parser; it must agree with ours."""
    from safetensors import safe_open

    label = label or path.name
    try:
        with safe_open(str(path), framework="numpy") as handle:
            names = set(handle.keys())
    except Exception as exc:  # the library raises its own SafetensorError and others
        raise _refuse("safetensors_rejected_by_library", f"safetensors refused the file: {exc}", label) from None
    if names != set(header.tensors):
        raise _refuse("safetensors_rejected_by_library", "safetensors lists different tensors than the header", label)
