"""The UI at a million adapters (issue 13): keyset pages that cover every row once with the filters
kept, capped counts, the namespace type-ahead's skip scan, the lineage collapsed past 20 children,
the Workers page with many queued jobs, and query counts that do not grow with the rows.

Rows are made with bulk_create: these pages read rows, not files."""

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.models import Adapter, AdapterVersion, BaseModel, BaseModelVersion, Job
from registry.namespaces import adapter_version_distinct, namespace_suggestions
from ui.paging import COUNT_CAP

HTMX = {"HX-Request": "true"}


@pytest.fixture
def base(db):
    model = BaseModel.objects.create(namespace="acme", name="llama")
    return BaseModelVersion.objects.create(
        base_model=model, number=1, digest="b" * 64, total_bytes=1, parameter_count=1
    )


def adapters_in(base, namespace, count, *, parent=None, r=8, same_instant=False):
    """`count` adapter names in `namespace`, one version each (children of `parent` when given)."""
    names = Adapter.objects.bulk_create(
        [Adapter(namespace=namespace, name=f"{namespace}-{index:05d}") for index in range(count)]
    )
    rows = AdapterVersion.objects.bulk_create(
        [
            AdapterVersion(
                adapter=adapter,
                number=1,
                digest=f"{adapter.id:064x}",
                base_version=base,
                parent=parent,
                total_bytes=1,
                parameter_count=1,
                peft_type="LORA",
                r=r,
                tensor_count=2,
            )
            for adapter in names
        ]
    )
    if same_instant:  # as one bulk statement would leave them: ties broken by id
        AdapterVersion.objects.filter(id__in=[row.id for row in rows]).update(created_at=timezone.now())
    return rows


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def listed_refs(body: str) -> list[str]:
    return re.findall(r'<a href="/adapters/[^"]+/v\d+/">([^<]+:v\d+)</a>', body)


def link(body: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)"[^>]* rel="{rel}"', body)
    return html.unescape(found.group(1)) if found else None


def walk(client, path: str, query: str, rel: str = "next", headers=None) -> list[list[str]]:
    """Every page from `path?query` following the `rel` link, as the refs each page lists."""
    pages, url = [], f"{path}?{query}"
    while url:
        body = client.get(url, headers=headers or {}).content.decode()
        pages.append(listed_refs(body))
        found = link(body, rel)
        url = f"{path}{found}" if found and found.startswith("?") else found
        assert len(pages) < 20, "the pager loops"
    return pages


def test_it_walks_the_adapter_list_older_and_newer_covering_every_row_once_with_filters_kept(signed_in, base):
    acme = adapters_in(base, "acme", 60, same_instant=True)
    adapters_in(base, "other", 5)
    expected = [f"{v.adapter.namespace}/{v.adapter.name}:v1" for v in sorted(acme, key=lambda v: v.id, reverse=True)]

    older = walk(signed_in, "/adapters/", "namespace=acme", headers=HTMX)
    assert [len(page) for page in older] == [25, 25, 10]
    assert sum(older, []) == expected  # newest first (one instant: by id), each row once, no other namespace

    last = signed_in.get(f"/adapters/?namespace=acme&cursor={_cursor_of_last_page(signed_in)}").content.decode()
    newer = walk(signed_in, "/adapters/", link(last, "prev").lstrip("?"), rel="prev")
    assert sum(reversed(newer), []) == expected[:50]
    assert "namespace=acme" in link(last, "prev")


def _cursor_of_last_page(client) -> str:
    body = client.get("/adapters/?namespace=acme").content.decode()
    second = client.get(f"/adapters/{link(body, 'next')}").content.decode()
    return re.search(r"cursor=([^&]+)", link(second, "next")).group(1)


