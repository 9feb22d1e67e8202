"""What evaluation metrics mean to a reader: direction, 4 significant digits, deltas.

One place for the UI's version page and the CLI's `show`/`wait`, so both say "better" about
the same numbers. Django-free; tested directly.
"""

import math
from dataclasses import dataclass

# Lower is better for losses; higher for scores. Anything else (examples, throughput, token
# counts) describes the run and is never compared.
LOWER_IS_BETTER = {"loss", "perplexity"}
HIGHER_IS_BETTER = {"accuracy", "f1_macro", "exact_match"}
LABELS = {
    "loss": "Loss",
    "perplexity": "Perplexity",
    "accuracy": "Accuracy",
    "f1_macro": "Macro F1",
    "exact_match": "Exact match",
    "examples": "Examples",
    "examples_per_second": "Examples per second",
    "tokens": "Tokens",
}
MARKERS = {"better": "▲ better", "worse": "▼ worse", "same": "= same"}


def direction(metric: str) -> str | None:
    """ "lower" or "higher" (which way is better), or None for a metric that is not compared."""
    if metric in LOWER_IS_BETTER:
        return "lower"
    if metric in HIGHER_IS_BETTER:
        return "higher"
    return None


def significant(value, digits: int = 4) -> str:
    """A number with `digits` significant digits (integers as they are); "—" for none."""
    if value is None or isinstance(value, bool):
        return "—"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits - 1}e}")  # round first: 9.99996 becomes 10.00, not 10.000
    exponent = math.floor(math.log10(abs(rounded)))
    if not -5 <= exponent < 9:
        return f"{rounded:.{digits - 1}e}"
    # Fixed notation keeps trailing zeros ("0.5000"): the digits shown are the digits measured.
    return f"{rounded:.{max(digits - 1 - exponent, 0)}f}"


@dataclass(frozen=True)
class Delta:
    absolute: float
    relative: float | None  # a fraction of the other value; None when that value is 0
    verdict: str | None  # "better", "worse", "same", or None for a metric without a direction

    @property
    def text(self) -> str:
        """ "+0.01234 (+1.250%)": signed, 4 significant digits."""
        sign = "+" if self.absolute > 0 else ""
        shown = f"{sign}{significant(self.absolute)}"
        if self.relative is not None:
            shown += f" ({'+' if self.relative > 0 else ''}{significant(self.relative * 100)}%)"
        return shown

    @property
    def marker(self) -> str:
        return MARKERS.get(self.verdict, "")


def delta(metric: str, value, other) -> Delta | None:
    """How `value` (the adapter) differs from `other` (base or reference), and whether that is better."""
    if not _number(value) or not _number(other):
        return None
    absolute = value - other
    relative = absolute / abs(other) if other else None
    way = direction(metric)
    if way is None:
        verdict = None
    elif math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-12):
        verdict = "same"
    else:
        verdict = "better" if (absolute < 0) == (way == "lower") else "worse"
    return Delta(absolute, relative, verdict)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_rows(metrics: dict) -> list[dict]:
    """One row per compared metric of the adapter: values and deltas against base and reference."""
    adapter, base, reference = (metrics.get(k) or {} for k in ("adapter", "base", "reference"))
    rows = []
    for key, value in adapter.items():
        way = direction(key)
        if way is None:
            continue
        rows.append(
            {
                "metric": key,
                "label": LABELS.get(key, key),
                "direction": way,
                "adapter": significant(value),
                "base": significant(base.get(key)),
                "reference": significant(reference.get(key)),
                "delta_base": delta(key, value, base.get(key)),
                "delta_reference": delta(key, value, reference.get(key)),
            }
        )
    return rows


def run_facts(metrics: dict) -> list[tuple[str, str]]:
    """The adapter run's uncompared numbers (examples, throughput, tokens) as (label, value)."""
    adapter = metrics.get("adapter") or {}
    return [(LABELS.get(key, key), significant(value)) for key, value in adapter.items() if direction(key) is None]


def summary_line(metric: str, metrics: dict) -> str:
    """One line for a terminal: "loss 2.345 (base 2.567: -0.2220 (-8.650%) ▲ better; ...)"."""
    value = (metrics.get("adapter") or {}).get(metric)
    parts = []
    for subject in ("base", "reference"):
        other = (metrics.get(subject) or {}).get(metric)
        change = delta(metric, value, other)
        if change is not None:
            parts.append(f"{subject} {significant(other)}: {change.text} {change.marker}".rstrip())
    way = direction(metric)
    label = f"{LABELS.get(metric, metric)} ({way} is better)" if way else LABELS.get(metric, metric)
    return f"{label} {significant(value)}" + (f" ({'; '.join(parts)})" if parts else "")
