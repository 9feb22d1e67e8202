"""Validation of a PEFT `adapter_config.json` against the adapter's tensor headers.

For LoRA (and its DoRA/rsLoRA variants) every `lora_A`/`lora_B` pair must sit on a
module named by `target_modules`, with shapes that agree with `r` (or the module's
entry in `rank_pattern`). Other allow-listed PEFT types are checked for a sane
config and stored; their tensors are validated as safetensors only.
"""

import math
import re
from dataclasses import dataclass, field

from registry.errors import InvalidArtifact
from registry.formats.files import load_strict_json
from registry.formats.patterns import compile_user_pattern, first_pattern_key, full_match, suffix_pattern
from registry.formats.safetensors_header import SafetensorsHeader, TensorInfo

MAX_ADAPTER_CONFIG_BYTES = 64 * 1024
MAX_RANK = 65536
MAX_ALPHA = 1_000_000  # lora_alpha is a float column; 10**400 is a Python int no float holds
# peft puts modules_to_save names inside its own regexes on the worker, so they must be plain names.
PLAIN_MODULE_NAME = re.compile(r"^[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*$")
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


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _is_rank(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_RANK


def _is_alpha(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 < value <= MAX_ALPHA
        and math.isfinite(value)
    )


def _positive_int(config: dict, key: str) -> int:
    value = config.get(key)
    if not _is_rank(value):
        raise _refuse("adapter_config_invalid", f"{key!r} must be an integer from 1 to {MAX_RANK}, got {_shown(value)}")
    return value


def _optional_rank(config: dict) -> int | None:
    """Non-LoRA types may carry an `r` of their own; stored when it fits, refused when it cannot be."""
    value = config.get("r")
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    if not _is_rank(value):
        raise _refuse("adapter_config_invalid", f"'r' must be an integer from 1 to {MAX_RANK}, got {_shown(value)}")
    return value


def _number(config: dict, key: str) -> float:
    value = config.get(key)
    if not _is_alpha(value):
        raise _refuse(
            "adapter_config_invalid", f"{key!r} must be a number above 0 and at most {MAX_ALPHA}, got {_shown(value)}"
        )
    return float(value)


def _string_list(config: dict, key: str) -> list[str]:
    value = config.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return sorted(value)
    raise _refuse("adapter_config_invalid", f"{key!r} must be a string or a list of strings")


def _check_patterns(config: dict) -> None:
    """Every regex peft would run on a worker must compile with RE2 (see formats.patterns)."""
    for key in ("target_modules", "exclude_modules", "feedforward_modules"):
        if isinstance(config.get(key), str):
            compile_user_pattern(config[key], f"{key}")
    for key, is_value in (("rank_pattern", _is_rank), ("alpha_pattern", _is_alpha)):
        patterns = config.get(key)
        if patterns is None:
            continue
        if not isinstance(patterns, dict):
            raise _refuse("adapter_config_invalid", f"{key!r} must be an object of pattern: value")
        for pattern, value in patterns.items():
            compile_user_pattern(pattern, f"{key} key")
            compile_user_pattern(suffix_pattern(pattern), f"{key} key")
            if not is_value(value):
                raise _refuse("adapter_config_invalid", f"{key}[{pattern[:80]!r}] is out of range: {_shown(value)}")
    # peft builds its own regexes around these names on the worker: plain names only.
    for key in ("modules_to_save", "layers_pattern"):
        for name in _string_list(config, key):
            if not PLAIN_MODULE_NAME.match(name):
                raise _refuse("adapter_config_invalid", f"{key} entry {name[:80]!r} must be a plain module name")


def _peft_type(config: dict) -> str:
    peft_type = config.get("peft_type")
    if not isinstance(peft_type, str) or peft_type not in ALLOWED_PEFT_TYPES:
        raise _refuse(
            "peft_type_not_allowed",
            f"peft_type {_shown(peft_type)} is not supported; supported: {', '.join(sorted(ALLOWED_PEFT_TYPES))}",
        )
    return peft_type


def parse_adapter_config(data: bytes) -> AdapterConfigSummary:
    config = load_strict_json(data, CONFIG, MAX_ADAPTER_CONFIG_BYTES, storable=True)
    if not isinstance(config, dict):
        raise _refuse("adapter_config_invalid", "must be a JSON object")
    peft_type = _peft_type(config)
    is_lora = peft_type == "LORA"
    summary = AdapterConfigSummary(
        peft_type=peft_type,
        r=_positive_int(config, "r") if is_lora else _optional_rank(config),
        lora_alpha=_number(config, "lora_alpha") if is_lora else None,
        target_modules=_string_list(config, "target_modules"),
        modules_to_save=_string_list(config, "modules_to_save"),
        use_dora=bool(config.get("use_dora", False)),
        use_rslora=bool(config.get("use_rslora", False)),
        raw=config,
    )
    _check_patterns(config)
    return summary


def targets_module(raw_target, module: str) -> bool:
    """peft's rule: a string is a full-match regex (run by RE2 here); a list matches by name suffix."""
    if isinstance(raw_target, str):
        return full_match(raw_target, module)
    return any(module == target or module.endswith("." + target) for target in raw_target or [])


def rank_for(module: str, r: int, rank_pattern: dict | None) -> int:
    """`rank_pattern` overrides `r` for the first key that matches, by peft's own rule."""
    patterns = rank_pattern if isinstance(rank_pattern, dict) else {}
    key = first_pattern_key(patterns, module)
    return patterns[key] if key is not None and _is_rank(patterns[key]) else r


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
        if raw_target is not None and not targets_module(raw_target, module):
            raise _refuse(
                "lora_target_mismatch",
                f"module {module!r} carries LoRA weights but is not in target_modules {config.target_modules}",
            )
        _check_pair(module, parts, config)
    _check_modules_to_save(others, config)


# --- Patterns resolved to module names, for the workers -----------------------------------

# Tensor name segments where peft's adapter layers begin (lora_A, ia3_l, hada_w1_a, lokr_w1, ...).
TUNER_SEGMENT = re.compile(r"^(lora_|ia3_|hada_|lokr_|vera_|oft_|boft_)")
PATTERN_FIELDS = ("target_modules", "exclude_modules", "feedforward_modules", "rank_pattern", "alpha_pattern")


def adapted_modules(tensors) -> list[str]:
    """The modules peft wrapped when the adapter was trained, read from its tensor names."""
    modules = set()
    for name in tensors:
        segments = name.removeprefix(PEFT_PREFIX).split(".")
        cut = next((i for i, segment in enumerate(segments) if TUNER_SEGMENT.match(segment)), None)
        if cut:
            modules.add(".".join(segments[:cut]))
    return sorted(modules)


def resolve_patterns(config: dict, modules: list[str]) -> dict:
    """Every regex of the config replaced by the explicit module names it matches.

    Workers hand peft these lists (peft matches a list by name, without a regex), so
    no user pattern ever reaches Python's backtracking `re` on a worker. `modules`
    are the names peft wrapped at training time (`adapted_modules`): the names the
    patterns selected then, and the names the weights are stored under. Matching
    runs on RE2, by peft's own rules. Returns only the fields to override.
    """
    target, exclude = config.get("target_modules"), config.get("exclude_modules")
    targeted = [m for m in modules if target is None or targets_module(target, m)]
    if exclude:
        targeted = [m for m in targeted if not targets_module(exclude, m)]
    resolved: dict = {}
    if isinstance(target, str) or isinstance(exclude, str):
        # The explicit list already reflects exclusions and the layers chosen at training.
        resolved.update(target_modules=targeted, exclude_modules=None, layers_to_transform=None, layers_pattern=None)
    for key in ("rank_pattern", "alpha_pattern"):
        patterns = config.get(key)
        if isinstance(patterns, dict) and patterns:
            chosen = {m: first_pattern_key(patterns, m) for m in targeted}
            resolved[key] = {m: patterns[k] for m, k in chosen.items() if k is not None}
    feedforward = config.get("feedforward_modules")
    if isinstance(feedforward, str):
        resolved["feedforward_modules"] = [m for m in targeted if full_match(feedforward, m)]
    return resolved


def peft_overrides(resolved: dict) -> dict:
    """What a worker sets on peft's config: explicit names; pattern keys escaped to match only themselves."""
    overrides = dict(resolved)
    for key in ("rank_pattern", "alpha_pattern"):
        if key in overrides:
            overrides[key] = {re.escape(module): value for module, value in overrides[key].items()}
    return overrides