def test_it_shows_a_capped_count_and_the_live_search_still_filters(signed_in, base):
    adapters_in(base, "wide", COUNT_CAP + 1)
    body = signed_in.get("/adapters/").content.decode()
    assert f"{COUNT_CAP:,}+ in all" in body and "Page " not in body

    fragment = signed_in.get("/adapters/?q=wide-00007", headers=HTMX).content.decode()
    assert "<html" not in fragment and listed_refs(fragment) == ["wide/wide-00007:v1"]
    assert "in all" not in fragment  # a search is not counted: a common one would walk the whole list


def test_namespace_suggestions_are_a_skip_scan_in_order(base):
    for namespace in ["team-b", "team-a", "tea", "zeta", "team-c"]:
        adapters_in(base, namespace, 3)
    assert namespace_suggestions("team") == ["team-a", "team-b", "team-c"]
    assert namespace_suggestions("tea", limit=2) == ["tea", "team-a"]
    assert namespace_suggestions("") == ["tea", "team-a", "team-b", "team-c", "zeta"]
    assert namespace_suggestions("nobody") == [] and namespace_suggestions("zeta\x00") == ["zeta"]
    with connection.cursor() as cursor:  # the plan: index probes, never a scan of the table
        cursor.execute("EXPLAIN " + _sql_of_suggestions(), {"prefix": "team", "limit": 20})
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "unique_adapter_name" in plan or "Index Only Scan" in plan, plan
    assert adapter_version_distinct("r") == [8] and adapter_version_distinct("peft_type") == ["LORA"]


def _sql_of_suggestions() -> str:
    from registry import namespaces

    return namespaces._NAMESPACES_SQL


def test_the_namespaces_api_answers_the_type_ahead(alice_client, client, base):
    for namespace in ["team-b", "team-a", "zeta"]:
        adapters_in(base, namespace, 2)
    response = alice_client.get("/api/v1/namespaces?prefix=team")
    assert response.status_code == 200 and response.json() == {"results": ["team-a", "team-b"]}
    assert alice_client.get("/api/v1/namespaces?limit=1").json() == {"results": ["team-a"]}
    assert alice_client.get("/api/v1/namespaces?limit=0").status_code == 400
    assert alice_client.get("/api/v1/namespaces?limit=").status_code == 400  # the schema says an integer
    refused = alice_client.get("/api/v1/namespaces?name=x")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unknown_filter"
    assert client.get("/api/v1/namespaces?prefix=team").status_code in (401, 403)


def test_the_ui_suggestions_link_to_the_filtered_list_keeping_other_filters(signed_in, base):
    for namespace in ["team-b", "team-a", "zeta"]:
        adapters_in(base, namespace, 2)
    body = signed_in.get(
        "/adapters/namespaces/?namespace=team&status=received&q=&cursor=x", headers=HTMX
    ).content.decode()
    hrefs = [html.unescape(h) for h in re.findall(r'<a href="([^"]+)"', body)]
    assert hrefs == ["/adapters/?status=received&namespace=team-a", "/adapters/?status=received&namespace=team-b"]
    assert "no namespace starts with" in signed_in.get("/adapters/namespaces/?namespace=nope").content.decode()


def test_the_base_page_pages_adapters_built_on_it_newest_first(signed_in, base):
    built = adapters_in(base, "acme", 60)
    expected = [f"acme/{v.adapter.name}:v1" for v in sorted(built, key=lambda v: (v.created_at, v.id), reverse=True)]
    pages = walk(signed_in, "/bases/acme/llama/v1/", "", headers=HTMX)
    assert [len(page) for page in pages] == [25, 25, 10] and sum(pages, []) == expected
    assert "Adapters built on this version (60)" in signed_in.get("/bases/acme/llama/v1/").content.decode()


