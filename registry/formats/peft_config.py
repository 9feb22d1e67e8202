"""Validation of a PEFT `adapter_config.json` against the adapter's tensor headers.

For LoRA (and its DoRA/rsLoRA variants) every `lora_A`/`lora_B` pair must sit on a
module named by `target_modules`, with shapes that agree with `r` (or the module's
entry in `rank_pattern`). Other allow-listed PEFT types are checked for a sane
config and stored; their tensors are validated as safetensors only.
"""

import re
from dataclasses import dataclass, field

from registry.errors import InvalidArtifact
from registry.formats.files import load_strict_json
from registry.formats.safetensors_header import SafetensorsHeader, TensorInfo

MAX_ADAPTER_CONFIG_BYTES = 64 * 1024
ALLOWED_PEFT_TYPES = {
    "LORA",
    "ADALORA",
    "LOHA",
    "LOKR",
    "IA3",
    "VERA",
    "OFT",
    "BOFT",
    "PROMPT_TUNING",
    "PREFIX_TUNING",
    "P_TUNING",
}
LORA_TENSOR = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$")
DORA_TENSOR = re.compile(r"^(?P<module>.+)\.lora_magnitude_vector(?:\.weight)?$")
PEFT_PREFIX = "base_model.model."
CONFIG = "adapter_config.json"


@dataclass
class AdapterConfigSummary:
    peft_type: str
    r: int | None
    lora_alpha: float | None
    target_modules: list[str]
    modules_to_save: list[str]
    use_dora: bool
    use_rslora: bool
    raw: dict = field(repr=False)


def _refuse(code: str, message: str) -> InvalidArtifact:
    return InvalidArtifact(code, f"{CONFIG}: {message}", file=CONFIG)


def _positive_int(config: dict, key: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 65536:
        raise _refuse("adapter_config_invalid", f"{key!r} must be an integer from 1 to 65536, got {value!r}")
    return value


def _number(config: dict, key: str) -> float:
    value = config.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise _refuse("adapter_config_invalid", f"{key!r} must be a positive number, got {value!r}")
    return value


def _string_list(config: dict, key: str) -> list[str]:
    value = config.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return sorted(value)
    raise _refuse("adapter_config_invalid", f"{key!r} must be a string or a list of strings")


def parse_adapter_config(data: bytes) -> AdapterConfigSummary:
    config = load_strict_json(data, CONFIG, MAX_ADAPTER_CONFIG_BYTES)
    if not isinstance(config, dict):
        raise _refuse("adapter_config_invalid", "must be a JSON object")
    peft_type = config.get("peft_type")
    if peft_type not in ALLOWED_PEFT_TYPES:
        raise _refuse(
            "peft_type_not_allowed",
            f"peft_type {peft_type!r} is not supported; supported: {', '.join(sorted(ALLOWED_PEFT_TYPES))}",
        )
    is_lora = peft_type == "LORA"
    return AdapterConfigSummary(
        peft_type=peft_type,
        r=_positive_int(config, "r") if is_lora else config.get("r") if isinstance(config.get("r"), int) else None,
        lora_alpha=_number(config, "lora_alpha") if is_lora else None,
        target_modules=_string_list(config, "target_modules"),
        modules_to_save=_string_list(config, "modules_to_save"),
        use_dora=bool(config.get("use_dora", False)),
        use_rslora=bool(config.get("use_rslora", False)),
        raw=config,
    )


def _module_matches(module: str, target_modules: list[str], raw_target) -> bool:
    """PEFT semantics: a string is a full-match regex; a list matches by module-name suffix."""
    if isinstance(raw_target, str):
        return re.fullmatch(raw_target, module) is not None
    return any(module == target or module.endswith("." + target) for target in target_modules)


def rank_for(module: str, r: int, rank_pattern: dict | None) -> int:
    """`rank_pattern` overrides `r` for modules whose name matches one of its keys."""
    for pattern, rank in (rank_pattern or {}).items():
        if re.search(rf"(^|\.){pattern}$", module) and isinstance(rank, int):
            return rank
    return r


def lora_pairs(tensors: dict[str, TensorInfo]) -> tuple[dict[str, dict], list[str]]:
    """LoRA tensors grouped by module name (without peft's prefix), and the other non-DoRA tensors."""
    pairs: dict[str, dict] = {}
    others: list[str] = []
    for name, tensor in tensors.items():
        match = LORA_TENSOR.match(name)
        if match:
            pairs.setdefault(match["module"].removeprefix(PEFT_PREFIX), {})[match["part"]] = tensor
        elif not DORA_TENSOR.match(name):
            others.append(name)
    return pairs, others


def _check_pair(module: str, parts: dict, config: AdapterConfigSummary) -> None:
    a = parts.get("lora_A") or parts.get("lora_embedding_A")
    b = parts.get("lora_B") or parts.get("lora_embedding_B")
    if a is None or b is None:
        missing = "lora_A" if a is None else "lora_B"
        raise _refuse("lora_tensor_missing", f"module {module!r} has no {missing} tensor to pair with")
    rank = rank_for(module, config.r, config.raw.get("rank_pattern"))
    if len(a.shape) < 2 or len(b.shape) < 2 or a.shape[0] != rank or b.shape[1] != rank:
        raise _refuse(
            "lora_shape_mismatch",
            f"module {module!r}: lora_A {list(a.shape)} and lora_B {list(b.shape)} do not have rank r={rank}",
        )


def _check_modules_to_save(others: list[str], config: AdapterConfigSummary) -> None:
    for name in others:
        module = name.removeprefix(PEFT_PREFIX).rsplit(".", 1)[0]
        if not any(
            module == m or module.endswith("." + m) or f".{m}." in f".{module}." for m in config.modules_to_save
        ):
            raise _refuse(
                "adapter_unexpected_tensor",
                f"tensor {name!r} is neither a LoRA weight of a target module nor part of modules_to_save",
            )


def check_lora_tensors(config: AdapterConfigSummary, header: SafetensorsHeader) -> None:
    """The LoRA tensors must agree with `r`, `target_modules` and `modules_to_save`."""
    if config.peft_type != "LORA":
        return
    pairs, others = lora_pairs(header.tensors)
    if not pairs:
        raise _refuse("lora_tensor_missing", "adapter_model.safetensors holds no lora_A/lora_B tensors")
    raw_target = config.raw.get("target_modules")
    for module, parts in sorted(pairs.items()):
        if raw_target is not None and not _module_matches(module, config.target_modules, raw_target):
            raise _refuse(
                "lora_target_mismatch",
                f"module {module!r} carries LoRA weights but is not in target_modules {config.target_modules}",
            )
        _check_pair(module, parts, config)
    _check_modules_to_save(others, config)
