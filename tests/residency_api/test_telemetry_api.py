"""POST/GET /api/v1/telemetry: all-or-nothing batches, idempotent per window, scoped tokens.

carol is a global admin, alice an engineer (tests/conftest.py).
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import AuditEvent, ServingWorker, TelemetryWindow
from registry.services.telemetry import MAX_BATCH_ROWS, telemetry_demand_rows
from tests.residency_api.conftest import make_adapter_versions

TELEMETRY = "/api/v1/telemetry"


def _error(response) -> dict:
    return response.json()["error"]


@pytest.fixture
def worker(base) -> ServingWorker:
    worker = ServingWorker.objects.create(name="vllm-a", engine="vllm", endpoint="http://10.0.0.5:8000", gpu_slots=4)
    worker.base_versions.add(base)
    return worker


def _t(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _windows(versions, count: int = 1, requests: int = 10, start=None) -> list[dict]:
    """`count` consecutive 10-second windows per version, ending a minute ago."""
    start = start or timezone.now().replace(microsecond=0) - timedelta(minutes=1, seconds=10 * count)
    rows = []
    for version in versions:
        for n in range(count):
            begin = start + timedelta(seconds=10 * n)
            rows.append({"adapter": version.digest_ref, "start": _t(begin), "end": _t(begin + timedelta(seconds=10)),
                         "requests": requests, "cold_loads": 1, "ttft_p50_ms": 40.0, "ttft_p99_ms": 180.5})  # fmt: skip
    return rows


def _post(client, windows, worker="vllm-a"):
    return client.post(TELEMETRY, {"worker": worker, "windows": windows}, format="json")


def _totals():
    return TelemetryWindow.objects.aggregate(requests=Sum("requests"), cold_loads=Sum("cold_loads"))


@pytest.fixture
def fleet_token(carol_client) -> str:
    response = carol_client.post("/api/v1/auth/tokens", {"name": "fleet", "scopes": ["telemetry"]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["key"]


def _token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# --- Ingest ------------------------------------------------------------------------------------


def test_a_batch_is_stored_and_the_worker_is_seen(carol_client, worker, versions):
    response = _post(carol_client, _windows(versions, count=2))
    assert response.status_code == 200, response.content
    assert response.json() == {"worker": "vllm-a", "accepted": 6, "inserted": 6, "replaced": 0}
    assert _totals() == {"requests": 60, "cold_loads": 6}
    row = TelemetryWindow.objects.filter(adapter_version=versions[0]).first()
    assert (row.resolution, row.ttft_p50_ms, row.ttft_p99_ms) == ("raw", 40.0, 180.5)
    worker.refresh_from_db()
    assert worker.last_seen_at is not None and timezone.now() - worker.last_seen_at < timedelta(minutes=1)


def test_sending_the_same_batch_twice_counts_it_once(carol_client, worker, versions):
    windows = _windows(versions, count=5)
    assert _post(carol_client, windows).json()["inserted"] == 15
    again = _post(carol_client, windows)
    assert again.json() == {"worker": "vllm-a", "accepted": 15, "inserted": 0, "replaced": 15}
    assert _totals() == {"requests": 150, "cold_loads": 15}
    assert TelemetryWindow.objects.count() == 15


def test_a_resent_window_replaces_its_values(carol_client, worker, versions):
    windows = _windows(versions[:1])
    _post(carol_client, windows)
    windows[0].update(requests=7, ttft_p50_ms=None, ttft_p99_ms=None)
    _post(carol_client, windows)
    row = TelemetryWindow.objects.get()
    assert (row.requests, row.ttft_p50_ms, row.ttft_p99_ms) == (7, None, None)


def test_telemetry_is_no_audit_event(carol_client, worker, versions):
    before = AuditEvent.objects.count()
    _post(carol_client, _windows(versions))
    assert AuditEvent.objects.count() == before


def test_a_version_may_be_named_by_its_uuid(carol_client, worker, versions):
    window = _windows(versions[:1])[0] | {"adapter": str(versions[0].id)}
    assert _post(carol_client, [window]).status_code == 200
    assert TelemetryWindow.objects.get().adapter_version == versions[0]


# --- All or nothing ------------------------------------------------------------------------------


def test_one_bad_row_refuses_the_whole_batch_naming_each_bad_row(carol_client, worker, versions):
    windows = _windows(versions, count=2)
    now = timezone.now()
    windows[1]["end"] = windows[1]["start"]
    windows[2]["requests"] = -1
    windows[3]["adapter"] = "acme/bot:production"
    windows[4]["adapter"] = f"acme/bot@sha256:{'0' * 64}"
    windows.append(
        {**windows[0], "start": _t(now - timedelta(hours=49)), "end": _t(now - timedelta(hours=48, minutes=59))}
    )
    windows.append({**windows[0], "start": _t(now), "end": _t(now + timedelta(hours=1))})
    windows.append({**windows[0], "start": _t(now - timedelta(hours=2)), "end": _t(now)})
    windows.append(dict(windows[0]))
    response = _post(carol_client, windows)
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "telemetry_rows_invalid" and error["detail"]["error_count"] == 8
    assert "nothing was stored" in error["message"]
    assert [(e["index"], e["code"]) for e in error["detail"]["errors"]] == [
        (1, "window_order"),
        (2, "requests_invalid"),
        (3, "adapter_ref_mutable"),
        (4, "adapter_not_found"),
        (6, "window_too_old"),
        (7, "window_in_future"),
        (8, "window_too_long"),
        (9, "window_duplicate"),
    ]
    assert not TelemetryWindow.objects.exists()
    worker.refresh_from_db()
    assert worker.last_seen_at is None


@pytest.mark.parametrize(
    "change, code",
    [
        ({"start": "yesterday"}, "start_invalid"),
        ({"end": "2026-11-26T14:00:00"}, "end_invalid"),
        ({"requests": 1.5}, "requests_invalid"),
        ({"requests": True}, "requests_invalid"),
        ({"cold_loads": "3"}, "cold_loads_invalid"),
        ({"ttft_p50_ms": -1}, "ttft_p50_ms_invalid"),
        ({"ttft_p99_ms": "fast"}, "ttft_p99_ms_invalid"),
        ({"ttft_p50_ms": 200.0, "ttft_p99_ms": 100.0}, "ttft_order"),
        ({"adapter": 5}, "adapter_ref_invalid"),
        ({"adapter": "acme/bot:v1"}, "adapter_ref_mutable"),
        ({"colour": "blue"}, "row_invalid"),
    ],
)
def test_each_bad_value_has_its_code(carol_client, worker, versions, change, code):
    response = _post(carol_client, [_windows(versions[:1])[0] | change])
    assert response.status_code == 400
    assert [(e["index"], e["code"]) for e in _error(response)["detail"]["errors"]] == [(0, code)]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"worker": "nobody", "windows": [{}]}, 404, "serving_worker_not_found"),
        ({"windows": [{}]}, 400, "telemetry_worker_required"),
        ({"worker": "vllm-a", "windows": []}, 400, "telemetry_empty"),
        ({"worker": "vllm-a", "windows": {"a": 1}}, 400, "telemetry_empty"),
        ({"worker": "vllm-a", "windows": [{}] * (MAX_BATCH_ROWS + 1)}, 400, "telemetry_batch_too_large"),
    ],
)
def test_a_malformed_batch_is_refused(carol_client, worker, body, status, code):
    response = carol_client.post(TELEMETRY, body, format="json")
    assert (response.status_code, _error(response)["code"]) == (status, code)


# --- Who may post --------------------------------------------------------------------------------


def test_a_token_with_the_telemetry_scope_posts(fleet_token, worker, versions):
    response = _post(_token_client(fleet_token), _windows(versions))
    assert response.status_code == 200, response.content
    assert _totals()["requests"] == 30


def test_a_token_without_the_telemetry_scope_is_refused(carol_client, worker, versions):
    key = carol_client.post("/api/v1/auth/tokens", {"name": "ci", "scopes": ["push"]}, format="json").json()["key"]
    response = _post(_token_client(key), _windows(versions))
    assert (response.status_code, _error(response)["code"]) == (403, "token_scope")
    assert "telemetry" in _error(response)["message"]
    assert not TelemetryWindow.objects.exists()
    assert AuditEvent.objects.filter(type="access.denied").count() == 1


def test_a_non_admin_may_not_post_nor_make_a_telemetry_token(alice_client, worker, versions):
    response = _post(alice_client, _windows(versions))
    assert (response.status_code, _error(response)["code"]) == (403, "permission_denied")
    token = alice_client.post("/api/v1/auth/tokens", {"name": "fleet", "scopes": ["telemetry"]}, format="json")
    assert (token.status_code, _error(token)["code"]) == (403, "permission_denied")
    assert AuditEvent.objects.filter(type="access.denied", actor_name="alice").count() == 2


def test_a_telemetry_token_stops_working_when_its_admin_is_no_longer_one(carol, fleet_token, worker, versions):
    carol.groups.clear()
    response = _post(_token_client(fleet_token), _windows(versions))
    assert (response.status_code, _error(response)["code"]) == (403, "permission_denied")


def test_a_telemetry_token_may_not_write_anything_else(fleet_token, worker, versions):
    client = _token_client(fleet_token)
    response = client.post("/api/v1/residency/pins", {"target": versions[0].digest_ref}, format="json")
    assert (response.status_code, _error(response)["code"]) == (403, "token_scope")


# --- Cost ----------------------------------------------------------------------------------------


def _queries(client, windows) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert _post(client, windows).status_code == 200
    return len(captured.captured_queries)


def test_the_queries_do_not_grow_with_the_batch(fleet_token, base, worker):
    client = _token_client(fleet_token)
    _post(client, _windows(make_adapter_versions(base, 1, name="acme/warm")))  # the token's first use is recorded
    small = _queries(client, _windows(make_adapter_versions(base, 2, name="acme/small")))
    large = _queries(client, _windows(make_adapter_versions(base, 500, name="acme/large"), count=4))
    assert small == large, (small, large)
    assert TelemetryWindow.objects.count() == 1 + 2 + 2000


# --- Reading -------------------------------------------------------------------------------------


def test_anyone_signed_in_reads_windows_in_pages_by_filter(carol_client, alice_client, worker, versions):
    _post(carol_client, _windows(versions, count=3))
    page = alice_client.get(TELEMETRY, {"adapter": versions[0].digest_ref, "page_size": 2}).json()
    assert [row["adapter"] for row in page["results"]] == [versions[0].digest_ref] * 2
    assert page["results"][0]["worker"] == "vllm-a" and page["results"][0]["requests"] == 10
    rest = alice_client.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    ends = [row["end"] for row in page["results"] + rest["results"]]
    assert ends == sorted(ends)
    since = page["results"][1]["end"]
    assert len(alice_client.get(TELEMETRY, {"worker": "vllm-a", "since": since}).json()["results"]) == 3


@pytest.mark.parametrize(
    "query, status, code",
    [
        ({"worker": "nobody"}, 404, "serving_worker_not_found"),
        ({"adapter": "acme/nothing:v1"}, 404, "adapter_not_found"),
        ({"since": "soon"}, 400, "validation_error"),
        ({"colour": "blue"}, 400, "unknown_filter"),
        ({"worker": ""}, 400, "validation_error"),
        ({"adapter": ""}, 400, "validation_error"),
        ({"resolution": ""}, 400, "validation_error"),
        ({"resolution": "minute"}, 400, "validation_error"),
    ],
)
def test_bad_filters_are_refused(alice_client, worker, query, status, code):
    response = alice_client.get(TELEMETRY, query)
    assert (response.status_code, _error(response)["code"]) == (status, code)


def test_demand_rows_are_arrays_summed_over_workers(carol_client, worker, base, versions):
    other = ServingWorker.objects.create(name="vllm-b", engine="vllm", endpoint="http://10.0.0.6:8000", gpu_slots=4)
    windows = _windows(versions[:2], count=2)
    _post(carol_client, windows)
    _post(carol_client, windows, worker=other.name)
    demand = telemetry_demand_rows(timezone.now() - timedelta(hours=1))
    assert sorted(demand.versions) == sorted(str(v.id) for v in versions[:2])
    assert demand.codes.tolist() == [0, 0, 1, 1] and demand.requests.tolist() == [20] * 4
    assert list(demand.adapter_version_ids) == [demand.versions[c] for c in demand.codes]
    expected_end = datetime.fromisoformat(windows[0]["end"]).timestamp()
    assert expected_end in demand.window_end.tolist()
    assert telemetry_demand_rows(timezone.now()).codes.size == 0


@pytest.mark.parametrize("name", ["bad\x00name", "x" * 5000, "UPPER"])
def test_a_name_that_cannot_exist_is_not_found(carol_client, worker, name):
    posted = carol_client.post(TELEMETRY, {"worker": name, "windows": [{}]}, format="json")
    read = carol_client.get("/api/v1/residency/workers/" + name.replace("\x00", "%00"))
    assert (posted.status_code, _error(posted)["code"]) == (404, "serving_worker_not_found")
    assert read.status_code == 404
