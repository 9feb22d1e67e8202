"""Lists at a million adapters (issue 13): keyset pages with ties, the indexed name search, and
the indexes the lists rely on. Rows are made with bulk_create: the lists read rows, not files."""

import importlib

import pytest
from django.db import connection, models
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry import selectors
from registry.models import Adapter, AdapterVersion, BaseModel, BaseModelVersion, Job

NAMES = ["support-bot", "Billing-Helper", "legal_triage", "SUPPORT-router", "sales.bot", "triage-support-x"]


@pytest.fixture
def base(db):
    model = BaseModel.objects.create(namespace="acme", name="llama")
    return BaseModelVersion.objects.create(
        base_model=model, number=1, digest="b" * 64, total_bytes=1, parameter_count=1
    )


def versions_of(adapters, base, per_adapter=1, created_at=None):
    rows = [
        AdapterVersion(
            adapter=adapter,
            number=number,
            digest=f"{adapter.id:032x}{number:032x}",
            base_version=base,
            total_bytes=1,
            parameter_count=1,
            peft_type="LORA",
            r=8,
            tensor_count=2,
        )
        for adapter in adapters
        for number in range(1, per_adapter + 1)
    ]
    AdapterVersion.objects.bulk_create(rows)
    if created_at is not None:  # as one bulk statement would leave them: every row the same instant
        AdapterVersion.objects.filter(id__in=[row.id for row in rows]).update(created_at=created_at)
    return rows


@pytest.fixture
def named(base):
    adapters = Adapter.objects.bulk_create([Adapter(namespace="acme", name=name) for name in NAMES])
    versions_of(adapters, base)
    return adapters


def walk(client, url):
    seen, pages = [], 0
    while url:
        body = client.get(url).json()
        seen.extend(row["id"] for row in body["results"])
        url, pages = body["next"], pages + 1
    return seen, pages


def test_cursor_pages_cover_rows_sharing_one_timestamp_exactly_once_both_ways(alice_client, base):
    adapters = Adapter.objects.bulk_create([Adapter(namespace="bulk", name=f"a{i}") for i in range(45)])
    versions_of(adapters, base, per_adapter=3, created_at=timezone.now())
    expected = [str(pk) for pk in AdapterVersion.objects.order_by("-created_at", "-id").values_list("id", flat=True)]

    forward, pages = walk(alice_client, "/api/v1/adapters/?page_size=20")
    assert forward == expected and pages == 7  # 135 rows, one timestamp: ties broken by id

    last_page = alice_client.get("/api/v1/adapters/?page_size=20").json()
    for _ in range(6):
        last_page = alice_client.get(last_page["next"]).json()
    assert last_page["next"] is None and len(last_page["results"]) == 15
    pages_back, url = [], last_page["previous"]
    while url:  # each page still reads newest first; the pages come in reverse
        body = alice_client.get(url).json()
        pages_back = [row["id"] for row in body["results"]] + pages_back
        url = body["previous"]
    assert pages_back == expected[:120]


def test_a_cursor_the_list_did_not_give_out_is_refused(alice_client, named):
    for cursor in ["not-a-cursor", "WyJuZXh0IiwgWyJ4Il1d", "W10"]:
        response = alice_client.get("/api/v1/adapters/", {"cursor": cursor})
        assert response.status_code == 404, cursor
        assert response.json()["error"]["code"] == "cursor_not_found"


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("support", {"support-bot", "SUPPORT-router", "triage-support-x"}),
        ("PORT-R", {"SUPPORT-router"}),  # inside the name, any case
        ("ot", {"support-bot", "sales.bot"}),  # two letters: still from the index
        ("g", {"Billing-Helper", "legal_triage", "triage-support-x"}),  # one letter: ILIKE alone
        ("l_t", {"legal_triage"}),  # `_` is a letter here, not LIKE's wildcard
        ("%", set()),
        ("nothing", set()),
    ],
)
def test_the_name_search_finds_substrings_in_any_case(alice_client, named, search, expected):
    rows = alice_client.get("/api/v1/adapters/", {"search": search}).json()["results"]
    assert {row["name"] for row in rows} == expected


