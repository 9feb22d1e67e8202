"""Static validation of a whole upload: a Hugging Face base model or a PEFT adapter.

Input is the list of files already streamed to temporary storage and hashed;
output is the metadata derived from their headers. Nothing here touches the
database or the blob store, so a refusal leaves nothing behind.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from registry.errors import InvalidArtifact, UploadRefused
from registry.formats import files as file_rules
from registry.formats.manifest import manifest_digest
from registry.formats.model_card import MAX_CARD_BYTES, ModelCard, read_card
from registry.formats.peft_config import (
    MAX_ADAPTER_CONFIG_BYTES,
    AdapterConfigSummary,
    adapted_modules,
    check_lora_tensors,
    parse_adapter_config,
    resolve_patterns,
)
from registry.formats.safetensors_header import (
    SafetensorsHeader,
    TensorInfo,
    cross_check_with_safetensors,
    read_header,
)

MAX_BASE_CONFIG_BYTES = 1024 * 1024
# Column sizes of BaseModelVersion (registry/models/catalog.py): checked before anything is written.
MAX_ARCHITECTURE_LENGTH = 128
MAX_MODEL_TYPE_LENGTH = 64
MAX_POSITIVE_INT = 2**31 - 1  # PositiveIntegerField is a PostgreSQL integer
# JSON stored in the database (a JSONField) must hold only what PostgreSQL can.
STORED_JSON = {"config.json"}
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_TEXT_BYTES = 64 * 1024 * 1024
INDEX_NAME = "model.safetensors.index.json"
CARD_NAME = "README.md"


@dataclass
class IncomingFile:
    """One uploaded file, already on local disk and hashed while it streamed."""

    path: str
    temp_path: Path
    size: int
    sha256: str


@dataclass
class BaseSummary:
    digest: str
    architecture: str
    model_type: str
    hidden_size: int | None
    num_layers: int | None
    parameter_count: int
    dtype: str
    total_bytes: int
    config: dict
    # Every tensor of every weight file: stored as the version's tensor index (formats/tensor_index.py).
    tensors: dict[str, TensorInfo] = field(repr=False, default_factory=dict)
    card: ModelCard | None = None


@dataclass
class AdapterSummary:
    digest: str
    config: AdapterConfigSummary
    tensor_count: int
    parameter_count: int
    total_bytes: int
    dtypes: list[str]
    resolved_patterns: dict = field(default_factory=dict)
    card: ModelCard | None = None
    # The validated header of adapter_model.safetensors: the static check compares these with the base.
    tensors: dict[str, TensorInfo] = field(repr=False, default_factory=dict)


def _check_file_set(files: list[IncomingFile], kind: str) -> dict[str, IncomingFile]:
    if not files:
        raise UploadRefused("no_files", "the upload contains no files")
    if len(files) > settings.MAX_FILES_PER_UPLOAD:
        raise UploadRefused(
            "too_many_files", f"{len(files)} files sent; at most {settings.MAX_FILES_PER_UPLOAD} are accepted"
        )
    duplicates = [path for path, count in Counter(f.path for f in files).items() if count > 1]
    if duplicates:
        raise UploadRefused("duplicate_file", f"{duplicates[0]!r} was sent more than once", file=duplicates[0])
    for incoming in files:
        file_rules.validate_path(incoming.path)
        file_rules.validate_name_for_kind(incoming.path, kind)
    return {f.path: f for f in files}


def _validate_content(incoming: IncomingFile) -> dict | None:
    """Refuse serialized code and malformed JSON/text; return parsed JSON where there is some,
    and the bytes of the model card, which is read once."""
    path = incoming.path
    if path.endswith(".safetensors"):
        file_rules.refuse_serialized_code(path, file_rules.read_head(incoming.temp_path))
        return None
    if path.endswith(file_rules.JSON_SUFFIX) or path.endswith(file_rules.TEXT_SUFFIXES):
        limit = MAX_JSON_BYTES if path.endswith(file_rules.JSON_SUFFIX) else MAX_TEXT_BYTES
        if path in STORED_JSON:
            limit = MAX_BASE_CONFIG_BYTES
        if incoming.size > limit:
            raise InvalidArtifact("file_too_large", f"{path!r} is {incoming.size} bytes; at most {limit}", file=path)
        data = incoming.temp_path.read_bytes()
        file_rules.refuse_serialized_code(path, data[:64], whole=data)
        if path.endswith(file_rules.JSON_SUFFIX):
            return {"json": file_rules.load_strict_json(data, path, limit, storable=path in STORED_JSON)}
        file_rules.validate_text_file(data, path)
        return {"card": data} if path == CARD_NAME else None
    # Binary tokenizer files (sentencepiece protobuf): only refuse serialized code.
    file_rules.refuse_serialized_code(path, file_rules.read_head(incoming.temp_path))
    return None


def _safetensors_header(incoming: IncomingFile) -> SafetensorsHeader:
    header = read_header(incoming.temp_path, label=incoming.path)
    cross_check_with_safetensors(incoming.temp_path, header, label=incoming.path)
    return header


def _model_card(parsed: dict[str, dict]) -> ModelCard | None:
    """The README.md model card, from the bytes `_validate_content` read and checked as UTF-8."""
    if CARD_NAME not in parsed:
        return None
    return read_card(parsed[CARD_NAME]["card"][: MAX_CARD_BYTES + 1])


def _digest(files: list[IncomingFile]) -> str:
    return manifest_digest((f.path, f.sha256) for f in files)


# --- Base models -----------------------------------------------------------------


def _check_shard_index(index: object, shard_headers: dict[str, SafetensorsHeader]) -> None:
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise InvalidArtifact(
            "shard_index_invalid", f"{INDEX_NAME} must be an object with a 'weight_map'", file=INDEX_NAME
        )
    weight_map: dict = index["weight_map"]
    wrong = next((tensor for tensor, shard in weight_map.items() if not isinstance(shard, str)), None)
    if wrong is not None:
        raise InvalidArtifact(
            "shard_index_invalid",
            f"{INDEX_NAME}: weight_map[{wrong[:80]!r}] must be a shard file name (a string)",
            file=INDEX_NAME,
        )
    referenced = set(weight_map.values())
    missing = referenced - set(shard_headers)
    if missing:
        raise InvalidArtifact(
            "shard_missing", f"{INDEX_NAME} refers to {sorted(missing)[0]!r}, which was not uploaded", file=INDEX_NAME
        )
    unreferenced = set(shard_headers) - referenced
    if unreferenced:
        raise InvalidArtifact(
            "shard_unreferenced", f"{sorted(unreferenced)[0]!r} is not listed in {INDEX_NAME}", file=INDEX_NAME
        )
    for tensor, shard in weight_map.items():
        if tensor not in shard_headers[shard].tensors:
            raise InvalidArtifact(
                "shard_index_mismatch",
                f"{INDEX_NAME} puts {tensor!r} in {shard!r}, which does not hold it",
                file=INDEX_NAME,
            )
    in_shards = sum(len(h.tensors) for h in shard_headers.values())
    if in_shards != len(weight_map):
        raise InvalidArtifact(
            "shard_index_mismatch",
            f"the shards hold {in_shards} tensors but {INDEX_NAME} lists {len(weight_map)}",
            file=INDEX_NAME,
        )


def _base_weights(by_path: dict[str, IncomingFile], parsed: dict[str, dict]) -> dict[str, SafetensorsHeader]:
    shards = sorted(p for p in by_path if file_rules.SHARD_PATTERN.match(p))
    has_single = "model.safetensors" in by_path
    if has_single and (shards or INDEX_NAME in by_path):
        raise InvalidArtifact(
            "weights_ambiguous", "send either model.safetensors or sharded files with an index, not both"
        )
    if has_single:
        return {"model.safetensors": _safetensors_header(by_path["model.safetensors"])}
    if not shards:
        raise InvalidArtifact(
            "weights_missing", "a base model needs model.safetensors or model-NNNNN-of-NNNNN.safetensors shards"
        )
    if INDEX_NAME not in parsed:
        raise InvalidArtifact("shard_index_missing", f"sharded weights need {INDEX_NAME}", file=INDEX_NAME)
    headers = {path: _safetensors_header(by_path[path]) for path in shards}
    _check_shard_index(parsed[INDEX_NAME]["json"], headers)
    return headers


def _base_config(parsed: dict[str, dict]) -> dict:
    if "config.json" not in parsed:
        raise InvalidArtifact("config_missing", "a base model needs config.json", file="config.json")
    config = parsed["config.json"]["json"]
    if not isinstance(config, dict):
        raise InvalidArtifact("config_invalid", "config.json must be a JSON object", file="config.json")
    if not isinstance(config.get("model_type"), str):
        raise InvalidArtifact("config_invalid", "config.json must name its 'model_type'", file="config.json")
    return config


def _refuse_config(message: str) -> InvalidArtifact:
    return InvalidArtifact("config_value_out_of_range", f"config.json: {message}", file="config.json")


def _int_or_none(config: dict, *keys: str) -> int | None:
    """The first of `keys` that holds a non-negative integer; refused if it cannot be stored."""
    value = next((config[key] for key in keys if config.get(key)), None)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    if value > MAX_POSITIVE_INT:
        raise _refuse_config(f"{keys[0]!r} is {_shown(value)}; at most {MAX_POSITIVE_INT} is accepted")
    return value


def _shown(value) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"


def _architecture(config: dict) -> str:
    architectures = config.get("architectures")
    if not (isinstance(architectures, list) and architectures and isinstance(architectures[0], str)):
        return ""
    if len(architectures[0]) > MAX_ARCHITECTURE_LENGTH:
        raise _refuse_config(
            f"architectures[0] is {len(architectures[0])} characters; at most {MAX_ARCHITECTURE_LENGTH} are accepted"
        )
    return architectures[0]


def _model_type(config: dict) -> str:
    if len(config["model_type"]) > MAX_MODEL_TYPE_LENGTH:
        raise _refuse_config(
            f"model_type is {len(config['model_type'])} characters; at most {MAX_MODEL_TYPE_LENGTH} are accepted"
        )
    return config["model_type"]


def _dominant_dtype(headers: dict[str, SafetensorsHeader]) -> str:
    weight_by_dtype: Counter = Counter()
    for header in headers.values():
        for tensor in header.tensors.values():
            weight_by_dtype[tensor.dtype] += tensor.element_count
    return weight_by_dtype.most_common(1)[0][0] if weight_by_dtype else ""


def validate_base_upload(files: list[IncomingFile]) -> BaseSummary:
    by_path = _check_file_set(files, "base")
    parsed = {path: result for path, f in by_path.items() if (result := _validate_content(f)) is not None}
    config = _base_config(parsed)
    if INDEX_NAME in by_path and INDEX_NAME not in parsed:
        raise InvalidArtifact("shard_index_invalid", f"{INDEX_NAME} must be JSON", file=INDEX_NAME)
    architecture, model_type = _architecture(config), _model_type(config)
    hidden_size = _int_or_none(config, "hidden_size", "d_model")
    num_layers = _int_or_none(config, "num_hidden_layers", "n_layer")
    headers = _base_weights(by_path, parsed)
    return BaseSummary(
        digest=_digest(files),
        architecture=architecture,
        model_type=model_type,
        hidden_size=hidden_size,
        num_layers=num_layers,
        parameter_count=sum(h.parameter_count for h in headers.values()),
        dtype=_dominant_dtype(headers),
        total_bytes=sum(f.size for f in files),
        config=config,
        tensors={name: t for h in headers.values() for name, t in h.tensors.items()},
        card=_model_card(parsed),
    )


# --- Adapters ------------------------------------------------------------------------


def _read_limited(incoming: IncomingFile, limit: int) -> bytes:
    """Read a small file whole, refusing serialized code before it is parsed as anything."""
    if incoming.size > limit:
        raise InvalidArtifact(
            "json_too_large",
            f"{incoming.path!r} is {incoming.size} bytes; at most {limit} are accepted",
            file=incoming.path,
        )
    data = incoming.temp_path.read_bytes()
    file_rules.refuse_serialized_code(incoming.path, data[:64], whole=data)
    return data


def validate_adapter_upload(files: list[IncomingFile]) -> AdapterSummary:
    by_path = _check_file_set(files, "adapter")
    for required in ("adapter_config.json", "adapter_model.safetensors"):
        if required not in by_path:
            raise InvalidArtifact(
                f"{required.split('.')[0]}_missing",
                f"an adapter needs {required} (the layout peft's save_pretrained writes)",
                file=required,
            )
    config_file = by_path["adapter_config.json"]
    config = parse_adapter_config(_read_limited(config_file, MAX_ADAPTER_CONFIG_BYTES))
    # adapter_config.json was just read, refused if code and parsed more strictly than here.
    parsed = {f.path: result for f in files if f is not config_file and (result := _validate_content(f)) is not None}
    header = _safetensors_header(by_path["adapter_model.safetensors"])
    check_lora_tensors(config, header)
    return AdapterSummary(
        resolved_patterns=resolve_patterns(config.raw, adapted_modules(header.tensors)),
        digest=_digest(files),
        config=config,
        tensor_count=len(header.tensors),
        parameter_count=header.parameter_count,
        total_bytes=sum(f.size for f in files),
        dtypes=header.dtypes,
        card=_model_card(parsed),
        tensors=header.tensors,
    )
