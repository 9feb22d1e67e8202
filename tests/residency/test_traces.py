"""Trace generators: deterministic for a seed, the CSV format, and the laws they claim to follow."""

import io

import numpy as np
import pytest

from registry.residency.traces import RANK_MIX, bytes_per_rank, generate, main, write_csv, zipf_probabilities


def csv_text(**options):
    out = io.StringIO()
    write_csv(generate(**options), out)
    return out.getvalue()


def test_same_seed_same_trace_other_seed_other_trace():
    options = dict(popularity="drift", n_adapters=50, n_requests=500, n_bases=3, cv=2.0, sizes="rank-mix")
    assert csv_text(seed=7, **options) == csv_text(seed=7, **options)
    assert csv_text(seed=7, **options) != csv_text(seed=8, **options)


def test_csv_columns_and_non_decreasing_ts(tmp_path):
    path = tmp_path / "trace.csv"
    assert main(["--adapters", "20", "--requests", "300", "--bases", "3", "--cv", "4", "--out", str(path)]) == 0
    lines = path.read_text().splitlines()
    assert lines[0] == "ts,adapter,base,bytes"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 300 and all(len(row) == 4 for row in rows)
    ts = [float(row[0]) for row in rows]
    assert ts == sorted(ts)
    assert all(int(row[2]) == int(row[1]) % 3 for row in rows)  # round-robin bases
    assert {int(row[3]) for row in rows} == {16 * bytes_per_rank()}  # equal sizes by default


def test_zipf_top_adapter_share_follows_the_law():
    trace = generate("zipf", n_adapters=1000, n_requests=100_000, s=1.2, seed=1)
    expected = zipf_probabilities(1000, 1.2)
    shares = np.bincount(trace.adapter, minlength=1000) / 100_000
    assert shares[0] == pytest.approx(expected[0], abs=0.01)  # about 0.18
    assert shares[1] == pytest.approx(expected[1], abs=0.01)
    assert shares[:10].sum() == pytest.approx(expected[:10].sum(), abs=0.015)


def test_slora_alpha_one_is_uniform_and_small_alpha_is_skewed():
    uniform = np.bincount(generate("slora", n_adapters=100, n_requests=100_000, alpha=1.0).adapter, minlength=100)
    assert uniform.min() > 850 and uniform.max() < 1150  # 1,000 each expected
    skewed = generate("slora", n_adapters=100, n_requests=100_000, alpha=0.1).adapter
    # P(adapter 0) = P(X < 1/N) = N^-α = 100^-0.1 ≈ 0.63
    assert np.mean(skewed == 0) == pytest.approx(100**-0.1, abs=0.01)


def test_drift_changes_the_hot_set_each_period():
    trace = generate("drift", n_adapters=1000, n_requests=40_000, s=1.2, drift_period=10_000, seed=2)
    hottest = [np.bincount(trace.adapter[start : start + 10_000]).argmax() for start in range(0, 40_000, 10_000)]
    assert len(set(hottest)) == 4
    top_share = np.bincount(trace.adapter[:10_000]).max() / 10_000
    assert top_share == pytest.approx(zipf_probabilities(1000, 1.2)[0], abs=0.02)


@pytest.mark.parametrize("cv", [1.0, 2.0, 4.0, 8.0])
def test_gamma_arrivals_have_the_rate_and_cv_asked_for(cv):
    ts = generate("zipf", n_adapters=10, n_requests=400_000, rate=50.0, cv=cv, seed=4).ts
    gaps = np.diff(ts)
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


def test_rank_mix_proportions_and_sizes():
    trace = generate("slora", n_adapters=20_000, n_requests=20_000, alpha=1.0, sizes="rank-mix", hidden=1024, seed=5)
    ranks_by_adapter = dict(zip(trace.adapter.tolist(), (trace.bytes // bytes_per_rank(1024)).tolist(), strict=True))
    ranks = np.array(list(ranks_by_adapter.values()))
    for rank, share in RANK_MIX:
        assert np.mean(ranks == rank) == pytest.approx(share, abs=0.02)
    assert bytes_per_rank(4096) * 8 == 16_777_216  # r8, hidden 4096, q/k/v/o, 32 layers, fp16