def test_a_common_search_walks_the_list_and_finds_the_same_rows(alice_client, named, monkeypatch):
    rare = alice_client.get("/api/v1/adapters/", {"search": "support"}).json()["results"]
    monkeypatch.setattr(selectors, "SEARCH_NAME_CAP", 1)  # three matches: now "common"
    common = alice_client.get("/api/v1/adapters/", {"search": "support"}).json()["results"]
    assert [row["id"] for row in common] == [row["id"] for row in rare] and len(rare) == 3


def test_the_statistics_decide_a_common_search_without_reading_the_names(alice_client, named, monkeypatch):
    monkeypatch.setattr(selectors, "SEARCH_NAME_CAP", 2)
    # No statistics yet: the search is taken as rare and the index answers, up to the cap + 1 names.
    assert len(selectors._matching_names("support")) == 3
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE registry_adapter")
    # Three of the six names contain "support": the histogram says 3 > 2 before any name is read.
    assert selectors._matching_names("support") is None
    assert sorted(selectors._matching_names("bot")) == sorted(a.id for a in named if "bot" in a.name)
    rows = alice_client.get("/api/v1/adapters/", {"search": "support"}).json()["results"]
    assert {row["name"] for row in rows} == {"support-bot", "SUPPORT-router", "triage-support-x"}


@pytest.mark.parametrize("walk_from", [100, 1])  # 3 names match: probed by id, or the namespace walked
def test_a_search_within_a_namespace_keeps_to_it(alice_client, base, monkeypatch, walk_from):
    monkeypatch.setattr(selectors, "SEARCH_NAMESPACE_WALK", walk_from)
    adapters = Adapter.objects.bulk_create(
        [Adapter(namespace=namespace, name=f"bot-{i}") for namespace in ("one", "two") for i in range(3)]
    )
    versions_of(adapters, base, per_adapter=2)
    rows = alice_client.get("/api/v1/adapters/", {"search": "bot", "namespace": "two"}).json()["results"]
    expected = AdapterVersion.objects.filter(adapter__namespace="two").order_by("-created_at", "-id")
    assert [row["id"] for row in rows] == [str(pk) for pk in expected.values_list("id", flat=True)]
    assert len(rows) == 6 and {row["namespace"] for row in rows} == {"two"}


def test_a_search_costs_the_same_queries_however_many_names_match(alice_client, base):
    def queries_for_search():
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get("/api/v1/adapters/", {"search": "bot"}).status_code == 200
        return len(captured)

    versions_of(Adapter.objects.bulk_create([Adapter(namespace="q", name=f"bot-{i}") for i in range(3)]), base)
    few = queries_for_search()
    versions_of(Adapter.objects.bulk_create([Adapter(namespace="q", name=f"bot-x{i}") for i in range(60)]), base)
    assert queries_for_search() == few


INDEXES = {
    "registry_adapterversion": [
        "adapter_version_keyset",
        "adapter_version_adapter_keyset",
        "adapter_version_base_keyset",
        "adapter_version_status_keyset",
        "adapter_version_peft_keyset",
        "adapter_version_r_keyset",
        "adapter_version_creator_keyset",
        "adapter_version_ns_keyset",
        "adapter_version_parent_keyset",
    ],
    "registry_adapter": ["adapter_name", "adapter_name_grams"],
    "registry_basemodel": ["base_model_name_grams"],
    "registry_basemodelversion": ["base_version_keyset", "base_version_status_keyset"],
    "registry_job": ["job_keyset", "job_state_keyset", "job_worker_keyset"],
}


