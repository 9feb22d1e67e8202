"""The two commands end to end in subprocesses, their bad-input exits, and the package staying Django-free."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACES = [sys.executable, "-m", "registry.residency.traces"]
SIMULATE = [sys.executable, "-m", "registry.residency.simulate"]


def run(command, **kwargs):
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, **kwargs)


def test_traces_piped_into_simulate_json():
    trace = run(
        [*TRACES, "--adapters", "200", "--requests", "5000", "--bases", "2", "--seed", "3", "--sizes", "rank-mix"]
    )
    assert trace.returncode == 0, trace.stderr
    result = run([*SIMULATE, "--trace", "-", "--policy", "lru", "--workers", "2", "--gpu-slots", "10",
                  "--host-slots", "20", "--json"], input=trace.stdout)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in ("policy", "requests", "gpu_hit_rate", "host_hit_rate", "miss_rate", "loads", "bytes_loaded",
                "plan_seconds", "max_worker_share"):  # fmt: skip
        assert key in summary
    assert summary["policy"] == "lru" and summary["requests"] == 5000 and summary["plan_seconds"] == 0
    assert summary["gpu_hit_rate"] + summary["host_hit_rate"] + summary["miss_rate"] == pytest.approx(1.0)


def test_planner_policy_from_the_command_line(tmp_path):
    path = tmp_path / "trace.csv"
    assert run([*TRACES, "--adapters", "300", "--requests", "8000", "--bases", "2", "--out", str(path)]).returncode == 0
    result = run([*SIMULATE, "--trace", str(path), "--policy", "planner", "--workers", "2", "--gpu-slots", "10",
                  "--host-slots", "20", "--plan-interval", "5", "--half-life", "5", "--json"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["policy"] == "planner" and summary["requests"] == 8000
    assert summary["plan_seconds"] > 0 and summary["plan_loads"] > 0
    assert summary["gpu_hit_rate"] + summary["host_hit_rate"] + summary["miss_rate"] == pytest.approx(1.0)


def test_readable_table_without_json(tmp_path):
    path = tmp_path / "trace.csv"
    assert run([*TRACES, "--requests", "1000", "--out", str(path)]).returncode == 0
    result = run([*SIMULATE, "--trace", str(path), "--policy", "belady", "--gpu-slots", "50"])
    assert result.returncode == 0, result.stderr
    assert "gpu hit rate" in result.stdout and "belady" in result.stdout


def write(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: ["--trace", str(tmp / "missing.csv"), "--policy", "lru", "--gpu-slots", "2"], "cannot read trace"),
        (lambda tmp: ["--trace", write(tmp, "time,adapter\n1,a\n"), "--policy", "lru", "--gpu-slots", "2"], "header"),
        (
            lambda tmp: [
                "--trace",
                write(tmp, "ts,adapter,base,bytes\n2,a,0,1\n1,b,0,1\n"),
                "--policy",
                "lru",
                "--gpu-slots",
                "2",
            ],
            "non-decreasing",
        ),  # fmt: skip
        (
            lambda tmp: [
                "--trace",
                write(tmp, "ts,adapter,base,bytes\nx,a,0,1\n"),
                "--policy",
                "lru",
                "--gpu-slots",
                "2",
            ],
            "must be a number",
        ),  # fmt: skip
        (lambda tmp: ["--trace", "t.csv", "--policy", "lru", "--gpu-slots", "2", "--gpu-bytes", "9"], "not allowed"),
        (lambda tmp: ["--trace", "t.csv", "--policy", "lru"], "required"),
    ],
)
def test_bad_input_answers_one_line_and_exit_2(tmp_path, make_args, message):
    result = run([*SIMULATE, *make_args(tmp_path)])
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_traces_bad_option_exits_2():
    result = run([*TRACES, "--adapters", "0"])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_package_imports_without_django():
    code = (
        "import registry.residency, registry.residency.simulate, registry.residency.traces, sys; "
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))"
    )
    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
