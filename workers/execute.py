"""Run one job's work on this worker's resident cache; return what the services record."""

import time

from django.conf import settings

from registry.models import AdapterVersion, Job, Status
from registry.residency.snapshot import ResidentSnapshot
from registry.selectors import adapter_alias_target
from registry.storage import get_blob_store
from workers.runtime import runners
from workers.runtime.cache import ResidentCache, head_for
from workers.runtime.device import memory_budget, probe, torch_device

_cache: ResidentCache | None = None


def get_cache() -> ResidentCache:
    global _cache
    if _cache is None:
        device = torch_device()
        budget = memory_budget(
            device, settings.WORKER_GPU_MEMORY_BUDGET_BYTES, settings.WORKER_HOST_MEMORY_BUDGET_BYTES
        )
        _cache = ResidentCache(device, budget, settings.WORKER_MAX_ADAPTERS_PER_BASE, settings.WORKER_CACHE_DIR)
    return _cache


def cache_snapshot() -> ResidentSnapshot:
    """What this process holds resident, for heartbeats; never loads anything itself."""
    return _cache.snapshot() if _cache is not None else ResidentSnapshot()


def _resident_for(adapter: AdapterVersion):
    head, labels = head_for(adapter)
    cache = get_cache()
    resident, was_resident = cache.acquire(adapter.base_version, head, labels)
    try:
        attach_seconds = cache.activate(resident, adapter)
    except Exception:
        cache.discard(resident)  # a half-attached adapter must not poison the resident base
        raise
    return resident, was_resident, attach_seconds


def compatibility(job: Job) -> dict:
    resident, was_resident, attach_seconds = _resident_for(job.adapter_version)
    verdict, reasons, details = runners.dynamic_check(resident)
    details.update(attach_seconds=round(attach_seconds, 4), device=get_cache().device)
    return {"verdict": verdict, "reasons": reasons, "details": details, "base_was_resident": was_resident}


def reference_for(version: AdapterVersion) -> tuple[AdapterVersion | None, str]:
    """The version to compare with, and why it was chosen.

    `production` when set; else the newest earlier ready version; else the version this one was
    trained from (its parent), so a first version of a fine-tuned name is still compared.
    """
    production = adapter_alias_target(version.adapter_id, "production")
    if production is not None and production.id != version.id:
        return production, "production alias"
    earlier = (
        AdapterVersion.objects.filter(adapter=version.adapter, number__lt=version.number, status=Status.READY)
        .order_by("-number")
        .first()
    )
    if earlier is not None:
        return earlier, "newest earlier ready version"
    if version.parent_id is not None:
        return version.parent, "parent version"
    return None, "none: no production alias, no earlier ready version and no parent"


def _suite_rows(job: Job) -> list[dict]:
    with get_blob_store().open(job.suite.blob_id) as handle:
        return runners.read_rows(handle)


def evaluation(job: Job) -> dict:
    started = time.perf_counter()
    version = job.adapter_version
    rows = _suite_rows(job)
    task_type = job.suite.task_type
    reference, reason = reference_for(version)
    metrics, notes = {}, []
    if reference is not None and reference.base_version_id == version.base_version_id:
        resident, _, _ = _resident_for(reference)
        metrics["reference"] = runners.measure(resident, task_type, rows)
    elif reference is not None:
        notes.append(f"reference {reference.ref} is on another base; not compared")
    resident, was_resident, attach_seconds = _resident_for(version)
    metrics["adapter"] = runners.measure(resident, task_type, rows)
    metrics["base"] = runners.measure(resident, task_type, rows, bare=True)
    result = {
        "suite": job.suite.ref,
        "task_type": task_type,
        "examples": len(rows),
        "seed": settings.EVALUATION_SEED,
        "metrics": metrics,
        # Which version was compared and why, even when none was: the page and the API show it.
        "reference": {
            "ref": reference.ref if reference is not None else None,
            "reason": reason,
            "compared": "reference" in metrics,
        },
        "notes": notes,
        "device": get_cache().device,
        "library_versions": probe()["library_versions"],
        "attach_seconds": round(attach_seconds, 4),
        "duration_seconds": round(time.perf_counter() - started, 3),
    }
    result["mlflow_run_id"] = log_to_mlflow(version, result)
    return {"result": result, "base_was_resident": was_resident}


def log_to_mlflow(version: AdapterVersion, result: dict) -> str | None:
    """Each evaluation is also an MLflow run (experiment per adapter name) when tracking is configured."""
    if not settings.MLFLOW_TRACKING_URI:
        return None
    import mlflow

    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    mlflow.set_experiment(version.adapter.full_name)
    with mlflow.start_run(run_name=f"{version.ref} on {result['suite']}") as run:
        mlflow.log_params(
            {
                "adapter": version.ref,
                "digest": version.digest,
                "suite": result["suite"],
                "seed": result["seed"],
                "device": result["device"],
            }
        )
        for subject, values in result["metrics"].items():
            mlflow.log_metrics(
                {f"{subject}.{key}": value for key, value in values.items() if isinstance(value, (int, float))}
            )
        return run.info.run_id