def test_the_migrations_create_the_list_indexes(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        found = {(table, name): definition for table, name, definition in cursor.fetchall()}
    for table, names in INDEXES.items():
        for name in names:
            assert (table, name) in found, f"{name} on {table}"
    assert "(created_at, id)" in found[("registry_adapterversion", "adapter_version_keyset")]
    grams = found[("registry_adapter", "adapter_name_grams")]
    assert "gin (registry_name_grams" in grams and "fastupdate=off" in grams  # no pending list to scan


def plan_of(queryset) -> str:
    with connection.cursor() as cursor:
        # Tiny tables: ask whether an index *can* serve the query, filter and order both.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=False)
def test_the_lists_are_answered_from_their_indexes(named):
    assert "adapter_name_grams" in plan_of(Adapter.objects.filter(name__substring="support"))
    first_page = AdapterVersion.objects.order_by("-created_at", "-id").values("id")[:51]
    assert "adapter_version_keyset" in plan_of(first_page)
    by_status = AdapterVersion.objects.filter(status="ready").order_by("-created_at", "-id").values("id")[:51]
    assert "adapter_version_status_keyset" in plan_of(by_status)
    queued = Job.objects.filter(state="queued").order_by("-created_at", "-id").values("id")[:51]
    assert "job_state_keyset" in plan_of(queued)


def test_the_base_adapter_count_is_kept_by_the_database_not_counted_per_read(alice_client, base):
    other = BaseModelVersion.objects.create(
        base_model=base.base_model, number=2, digest="c" * 64, total_bytes=1, parameter_count=1
    )
    adapters = Adapter.objects.bulk_create([Adapter(namespace="c", name=f"n{i}") for i in range(40)])
    on_base = versions_of(adapters[:25], base, per_adapter=2)  # one statement: one grouped counter write
    versions_of(adapters[25:], other)
    AdapterVersion.objects.filter(id__in=[row.id for row in on_base[:3]]).delete()
    assert selectors.base_adapter_counts([base.id, other.id]) == {base.id: 47, other.id: 15}
    with CaptureQueriesContext(connection) as captured:
        body = alice_client.get(f"/api/v1/bases/{base.ref}").json()
    assert body["adapter_count"] == AdapterVersion.objects.filter(base_version=base).count() == 47
    assert not any("count(" in query["sql"].lower() for query in captured.captured_queries)


def test_suites_are_listed_newest_first_in_cursor_pages(alice_client, db):
    from registry.models import Blob, EvaluationSuite

    blob = Blob.objects.create(sha256="d" * 64, size=1)
    EvaluationSuite.objects.bulk_create(
        [
            EvaluationSuite(namespace="evals", name=f"s{i % 3}", number=i, digest=f"{i:064x}", task_type="causal_lm",
                            blob=blob, example_count=1)
            for i in range(7)
        ]
    )  # fmt: skip
    first = alice_client.get("/api/v1/suites/", {"page_size": 4}).json()
    second = alice_client.get(first["next"]).json()
    assert len(first["results"]) == 4 and len(second["results"]) == 3 and second["next"] is None
    named = alice_client.get("/api/v1/suites/", {"name": "s1"}).json()["results"]
    assert sorted(suite["number"] for suite in named) == [1, 4]


def test_every_version_carries_its_adapters_namespace_and_name_whoever_inserts_it(alice_client, base):
    adapters = Adapter.objects.bulk_create([Adapter(namespace=f"team-{i % 2}", name=f"x{i}") for i in range(6)])
    rows = versions_of(adapters, base, per_adapter=2)  # bulk_create: no Python sets the columns
    assert {row.namespace for row in rows} == {"team-0", "team-1"}  # read back on insert
    assert {row.name for row in rows} == {f"x{i}" for i in range(6)}
    created = AdapterVersion.objects.create(
        adapter=adapters[0], number=9, digest="e" * 64, base_version=base, total_bytes=1, parameter_count=1,
        peft_type="LORA", tensor_count=2,
    )  # fmt: skip
    assert (created.namespace, created.name) == ("team-0", "x0")
    mismatched = models.Q(namespace=models.F("adapter__namespace")) & models.Q(name=models.F("adapter__name"))
    assert AdapterVersion.objects.count() == 13 and not AdapterVersion.objects.exclude(mismatched).exists()
    listed = alice_client.get("/api/v1/adapters/", {"namespace": "team-1"}).json()["results"]
    assert len(listed) == 6 and {row["namespace"] for row in listed} == {"team-1"}
    plan = plan_of(AdapterVersion.objects.filter(namespace="team-1").order_by("-created_at", "-id").values("id")[:51])
    assert "adapter_version_ns_keyset" in plan


def test_a_pushed_version_carries_its_adapters_name(api_pushed):
    _base, adapter = api_pushed
    assert AdapterVersion.objects.values_list("namespace", "name").get(id=adapter["id"]) == ("acme", "bot")


def test_renaming_an_adapter_renames_its_versions_copies(alice_client, base):
    """Nothing in the registry renames an adapter; an operator's UPDATE in the database still must
    not leave the search finding versions under the old name."""
    adapters = Adapter.objects.bulk_create([Adapter(namespace="ops", name=name) for name in ("support-bot", "other")])
    versions_of(adapters, base, per_adapter=2)
    Adapter.objects.filter(id=adapters[0].id).update(name="billing-bot", namespace="finance")
    moved = AdapterVersion.objects.filter(adapter=adapters[0]).values_list("namespace", "name")
    assert list(moved) == [("finance", "billing-bot")] * 2
    untouched = AdapterVersion.objects.filter(adapter=adapters[1]).values_list("namespace", "name")
    assert list(untouched) == [("ops", "other")] * 2
    for search, found in [("support", set()), ("billing", {"billing-bot"})]:
        rows = alice_client.get("/api/v1/adapters/", {"search": search}).json()["results"]
        assert {row["name"] for row in rows} == found and len(rows) == 2 * len(found)


def test_a_common_search_filters_the_versions_own_name_copy(alice_client, named, monkeypatch):
    """The walk must not look up each version's adapter to test its name (BENCHMARKS.md, scale)."""
    monkeypatch.setattr(selectors, "SEARCH_NAME_CAP", 1)
    with CaptureQueriesContext(connection) as captured:
        rows = alice_client.get("/api/v1/adapters/", {"search": "SUPPORT"}).json()["results"]
    assert {row["name"] for row in rows} == {"support-bot", "SUPPORT-router", "triage-support-x"}
    listed = [q["sql"] for q in captured.captured_queries if 'FROM "registry_adapterversion"' in q["sql"]]
    assert listed and all('"registry_adapterversion"."name" ILIKE' in sql for sql in listed)
    assert not any('"registry_adapter"."name" ILIKE' in sql for sql in listed)


def test_migration_0019_keeps_the_name_copy_in_the_database(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
            "('registry_adapterversion'::regclass, 'registry_adapter'::regclass)"
        )
        triggers = {name for (name,) in cursor.fetchall()}
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute WHERE attrelid = 'registry_adapterversion'::regclass"
            " AND attname = 'name'"
        )
        (statistics_target,) = cursor.fetchone()
    assert {"registry_adapterversion_from_adapter", "registry_adapter_to_versions"} <= triggers
    assert "registry_adapterversion_namespace" not in triggers  # renamed, not doubled
    assert statistics_target == 1000  # the planner's ILIKE estimate for a common search


def test_migration_0019_backfills_every_version_batch_by_batch(base, monkeypatch):
    migration = importlib.import_module("registry.migrations.0019_version_name")
    monkeypatch.setattr(migration, "BACKFILL_BATCH", 2)  # several batches, ids on their edges
    adapters = Adapter.objects.bulk_create([Adapter(namespace="old", name=f"n{i}") for i in range(5)])
    versions_of(adapters, base, per_adapter=2)
    AdapterVersion.objects.update(name="")  # as the rows were before the migration
    with connection.schema_editor() as schema_editor:
        migration.backfill_names(None, schema_editor)
    assert not AdapterVersion.objects.exclude(name=models.F("adapter__name")).exists()
    assert AdapterVersion.objects.filter(name="n4").count() == 2
