"""Regular expressions that come from users: matched with RE2, never with Python's `re`.

PEFT configs carry regexes (a string `target_modules`, the keys of `rank_pattern`
and `alpha_pattern`, a string `exclude_modules`). Python's backtracking engine
takes exponential time on a nested quantifier such as `(a+)+b`, so a 64 KiB
config could hold a worker or a web thread for hours. RE2 (google-re2) matches
in time linear in the input and refuses what it cannot do that way
(backreferences, lookaround): such patterns are refused at upload with a code.
Module names are ASCII (tensor names are validated), so RE2's ASCII `\\d`/`\\w`
and Python's Unicode ones agree on everything they are matched against.
"""

import functools

import re2

from registry.errors import InvalidArtifact

MAX_PATTERN_LENGTH = 4096
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the user's error, not a server log line
_OPTIONS.max_mem = 8 << 20


@functools.lru_cache(maxsize=512)
def _compile(pattern: str):
    return re2.compile(pattern, options=_OPTIONS)


def compile_user_pattern(pattern, where: str, *, label: str = "adapter_config.json"):
    """Compile `pattern` with RE2 or refuse it with `pattern_invalid`."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidArtifact(
            "pattern_invalid",
            f"{label}: {where} must be a regular expression of 1-{MAX_PATTERN_LENGTH} characters",
            file=label,
        )
    try:
        return _compile(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidArtifact(
            "pattern_invalid",
            f"{label}: {where} {pattern[:80]!r} is not a regular expression RE2 accepts ({reason}); "
            "backreferences and lookaround are not supported",
            file=label,
        ) from None


def full_match(pattern: str, name: str) -> bool:
    """peft's rule for a string `target_modules`: the whole module name matches."""
    return _compile(pattern).fullmatch(name) is not None


def suffix_pattern(key: str) -> str:
    """peft's rule for `rank_pattern`/`alpha_pattern` keys (peft.utils.other.get_pattern_key):
    `re.match(rf"(.*\\.)?({key})$", name)`, i.e. the key matches a dotted suffix of the name."""
    return rf"(.*\.)?({key})$"


def first_pattern_key(keys, name: str) -> str | None:
    """The first key (in the config's order) whose suffix pattern matches `name`, as peft picks it."""
    for key in keys:
        if _compile(suffix_pattern(key)).match(name) is not None:
            return key
    return None
