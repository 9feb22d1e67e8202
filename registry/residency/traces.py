"""Synthetic request traces for the residency simulator.

Every generator is deterministic for a seed (one numpy Generator drives all draws) and returns a
`Trace` of parallel numpy arrays; `write_csv` writes the simulator's format `ts,adapter,base,bytes`.

Popularity (which adapter each request asks for):
- zipf: P(rank k) ∝ 1 / k^s over N adapters (adapter id = rank - 1, so adapter 0 is the hottest).
- slora: S-LoRA's benchmark law, adapter = ⌊N·X⌋ with X ~ power(α) (numpy's power distribution,
  density α·x^(α-1) on [0, 1]); small α piles requests onto low ids, and α = 1 is uniform.
- drift: Zipf whose rank → adapter mapping is re-permuted (seeded) every `drift_period` requests,
  so the hot set changes completely at each period boundary.

Arrivals: inter-arrival gaps ~ Gamma(shape k = 1/cv², scale = mean/k) with mean = 1/rate, so the
mean rate is `rate` and the coefficient of variation is `cv` (cv = 1 is Poisson; larger is burstier).

Sizes: `equal` gives every adapter rank 16; `rank-mix` draws each adapter's rank once (r8 40%,
r16 30%, r32 20%, r64 10%). An adapter's size is its LoRA A and B matrices in fp16:
    bytes = rank × 2 (A and B) × hidden × 2 (bytes per fp16) × modules × layers
with defaults hidden 4096, 4 target modules (q, k, v, o) and 32 layers: r8 ≈ 16.8 MB.
Adapters are assigned to bases round-robin (adapter i serves base i mod B).
"""

import argparse
import sys
from dataclasses import dataclass

import numpy as np

POPULARITIES = ("zipf", "slora", "drift")
RANK_MIX = ((8, 0.4), (16, 0.3), (32, 0.2), (64, 0.1))
EQUAL_RANK = 16


@dataclass
class Trace:
    ts: np.ndarray  # float seconds, non-decreasing
    adapter: np.ndarray  # int adapter id in [0, N)
    base: np.ndarray  # int base id in [0, B)
    bytes: np.ndarray  # int adapter size in bytes


def bytes_per_rank(hidden: int = 4096, modules: int = 4, layers: int = 32) -> int:
    """Bytes one unit of LoRA rank costs: A (r × h) and B (h × r) in fp16, per module and layer."""
    return 2 * hidden * 2 * modules * layers


def zipf_probabilities(n_adapters: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n_adapters + 1, dtype=np.float64) ** s
    return weights / weights.sum()


def zipf_ids(rng, n_adapters: int, n_requests: int, s: float) -> np.ndarray:
    return rng.choice(n_adapters, size=n_requests, p=zipf_probabilities(n_adapters, s))


def slora_ids(rng, n_adapters: int, n_requests: int, alpha: float) -> np.ndarray:
    """S-LoRA's popularity: ⌊N·X⌋, X ~ power(α); α = 1 makes X uniform, so every adapter is equally likely."""
    ids = np.floor(n_adapters * rng.power(alpha, size=n_requests)).astype(np.int64)
    return np.minimum(ids, n_adapters - 1)  # X = 1.0 exactly would give N


def drift_ids(rng, n_adapters: int, n_requests: int, s: float, period: int) -> np.ndarray:
    """Zipf ranks mapped to adapters through a fresh permutation every `period` requests."""
    ranks = zipf_ids(rng, n_adapters, n_requests, s)
    ids = np.empty(n_requests, dtype=np.int64)
    for start in range(0, n_requests, period):
        stop = min(start + period, n_requests)
        ids[start:stop] = rng.permutation(n_adapters)[ranks[start:stop]]
    return ids


def gamma_timestamps(rng, n_requests: int, rate: float, cv: float) -> np.ndarray:
    """Arrival times with mean rate `rate` and gaps of coefficient of variation `cv` (shape 1/cv²)."""
    shape = 1.0 / cv**2
    gaps = rng.gamma(shape, scale=(1.0 / rate) / shape, size=n_requests)
    return np.cumsum(gaps)


