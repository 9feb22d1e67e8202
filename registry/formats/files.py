"""Rules every uploaded file passes before its content is read as a format.

Names come from an allow-list per artifact kind; paths are plain relative file
names; pickles and zips are refused by their bytes, whatever they are called.
"""

import pickletools
import re
from pathlib import Path

from registry.errors import InvalidArtifact, UploadRefused
from registry.formats.strict_json import load_json

MAX_PATH_LENGTH = 255
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
# Tokenizer files: part of a base, and of an adapter that added tokens to it.
TOKENIZER_NAMES = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
}
BASE_FIXED_NAMES = TOKENIZER_NAMES | {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "chat_template.json",
    "README.md",
}
ADAPTER_FIXED_NAMES = TOKENIZER_NAMES | {"adapter_config.json", "adapter_model.safetensors", "README.md"}
JSON_SUFFIX = ".json"
TEXT_SUFFIXES = (".txt", ".md", ".jinja")


def validate_path(path: str) -> str:
    """A path must be a plain file name: no directories, no traversal, nothing absolute."""
    if not path or len(path) > MAX_PATH_LENGTH:
        raise UploadRefused("invalid_path", f"file name {path[:80]!r} must be 1-{MAX_PATH_LENGTH} characters")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise UploadRefused("absolute_path", f"{path!r} is an absolute path; send plain file names", file=path)
    parts = re.split(r"[/\\]", path)
    if ".." in parts or "." in parts:
        raise UploadRefused("path_traversal", f"{path!r} climbs out of the upload directory", file=path)
    if len(parts) > 1:
        raise UploadRefused("nested_path", f"{path!r} is in a subdirectory; these layouts are flat", file=path)
    if any(not ch.isprintable() for ch in path):
        raise UploadRefused("invalid_path", f"{path!r} contains control characters", file=path)
    return path


def allowed_names_message(kind: str) -> str:
    names = sorted(BASE_FIXED_NAMES if kind == "base" else ADAPTER_FIXED_NAMES)
    if kind == "base":
        names.append("model-NNNNN-of-NNNNN.safetensors")
    return ", ".join(names)


def validate_name_for_kind(path: str, kind: str) -> None:
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise UploadRefused(
            "pickle_refused",
            f"{path!r} is a pickle-based weight file; convert it to safetensors "
            "(safetensors.torch.save_file) and upload that instead",
            file=path,
        )
    allowed = BASE_FIXED_NAMES if kind == "base" else ADAPTER_FIXED_NAMES
    if path in allowed or (kind == "base" and SHARD_PATTERN.match(path)):
        return
    raise UploadRefused(
        "file_not_allowed",
        f"{path!r} is not a file this {kind} layout may contain; allowed: {allowed_names_message(kind)}",
        file=path,
    )


def looks_like_pickle(data: bytes) -> bool:
    """True when `data` parses as a complete pickle stream (any protocol)."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    if not data or data[:1] not in b"(]}cKJIGFSVXNTU\x80lqdp.":
        return False
    try:
        opcodes = list(pickletools.genops(data))
    except Exception:  # genops raises ValueError and others on anything not a pickle
        return False
    return bool(opcodes) and opcodes[-1][0].name == "STOP" and opcodes[-1][2] == len(data) - 1


def refuse_serialized_code(path: str, head: bytes, whole: bytes | None = None) -> None:
    """Refuse pickles and zips (torch.save writes zips of pickles) by their bytes."""
    if head.startswith(ZIP_MAGICS):
        raise InvalidArtifact(
            "zip_refused",
            f"{path!r} is a zip archive (torch.save writes these); upload safetensors files instead",
            file=path,
        )
    if looks_like_pickle(whole if whole is not None else head):
        raise InvalidArtifact(
            "pickle_refused",
            f"{path!r} contains a pickle, which can run code when loaded; upload safetensors files instead",
            file=path,
        )


def load_strict_json(data: bytes, path: str, max_bytes: int, *, storable: bool = False) -> object:
    """Parse UTF-8 JSON of at most `max_bytes` with the shared bounded loader (see strict_json)."""
    if len(data) > max_bytes:
        raise InvalidArtifact(
            "json_too_large", f"{path!r} is {len(data)} bytes; at most {max_bytes} are accepted", file=path
        )
    return load_json(data, path, storable=storable)


def validate_text_file(data: bytes, path: str) -> None:
    try:
        data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidArtifact("text_invalid", f"{path!r} is not valid UTF-8 text", file=path) from None


def read_head(path: Path, size: int = 64) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)
