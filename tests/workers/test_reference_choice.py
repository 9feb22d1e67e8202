"""Which version an evaluation compares with, and the reason it records."""

from registry.models import AdapterAlias, AdapterVersion, Status
from registry.services.ingest import adapter_version_ingest
from registry.uploads import incoming_from_directory
from tests.workers.test_worker_pool import push_base
from workers.execute import reference_for


def push(user, directory, base, name, parent=None):
    with incoming_from_directory(directory) as files:
        return adapter_version_ingest(
            name=name, files=files, base_ref=base.ref, parent_ref=parent.ref if parent else None, user=user
        ).version


def mark_ready(version):
    AdapterVersion.objects.filter(id=version.id).update(status=Status.READY)


def test_the_first_version_of_a_name_is_compared_with_its_parent(alice, zoo):
    base = push_base(alice, zoo.llama)
    parent = push(alice, zoo.adapters["attention"], base, "acme/general")
    first = push(alice, zoo.child_adapter, base, "acme/bot", parent=parent)

    assert reference_for(first) == (parent, "parent version")


def test_an_earlier_ready_version_comes_before_the_parent_and_production_before_both(alice, zoo):
    base = push_base(alice, zoo.llama)
    parent = push(alice, zoo.adapters["attention"], base, "acme/general")
    v1 = push(alice, zoo.adapters["dora"], base, "acme/bot")
    v2 = push(alice, zoo.adapters["rslora"], base, "acme/bot")
    v3 = push(alice, zoo.child_adapter, base, "acme/bot", parent=parent)

    assert reference_for(v3) == (parent, "parent version")  # v1 and v2 are not ready
    mark_ready(v1)
    mark_ready(v2)
    assert reference_for(v3) == (v2, "newest earlier ready version")
    AdapterAlias.objects.create(adapter=v3.adapter, name="production", version=v1)
    assert reference_for(v3) == (v1, "production alias")


def test_it_says_why_there_is_no_reference(alice, zoo):
    base = push_base(alice, zoo.llama)
    only = push(alice, zoo.adapters["attention"], base, "acme/bot")

    reference, reason = reference_for(only)
    assert reference is None and reason.startswith("none:") and "no parent" in reason