def test_a_version_with_many_children_draws_twenty_and_collapses_the_rest(signed_in, alice_client, base):
    (root,) = adapters_in(base, "root", 1)
    children = adapters_in(base, "kid", 130, parent=root)
    oldest = sorted(children, key=lambda v: (v.created_at, v.id))

    body = signed_in.get("/adapters/root/root-00000/v1/").content.decode()
    graph = signed_in.get("/adapters/root/root-00000/v1/?panel=lineage", headers=HTMX).content.decode()
    svg = graph[graph.index("<svg") : graph.index("</svg>")]
    assert svg.count('data-ref="kid/') == 20 and 'data-more="+110 more"' in svg
    assert 'href="/adapters/root/root-00000/v1/children/"' in svg
    assert "+110 more</a>" in body  # the Children list: 20 shown, the rest one click away

    more = re.search(r'hx-get="([^"]+)"[^>]*>\+110 more', body).group(1)
    fragment = signed_in.get(html.unescape(more), headers=HTMX).content.decode()
    assert "<html" not in fragment and listed_refs(fragment) == [f"kid/{v.adapter.name}:v1" for v in oldest[20:40]]
    assert "+90 more" in fragment

    seen, url = listed_refs(fragment), re.search(r'hx-get="([^"]+)"', fragment)
    while url:  # "+N more" until none is left: every child once, oldest first
        fragment = signed_in.get(html.unescape(url.group(1)), headers=HTMX).content.decode()
        seen += listed_refs(fragment)
        url = re.search(r'hx-get="([^"]+)"', fragment)
    assert seen == [f"kid/{v.adapter.name}:v1" for v in oldest[20:]]

    api = alice_client.get("/api/v1/adapters/root/root-00000:v1/lineage")
    assert api.status_code == 200 and len(api.json()["nodes"]) == 1 + 1 + 100
    assert api["Lineage-Truncated"] == "true"


def test_a_small_lineage_is_whole_and_not_marked_truncated(alice_client, base):
    (root,) = adapters_in(base, "root", 1)
    adapters_in(base, "kid", 3, parent=root)
    api = alice_client.get("/api/v1/adapters/root/root-00000:v1/lineage")
    assert len(api.json()["nodes"]) == 5 and len(api.json()["edges"]) == 4 and "Lineage-Truncated" not in api


def queued_jobs(version, count):
    return Job.objects.bulk_create(
        [Job(kind=Job.Kind.COMPATIBILITY, adapter_version=version, queue="gpu") for _ in range(count)]
    )


def test_the_workers_page_shows_a_page_of_many_queued_jobs_oldest_first(signed_in, base):
    (version,) = adapters_in(base, "acme", 1)
    jobs = queued_jobs(version, 120)
    expected = [str(job.id) for job in sorted(jobs, key=lambda j: (j.created_at, j.id))]
    seen, url = [], "/workers/"
    while url:
        body = signed_in.get(url).content.decode()
        page = re.findall(r"<div class=\"sub\"><code>([0-9a-f-]{36})</code>", body)
        assert len(page) <= 50
        seen += page
        found = link(body, "next")
        url = f"/workers/{found}" if found else None
    assert seen == expected
    assert "120 job(s) waiting" in signed_in.get("/workers/").content.decode()


# "name-slot" is also a stand-in of the view's link template: a name holding it still links right.
@pytest.mark.parametrize("namespace", ["acme", "name-slot"])
def test_the_workers_page_rows_link_the_adapter_and_offer_the_actions_each_job_allows(client, carol, base, namespace):
    (version,) = adapters_in(base, namespace, 1)
    waiting = queued_jobs(version, 2)
    running = Job.objects.create(
        kind=Job.Kind.EVALUATION, adapter_version=version, queue="gpu", state=Job.State.RUNNING, ran_on="w1@gpu"
    )
    client.force_login(carol)
    body = client.get("/workers/").content.decode()
    rows = re.findall(r"<tr>\s*<td>(\w+)<div class=\"sub\"><code>([0-9a-f-]{36})</code>(.*?)</tr>", body, re.S)
    assert [job_id for _, job_id, _ in rows] == [str(running.id)] + [
        str(j.id) for j in sorted(waiting, key=lambda j: (j.created_at, j.id))
    ]
    for _kind, job_id, row in rows:
        assert f'<a href="/adapters/{namespace}/{namespace}-00000/v1/">{namespace}/{namespace}-00000:v1</a>' in row
        assert f'action="/jobs/{job_id}/cancel"' in row and 'name="csrfmiddlewaretoken"' in row
        assert (f'action="/jobs/{job_id}/redispatch"' in row) == (job_id != str(running.id))
    assert rows[0][0] == "evaluation" and "on w1@gpu" in rows[0][2] and "not yet" in rows[1][2]


