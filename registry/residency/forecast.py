"""Demand forecasts for the planner: exponentially decayed request counts.

A count seen `age` seconds ago weighs 2^(-age / half_life). Multiplied by ln 2 / half_life the sum
is an unbiased estimate of a constant request rate (requests per second), so forecasts from
telemetry windows of any length and from a simulator's raw requests are on the same scale.

A short half-life follows popularity that moves (a new hot adapter is picked up within a few
half-lives); a long one averages out noise on stationary traffic. `blended_rates` takes, per
adapter, the larger of a short and a long estimate: a newly hot adapter rises with the short one,
a steadily warm one keeps the long one's stable value, and an adapter that went cold sinks only at
the long half-life's pace (which hysteresis in the planner would mostly give anyway).
"""

import math

import numpy as np


def decay_weights(ages_seconds: np.ndarray, half_life_seconds: float) -> np.ndarray:
    """2^(-age / half_life) for each age (ages below zero, i.e. clock skew, count as now)."""
    if not half_life_seconds > 0:
        raise ValueError(f"half_life_seconds must be positive, got {half_life_seconds!r}")
    ages = np.maximum(np.asarray(ages_seconds, dtype=np.float64), 0.0)
    return np.exp2(-ages / half_life_seconds)


def decayed_rates(
    codes: np.ndarray, ages_seconds: np.ndarray, requests: np.ndarray, n: int, half_life_seconds: float
) -> np.ndarray:
    """Requests per second per adapter code in [0, n) from rows (code, age of the window end, requests).

    One vectorised pass (np.bincount); rows may repeat a code (several windows, several workers).
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= n):
        raise ValueError(f"codes must lie in [0, {n})")
    weighted = np.asarray(requests, dtype=np.float64) * decay_weights(ages_seconds, half_life_seconds)
    return np.bincount(codes, weights=weighted, minlength=n) * (math.log(2) / half_life_seconds)


def canary_split(alias_rate: float, canary_weight: float) -> tuple[float, float]:
    """(primary, canary) shares of an alias's demand; the weight is a fraction in [0, 1].

    A brand-new canary has no telemetry of its own: its forecast is its weight times the alias's
    demand, so it is warm on the fleet before the router starts sending it traffic.
    """
    if not 0.0 <= canary_weight <= 1.0:
        raise ValueError(f"canary_weight must be in [0, 1], got {canary_weight!r}")
    return alias_rate * (1.0 - canary_weight), alias_rate * canary_weight


class DecayedCounter:
    """Running decayed counts over integer codes, advanced in batches (the simulator's forecast).

    `add(codes, now)` decays what it holds to `now` and adds one request per code; `rates()` gives
    requests per second, the same scale as `decayed_rates`. Batches are timed at their end, which
    a plan interval short against the half-life makes a small error.
    """

    def __init__(self, n: int, half_life_seconds: float):
        self.half_life = half_life_seconds
        self.counts = np.zeros(n, dtype=np.float64)
        self.at = None

    def add(self, codes: np.ndarray, now: float) -> None:
        if self.at is not None and now > self.at:
            self.counts *= math.exp2(-(now - self.at) / self.half_life)
        self.at = now if self.at is None else max(self.at, now)
        if len(codes):
            self.counts += np.bincount(codes, minlength=self.counts.size)

    def rates(self) -> np.ndarray:
        return self.counts * (math.log(2) / self.half_life)

    def reset_to(self, other: "DecayedCounter") -> None:
        """Forget the history and keep only the requests `other` (a short half-life) still weighs.

        Its decayed counts are taken as they are, not rescaled to this half-life's rate: a few
        seconds of requests must weigh as a few seconds, or they would drown what comes next."""
        self.counts = other.counts.copy()
        self.at = other.at


def blended_rates(short: np.ndarray, long: np.ndarray) -> np.ndarray:
    """Per adapter the larger of a short-half-life and a long-half-life estimate (see the module note)."""
    return np.maximum(short, long)


def planned_share(planned: np.ndarray, recent: np.ndarray) -> float | None:
    """The share of the requests since a plan that went to the adapters it put in GPU (None: no requests).

    Measured after the plan was made, so it is an out-of-sample score of the forecast the plan was
    built on (the plan's own expected share is not: adapters are chosen because their estimates
    are high, so on flat popularity that figure is inflated by the noise it selected for)."""
    total = float(recent.sum())
    return float(recent[planned].sum()) / total if total > 0 else None


def drift_detected(
    observed: float | None, baseline: float | None, requests: int, threshold: float = 0.7, min_hits: float = 20.0
) -> bool:
    """Has popularity moved away from what the plans were built on?

    `observed` is the latest plan's out-of-sample share (`planned_share`), `baseline` the one
    before it. On stationary traffic consecutive shares are close (each is a sum over many
    adapters); when the hot set changes the latest collapses. Below `threshold` × baseline the
    caller forgets the long history (DecayedCounter.reset_to) and plans on the short half-life.
    With fewer than `min_hits` requests expected on the planned set, the test has no power and
    says no.
    """
    if observed is None or baseline is None or baseline <= 0 or baseline * requests < min_hits:
        return False
    return observed < threshold * baseline
