"""The telemetry roll-up: raw -> hourly -> daily -> deleted by age, on hand-computed windows.

Defaults: raw windows kept 48 h, hourly rows 30 days, daily rows 400 days. `now` is fixed, so the
cut-offs are exact: raw rows starting before 2026-11-24T12:00Z roll up, hourly rows before
2026-10-27T00:00Z, daily rows ending before 2025-10-22T12:30Z go.
"""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection

from registry.models import ServingWorker, TelemetryWindow
from registry.services.telemetry import ROLLUP_LOCK_KEY, telemetry_rollup
from registry.telemetry_tasks import rollup_telemetry

NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def worker(base) -> ServingWorker:
    return ServingWorker.objects.create(name="vllm-a", engine="vllm", endpoint="http://10.0.0.5:8000", gpu_slots=4)


def window(worker, version, start, end, requests, cold=0, p50=None, p99=None, resolution="raw"):
    return TelemetryWindow.objects.create(
        worker=worker, adapter_version=version, window_start=at(start), window_end=at(end), requests=requests,
        cold_loads=cold, ttft_p50_ms=p50, ttft_p99_ms=p99, resolution=resolution,
    )  # fmt: skip


def rows() -> list[tuple]:
    return list(
        TelemetryWindow.objects.order_by("adapter_version__number", "window_start").values_list(
            "adapter_version__number", "resolution", "window_start", "window_end", "requests", "cold_loads",
            "ttft_p50_ms", "ttft_p99_ms",
        )
    )  # fmt: skip


@pytest.fixture
def raw(worker, versions):
    v1, v2 = versions[0], versions[1]
    window(worker, v1, "2026-11-24T10:00:00", "2026-11-24T10:00:10", 10, cold=1, p50=40, p99=100)
    window(worker, v1, "2026-11-24T10:30:00", "2026-11-24T10:30:10", 30, cold=0, p50=80, p99=200)
    window(worker, v1, "2026-11-24T10:59:55", "2026-11-24T11:00:05", 0)  # no requests, no latency: adds nothing
    window(worker, v1, "2026-11-24T11:00:00", "2026-11-24T12:00:00", 5, cold=2, p50=50, p99=90)  # a whole hour
    window(worker, v1, "2026-11-24T12:00:00", "2026-11-24T12:00:10", 7, p50=1, p99=2)  # within the retention
    window(worker, v2, "2026-11-24T10:15:00", "2026-11-24T10:15:10", 4, p50=None, p99=None)


EXPECTED_AFTER_RAW = [
    (1, "hour", at("2026-11-24T10:00"), at("2026-11-24T11:00"), 40, 1, 70.0, 175.0),  # (40*10+80*30)/40
    (1, "hour", at("2026-11-24T11:00"), at("2026-11-24T12:00"), 5, 2, 50.0, 90.0),
    (1, "raw", at("2026-11-24T12:00"), at("2026-11-24T12:00:10"), 7, 0, 1.0, 2.0),
    (2, "hour", at("2026-11-24T10:00"), at("2026-11-24T11:00"), 4, 0, None, None),
]


def test_raw_windows_past_the_retention_become_hourly_rows(raw):
    result = telemetry_rollup(NOW)
    assert rows() == EXPECTED_AFTER_RAW
    assert (result["raw_rolled"], result["hourly_written"]) == (5, 3)


def test_running_it_twice_changes_nothing_more(raw):
    telemetry_rollup(NOW)
    second = telemetry_rollup(NOW)
    assert rows() == EXPECTED_AFTER_RAW
    assert second == {"raw_rolled": 0, "hourly_written": 0, "hourly_rolled": 0, "daily_written": 0,
                      "daily_deleted": 0}  # fmt: skip


def test_hourly_rows_become_daily_rows_merged_with_one_already_there(worker, versions):
    v1 = versions[0]
    window(worker, v1, "2026-10-20T03:00", "2026-10-20T04:00", 100, cold=3, p50=10, p99=50, resolution="hour")
    window(worker, v1, "2026-10-20T17:00", "2026-10-20T18:00", 300, cold=1, p50=30, p99=90, resolution="hour")
    window(worker, v1, "2026-10-20T00:00", "2026-10-21T00:00", 600, cold=0, p50=20, p99=None, resolution="day")
    window(worker, v1, "2026-10-27T00:00", "2026-10-27T01:00", 9, resolution="hour")  # within 30 days: kept
    result = telemetry_rollup(NOW)
    assert rows() == [
        # day: 100 + 300 -> 400 at p50 (10*100+30*300)/400 = 25, p99 (50*100+90*300)/400 = 80; then merged
        # with the day row: p50 (20*600+25*400)/1000 = 22, p99 only the rolled hours' 80.
        (1, "day", at("2026-10-20T00:00"), at("2026-10-21T00:00"), 1000, 4, 22.0, 80.0),
        (1, "hour", at("2026-10-27T00:00"), at("2026-10-27T01:00"), 9, 0, None, None),
    ]
    assert (result["hourly_rolled"], result["daily_written"]) == (2, 1)


def test_daily_rows_past_their_retention_are_deleted(worker, versions):
    window(worker, versions[0], "2025-10-21T00:00", "2025-10-22T00:00", 5, resolution="day")
    window(worker, versions[0], "2025-10-22T00:00", "2025-10-23T00:00", 6, resolution="day")
    assert telemetry_rollup(NOW)["daily_deleted"] == 1
    assert [row[4] for row in rows()] == [6]


def test_a_run_while_another_holds_the_lock_skips(raw):
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [ROLLUP_LOCK_KEY])
        assert telemetry_rollup(NOW) == {"skipped": "another roll-up is running"}
        assert TelemetryWindow.objects.filter(resolution="raw").count() == 6
    finally:
        other.execute("SELECT pg_advisory_unlock(%s)", [ROLLUP_LOCK_KEY])  # now, not when the backend exits
        other.close()
    assert telemetry_rollup(NOW)["raw_rolled"] == 5


def test_the_beat_task_rolls_up_by_the_clock(worker, versions):
    start = datetime.now(UTC) - timedelta(hours=50)
    TelemetryWindow.objects.create(
        worker=worker, adapter_version=versions[0], window_start=start, window_end=start + timedelta(seconds=10),
        requests=3,
    )  # fmt: skip
    result = rollup_telemetry.apply().get()
    assert (result["raw_rolled"], result["hourly_written"]) == (1, 1)
    assert TelemetryWindow.objects.get().resolution == "hour"