def test_the_version_page_leaves_the_lineage_queries_to_its_lazy_panel(signed_in, base):
    (root,) = adapters_in(base, "acme", 1)
    adapters_in(base, "kid", 30, parent=root)
    with CaptureQueriesContext(connection) as page:
        body = signed_in.get("/adapters/acme/acme-00000/v1/").content.decode()
    with CaptureQueriesContext(connection) as panel:
        graph = signed_in.get("/adapters/acme/acme-00000/v1/?panel=lineage", headers=HTMX).content.decode()
    assert "<svg" not in body and "+10 more</a>" in body  # the Children list stays on the page
    assert not any("WITH RECURSIVE" in query["sql"] for query in page.captured_queries)
    assert graph.count('data-ref="kid/') == 20 and 'data-more="+10 more"' in graph
    assert len(panel) < len(page)


@pytest.mark.parametrize(
    "url",
    [
        "/adapters/",
        "/adapters/?namespace=acme&q=acme",
        "/bases/",
        "/bases/acme/llama/v1/",
        "/adapters/acme/acme-00000/v1/",
        "/adapters/acme/acme-00000/v1/?panel=lineage",
        "/adapters/acme/acme-00000/v1/children/",
        "/workers/",
        "/adapters/namespaces/?namespace=ac",
    ],
)
def test_query_counts_stay_the_same_for_3_and_60_rows(signed_in, base, url):
    (root,) = adapters_in(base, "acme", 1)
    queued_jobs(root, 3)
    adapters_in(base, "few", 3, parent=root)
    with CaptureQueriesContext(connection) as few:
        assert signed_in.get(url).status_code == 200
    queued_jobs(root, 57)
    adapters_in(base, "many", 57, parent=root)
    with CaptureQueriesContext(connection) as many:
        assert signed_in.get(url).status_code == 200
    assert len(many) == len(few), [query["sql"][:120] for query in many.captured_queries]


# --- An adapter page with thousands of versions ------------------------------------------------


def test_an_adapter_page_lists_its_newest_versions_and_those_next_to_the_one_shown(signed_in, base):
    adapter = Adapter.objects.create(namespace="acme", name="nightly")
    AdapterVersion.objects.bulk_create(
        [
            AdapterVersion(
                adapter=adapter,
                number=number,
                digest=f"{number:064x}",
                base_version=base,
                total_bytes=1,
                parameter_count=1,
                peft_type="LORA",
                r=8,
                tensor_count=2,
            )
            for number in range(1, 501)
        ]
    )

    def listed(number):
        with CaptureQueriesContext(connection) as queries:
            page = signed_in.get(f"/adapters/acme/nightly/v{number}/")
        assert page.status_code == 200
        table = re.search(r'<table class="list" id="versions".*?</table>', page.content.decode(), re.S).group(0)
        return [int(n) for n in re.findall(r"/adapters/acme/nightly/v(\d+)/\"", table)], table, len(queries)

    newest, table, queries_newest = listed(500)
    assert newest == list(range(500, 480, -1))
    assert "20 of 500 versions" in table
    old, table, queries_old = listed(7)
    assert old == list(range(500, 480, -1)) + list(range(12, 1, -1))
    assert "31 of 500 versions: the newest and those next to v7" in table
    assert queries_old == queries_newest + 1  # the versions around it: one more query, not one per row