def adapter_sizes(rng, n_adapters: int, sizes: str, hidden: int) -> np.ndarray:
    """One size per adapter (drawn once, so every request for an adapter carries the same size)."""
    if sizes == "equal":
        ranks = np.full(n_adapters, EQUAL_RANK, dtype=np.int64)
    else:
        choices = np.array([rank for rank, _ in RANK_MIX])
        ranks = rng.choice(choices, size=n_adapters, p=[share for _, share in RANK_MIX])
    return ranks * bytes_per_rank(hidden)


def generate(
    popularity: str = "zipf",
    n_adapters: int = 1000,
    n_requests: int = 10000,
    n_bases: int = 1,
    seed: int = 0,
    rate: float = 100.0,
    cv: float = 1.0,
    s: float = 1.0,
    alpha: float = 1.0,
    drift_period: int = 10000,
    sizes: str = "equal",
    hidden: int = 4096,
) -> Trace:
    rng = np.random.default_rng(seed)
    size_of = adapter_sizes(rng, n_adapters, sizes, hidden)
    if popularity == "zipf":
        ids = zipf_ids(rng, n_adapters, n_requests, s)
    elif popularity == "slora":
        ids = slora_ids(rng, n_adapters, n_requests, alpha)
    elif popularity == "drift":
        ids = drift_ids(rng, n_adapters, n_requests, s, drift_period)
    else:
        raise ValueError(f"unknown popularity {popularity!r}; choose one of {', '.join(POPULARITIES)}")
    ts = gamma_timestamps(rng, n_requests, rate, cv)
    return Trace(ts=ts, adapter=ids, base=ids % n_bases, bytes=size_of[ids])


def write_csv(trace: Trace, out) -> None:
    out.write("ts,adapter,base,bytes\n")
    for ts, adapter, base, size in zip(
        trace.ts.tolist(), trace.adapter.tolist(), trace.base.tolist(), trace.bytes.tolist(), strict=True
    ):
        out.write(f"{ts:.6f},{adapter},{base},{size}\n")


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments answer one line on stderr and exit 2 (argparse's default prints the usage too)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m registry.residency.traces", description=__doc__.split("\n")[0])
    parser.add_argument("--popularity", choices=POPULARITIES, default="zipf")
    parser.add_argument("--adapters", type=positive(int), default=1000, help="N adapters")
    parser.add_argument("--requests", type=positive(int), default=10000, help="M requests")
    parser.add_argument("--bases", type=positive(int), default=1, help="B bases (adapter i -> base i mod B)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=positive(float), default=100.0, help="mean requests per second")
    parser.add_argument(
        "--cv", type=positive(float), default=1.0, help="inter-arrival coefficient of variation (1 = Poisson)"
    )
    parser.add_argument("--s", type=positive(float), default=1.0, help="Zipf exponent (zipf, drift)")
    parser.add_argument("--alpha", type=positive(float), default=1.0, help="S-LoRA power α (slora; 1 = uniform)")
    parser.add_argument(
        "--drift-period", type=positive(int), default=10000, help="requests between hot-set changes (drift)"
    )
    parser.add_argument("--sizes", choices=("equal", "rank-mix"), default="equal")
    parser.add_argument("--hidden", type=positive(int), default=4096, help="hidden size for adapter bytes")
    parser.add_argument("--out", help="CSV path (default: stdout)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    trace = generate(
        popularity=args.popularity,
        n_adapters=args.adapters,
        n_requests=args.requests,
        n_bases=args.bases,
        seed=args.seed,
        rate=args.rate,
        cv=args.cv,
        s=args.s,
        alpha=args.alpha,
        drift_period=args.drift_period,
        sizes=args.sizes,
        hidden=args.hidden,
    )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            write_csv(trace, out)
    else:
        write_csv(trace, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
