"""The residency models' own rules: names, capacity, labels, and the database constraints behind them."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.models import ResidencyPin, ServingWorker, TelemetryWindow


def _worker(**fields) -> ServingWorker:
    values = {"name": "vllm-a", "engine": "vllm", "endpoint": "http://10.0.0.5:8000", "gpu_slots": 8}
    return ServingWorker(**{**values, **fields})


def test_it_accepts_a_well_formed_worker(db):
    worker = _worker(labels={"zone": "eu-1", "gpu": "h100"})
    worker.full_clean()
    worker.save()
    assert ServingWorker.objects.get(name="vllm-a").labels == {"zone": "eu-1", "gpu": "h100"}


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"name": "Has Space"}, "name"),
        ({"name": "-leading-dash"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"engine": "tgi"}, "engine"),
        ({"endpoint": "ftp://host/"}, "endpoint"),
        ({"endpoint": "not a url"}, "endpoint"),
        ({"gpu_slots": 0}, "gpu_slots"),
        ({"gpu_slots": None, "gpu_bytes": None}, "gpu_slots"),
        ({"gpu_bytes": -1}, "gpu_bytes"),
        ({"max_rank": 0}, "max_rank"),
        ({"host_bytes": -5}, "host_bytes"),
        ({"labels": ["zone"]}, "labels"),
        ({"labels": {"zone": 3}}, "labels"),
        ({"labels": {"bad key!": "x"}}, "labels"),
    ],
)
def test_it_refuses_a_malformed_worker(db, fields, field):
    with pytest.raises(ValidationError) as refused:
        _worker(**fields).full_clean()
    assert field in refused.value.message_dict


def test_the_database_refuses_a_worker_without_gpu_capacity(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        _worker(gpu_slots=None, gpu_bytes=None).save()


def test_a_worker_may_give_gpu_bytes_only(db):
    worker = _worker(gpu_slots=None, gpu_bytes=80 * 2**30)
    worker.full_clean()
    worker.save()


def test_the_database_refuses_a_window_that_ends_before_it_starts(db, versions):
    worker = _worker()
    worker.save()
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        TelemetryWindow.objects.create(
            worker=worker, adapter_version=versions[0], window_start=now, window_end=now, requests=1
        )


def test_the_database_refuses_negative_counts(db, versions):
    worker = _worker()
    worker.save()
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        TelemetryWindow.objects.create(
            worker=worker,
            adapter_version=versions[0],
            window_start=now - timezone.timedelta(minutes=1),
            window_end=now,
            requests=-1,
        )


def test_a_pin_names_exactly_one_target(db, versions):
    adapter = versions[0].adapter
    with pytest.raises(IntegrityError), transaction.atomic():
        ResidencyPin.objects.create(adapter_version=versions[0], adapter=adapter, alias="production")
    with pytest.raises(IntegrityError), transaction.atomic():
        ResidencyPin.objects.create(adapter=adapter)
    ResidencyPin.objects.create(adapter=adapter, alias="production")
    assert ResidencyPin.objects.get().target == "acme/bot:production"


def test_the_same_pin_for_every_worker_is_kept_once(db, versions):
    ResidencyPin.objects.create(adapter_version=versions[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        ResidencyPin.objects.create(adapter_version=versions[0])
