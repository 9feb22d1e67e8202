"""GET /metrics: Prometheus metrics for the web tier and the worker pool.

Workers report through their heartbeats (resident cache hits and misses, adapter
attach latency, memory) and jobs record their timings, so one scrape of the web
service shows the whole pool. Computed at scrape time from PostgreSQL.
"""

import hmac

from django.conf import settings
from django.db.models import Avg, Count, F
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from registry.api.authentication import ExpiringTokenAuthentication
from registry.models import AdapterVersion, Job, Worker


class RegistryCollector:
    def collect(self):
        yield from self._jobs()
        yield from self._workers()
        versions = GaugeMetricFamily("registry_adapter_versions", "Adapter versions by status", labels=["status"])
        for row in AdapterVersion.objects.values("status").annotate(n=Count("id")):
            versions.add_metric([row["status"]], row["n"])
        yield versions

    def _jobs(self):
        jobs = GaugeMetricFamily("registry_jobs", "Jobs by kind and state", labels=["kind", "state"])
        for row in Job.objects.values("kind", "state").annotate(n=Count("id")):
            jobs.add_metric([row["kind"], row["state"]], row["n"])
        yield jobs
        depth = GaugeMetricFamily("registry_queue_depth", "Jobs waiting, by queue", labels=["queue"])
        for row in Job.objects.filter(state=Job.State.QUEUED).values("queue").annotate(n=Count("id")):
            depth.add_metric([row["queue"] or "unrouted"], row["n"])
        yield depth
        duration = GaugeMetricFamily(
            "registry_job_duration_seconds_avg", "Mean duration of finished jobs", labels=["kind"]
        )
        finished = Job.objects.exclude(started_at=None).exclude(finished_at=None)
        averages = finished.values("kind").annotate(mean=Avg(F("finished_at") - F("started_at")))
        for row in averages:
            duration.add_metric([row["kind"]], row["mean"].total_seconds())
        yield duration

    def _workers(self):
        up = GaugeMetricFamily("registry_worker_up", "1 when the worker is online", labels=["worker", "device"])
        device_free = GaugeMetricFamily(
            "registry_worker_device_memory_free_bytes", "Free device memory", labels=["worker"]
        )
        host_free = GaugeMetricFamily(
            "registry_worker_host_memory_available_bytes", "Available host memory", labels=["worker"]
        )
        resident = GaugeMetricFamily(
            "registry_worker_resident_bytes", "Bytes of base models held resident", labels=["worker"]
        )
        hits = CounterMetricFamily(
            "registry_resident_cache_hits", "Jobs whose base was already resident", labels=["worker"]
        )
        misses = CounterMetricFamily(
            "registry_resident_cache_misses", "Jobs that had to load their base", labels=["worker"]
        )
        attach = CounterMetricFamily(
            "registry_adapter_attach_seconds", "Time spent attaching/switching adapters", labels=["worker"]
        )
        attaches = CounterMetricFamily("registry_adapter_attaches", "Adapter attaches and switches", labels=["worker"])
        paths = CounterMetricFamily(
            "registry_adapter_attach_paths",
            "Adapter attaches by path: switch (already attached), load (new LoRA layers), hotswap (weights in place)",
            labels=["worker", "path"],
        )
        fallbacks = CounterMetricFamily(
            "registry_adapter_hotswap_fallbacks", "Hot-swaps that raised, so the adapter was loaded", labels=["worker"]
        )
        for worker in Worker.objects.all():
            name = worker.hostname
            up.add_metric([name, worker.device_type], 1 if worker.state == Worker.State.ONLINE else 0)
            if worker.device_memory_free is not None:
                device_free.add_metric([name], worker.device_memory_free)
            if worker.host_memory_available is not None:
                host_free.add_metric([name], worker.host_memory_available)
            snapshot = worker.resident_snapshot  # a malformed heartbeat reads as what of it validates
            stats = snapshot.stats
            resident.add_metric([name], snapshot.resident_bytes)
            hits.add_metric([name], stats.hits)
            misses.add_metric([name], stats.misses)
            attach.add_metric([name], stats.attach_seconds_total)
            attaches.add_metric([name], stats.attach_count)
            for path, count in (("switch", stats.switches), ("load", stats.loads), ("hotswap", stats.hotswaps)):
                paths.add_metric([name, path], count)
            fallbacks.add_metric([name], stats.hotswap_fallbacks)
        yield from (up, device_free, host_free, resident, hits, misses, attach, attaches, paths, fallbacks)


def _allowed(request) -> bool:
    """A bearer METRICS_TOKEN when configured; otherwise a signed-in staff user (session or API token)."""
    header = request.headers.get("Authorization", "")
    if settings.METRICS_TOKEN:
        return hmac.compare_digest(header, f"Bearer {settings.METRICS_TOKEN}")
    user = request.user
    if not user.is_authenticated and header.startswith("Token "):
        try:
            result = ExpiringTokenAuthentication().authenticate(request)
        except Exception:  # an invalid token is simply not allowed
            return False
        user = result[0] if result else user
    return bool(user.is_authenticated and user.is_staff)


@require_GET
def metrics(request):
    if not _allowed(request):
        return HttpResponseForbidden("metrics need METRICS_TOKEN as a bearer token, or a staff login\n")
    registry = CollectorRegistry()
    registry.register(RegistryCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
