"""A base version's tensor index: its safetensors headers, kept in the database.

Every adapter push compares the adapter with its base (registry/compat.py). The base's
headers were strictly validated when the base was registered and its files never change, so
they are written down once, at registration, in `BaseModelVersion.tensor_index`, and a push
reads them from the row it loads anyway instead of opening the base's blobs.

Stored as {"format": 1, "tensors": {name: [dtype, shape, start, end]}}: the same facts as
`TensorInfo` (offsets are within the tensor's own file), so the index and a fresh read of the
headers give equal results. Anything else (an older or unknown format, a hand-edited row) is
not trusted: `tensors_from_index` says None and the caller reads the blobs again.
"""

from collections.abc import Mapping

from registry.formats.safetensors_header import TensorInfo

INDEX_FORMAT = 1


def tensor_index(tensors: Mapping[str, TensorInfo]) -> dict:
    """The JSON to store for `tensors` (the union of a version's safetensors headers)."""
    return {
        "format": INDEX_FORMAT,
        "tensors": {name: [t.dtype, list(t.shape), t.start, t.end] for name, t in sorted(tensors.items())},
    }


def _is_entry(entry) -> bool:
    if not (isinstance(entry, list) and len(entry) == 4):
        return False
    dtype, shape, start, end = entry
    return (
        isinstance(dtype, str)
        and isinstance(shape, list)
        and all(type(dim) is int for dim in shape)
        and type(start) is int
        and type(end) is int
    )


def tensors_from_index(index) -> dict[str, TensorInfo] | None:
    """The tensors of a stored index; None when there is none or it is not one this code wrote."""
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        return None
    entries = index.get("tensors")
    if not isinstance(entries, dict) or not all(_is_entry(entry) for entry in entries.values()):
        return None
    return {
        name: TensorInfo(name=name, dtype=dtype, shape=tuple(shape), start=start, end=end)
        for name, (dtype, shape, start, end) in entries.items()
    }
