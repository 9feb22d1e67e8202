"""Metric display: which way is better, 4 significant digits, deltas against base and reference."""

import pytest

from registry.metrics_display import delta, direction, metric_rows, run_facts, significant, summary_line


@pytest.mark.parametrize(
    "value,shown",
    [
        (0.5, "0.5000"),
        (2.34567, "2.346"),
        (12345.6, "12350"),
        (9.99996, "10.00"),
        (0.000123456, "0.0001235"),
        (-0.0123456, "-0.01235"),
        (1e-9, "1.000e-09"),
        (123456789012.0, "1.235e+11"),
        (0.0, "0"),
        (42, "42"),
        (None, "—"),
    ],
)
def test_it_shows_four_significant_digits(value, shown):
    assert significant(value) == shown


def test_losses_are_better_lower_and_scores_higher():
    assert direction("loss") == direction("perplexity") == "lower"
    assert direction("accuracy") == direction("f1_macro") == direction("exact_match") == "higher"
    assert direction("examples") is None and direction("examples_per_second") is None

    assert delta("loss", 2.0, 2.5).verdict == "better" and delta("loss", 2.5, 2.0).verdict == "worse"
    assert delta("accuracy", 0.9, 0.8).verdict == "better" and delta("exact_match", 0.1, 0.2).verdict == "worse"
    assert delta("f1_macro", 0.5, 0.5).verdict == "same"
    assert delta("examples_per_second", 10.0, 5.0).verdict is None


def test_deltas_are_absolute_and_relative_with_a_text_marker():
    change = delta("loss", 2.345, 2.567)
    assert change.text == "-0.2220 (-8.648%)" and change.marker == "▲ better"
    worse = delta("accuracy", 0.75, 0.8)
    assert worse.text == "-0.05000 (-6.250%)" and worse.marker == "▼ worse"
    assert delta("accuracy", 0.5, 0.0).text == "+0.5000"  # no relative change from zero
    assert delta("loss", 1.0, None) is None


def test_rows_compare_only_metrics_with_a_direction():
    metrics = {
        "adapter": {"loss": 2.0, "perplexity": 7.389, "examples": 3, "examples_per_second": 12.5},
        "base": {"loss": 2.5, "perplexity": 12.18, "examples": 3},
        "reference": None,
    }
    rows = metric_rows(metrics)
    assert [row["metric"] for row in rows] == ["loss", "perplexity"]
    assert rows[0]["adapter"] == "2.000" and rows[0]["base"] == "2.500" and rows[0]["reference"] == "—"
    assert rows[0]["delta_base"].verdict == "better" and rows[0]["delta_reference"] is None
    assert run_facts(metrics) == [("Examples", "3"), ("Examples per second", "12.50")]
    assert summary_line("loss", metrics) == "Loss (lower is better) 2.000 (base 2.500: -0.5000 (-20.00%) ▲ better)"
