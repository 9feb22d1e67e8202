"""Reads that are more than a plain lookup: resolving references, lists, lineage."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.postgres.fields import ArrayField
from django.db import connection
from django.db.models import BigIntegerField, BooleanField, Exists, F, Func, OuterRef, Prefetch, QuerySet, Sum, Value
from django.utils import timezone

from registry.errors import NotFound
from registry.models import (
    Adapter,
    AdapterVersion,
    BaseAdapterCount,
    BaseModel,
    BaseModelVersion,
    EvaluationSuite,
    Job,
    Signature,
    Worker,
)
from registry.refs import parse_ref
from registry.rows import fetch_instances, select_list

LATEST_ALIAS = "latest"


def base_version_queryset() -> QuerySet[BaseModelVersion]:
    return BaseModelVersion.objects.select_related("base_model", "created_by")


def adapter_version_queryset() -> QuerySet[AdapterVersion]:
    # The base's tensor index (tens of KB of JSON) is for pushes, not for reading an adapter.
    return AdapterVersion.objects.select_related(
        "adapter", "created_by", "base_version__base_model", "parent__adapter"
    ).defer("base_version__tensor_index")


def resolve_ref(queryset: QuerySet, ref_text: str, *, kind: str, repository_field: str | None = None):
    """The one place a reference (UUID, version number, digest, alias, or the newest) becomes a row.

    `repository_field` is where namespace and name live (`adapter`, `base_model`), None when they
    are on the row itself (suites). Only adapter versions have aliases; `:latest` is the newest.
    """
    ref = parse_ref(ref_text)
    if ref.id is not None:
        found = queryset.filter(id=ref.id).first()
    else:
        prefix = f"{repository_field}__" if repository_field else ""
        named = queryset.filter(**{f"{prefix}namespace": ref.namespace, f"{prefix}name": ref.name})
        if ref.number is not None:
            found = named.filter(number=ref.number).first()
        elif ref.digest is not None:
            found = named.filter(digest=ref.digest).first()
        elif ref.alias is not None and ref.alias != LATEST_ALIAS:
            found = named.filter(aliases__name=ref.alias).first() if kind == "adapter" else None
        else:
            found = named.order_by("-number").first()
    if found is None:
        raise NotFound(f"{kind}_not_found", f"no {kind} version matches {ref.text!r}", ref=ref.text)
    return found


def adapter_alias_target(adapter_id, alias: str) -> AdapterVersion | None:
    """The version an adapter's alias points to now (None when the alias is not set)."""
    return adapter_version_queryset().filter(adapter_id=adapter_id, aliases__name=alias).first()


def base_version_get(ref: str) -> BaseModelVersion:
    """What `resolve_ref(base_version_queryset(), ref, ...)` finds, read with SQL written once.

    Every push resolves its base: through the ORM this took 4.3 ms a push, as SQL 1.2 ms (most of
    it decoding the JSON columns). Bases have no aliases; `:latest` and a bare name are the newest."""
    parsed = parse_ref(ref)
    if parsed.id is not None:
        where, params, order = "v.id = %s", [parsed.id], ""
    elif parsed.alias is not None and parsed.alias != LATEST_ALIAS:
        where, params, order = "FALSE", [], ""
    else:
        where, params = "m.namespace = %s AND m.name = %s", [parsed.namespace, parsed.name]
        order = ""
        if parsed.number is not None:
            where, params = f"{where} AND v.number = %s", [*params, parsed.number]
        elif parsed.digest is not None:
            where, params = f"{where} AND v.digest = %s", [*params, parsed.digest]
        else:
            order = "ORDER BY v.number DESC"
    found = _base_version_row(where, params, order)
    if found is None:
        raise NotFound("base_not_found", f"no base version matches {parsed.text!r}", ref=parsed.text)
    return found


def _base_version_row(where: str, params: list, order: str) -> BaseModelVersion | None:
    """One base version with its base model and creator, as base_version_queryset() builds them."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    sql = (
        f"SELECT {select_list([(BaseModelVersion, 'v'), (BaseModel, 'm'), (user_model, 'u')])} "
        f"FROM {BaseModelVersion._meta.db_table} v JOIN {BaseModel._meta.db_table} m ON m.id = v.base_model_id "
        f"LEFT JOIN {user_model._meta.db_table} u ON u.id = v.created_by_id WHERE {where} {order} LIMIT 1"
    )
    found = fetch_instances(sql, params, [BaseModelVersion, BaseModel, user_model])
    if found is None:
        return None
    version, base_model, creator = found
    version.base_model, version.created_by = base_model, creator
    return version


def adapter_version_get(ref: str) -> AdapterVersion:
    return resolve_ref(adapter_version_queryset(), ref, kind="adapter", repository_field="adapter")


def base_adapter_counts(base_version_ids) -> dict:
    """How many adapter versions each base version has, read from the trigger-kept counters
    (BaseAdapterCount): at most 16 rows per base, however many adapters are built on it."""
    rows = (
        BaseAdapterCount.objects.filter(base_version_id__in=list(base_version_ids))
        .values("base_version_id")
        .annotate(total=Sum("count"))
    )
    counts = {row["base_version_id"]: row["total"] for row in rows}
    return {base_id: counts.get(base_id, 0) for base_id in base_version_ids}


def base_adapter_count(base_version_id) -> int:
    return base_adapter_counts([base_version_id])[base_version_id]


def _created(queryset: QuerySet, created_by: str, created_after, created_before) -> QuerySet:
    """Who pushed it and when: the filters an auditor asks for."""
    if created_by:
        queryset = queryset.filter(created_by__username=created_by)
    if created_after is not None:
        queryset = queryset.filter(created_at__gte=created_after)
    if created_before is not None:
        queryset = queryset.filter(created_at__lt=created_before)
    return queryset


def base_version_list(
    *,
    namespace: str = "",
    name: str = "",
    architecture: str = "",
    status: str = "",
    search: str = "",
    created_by: str = "",
    created_after=None,
    created_before=None,
) -> QuerySet[BaseModelVersion]:
    queryset = _created(base_version_queryset(), created_by, created_after, created_before)
    if namespace:
        queryset = queryset.filter(base_model__namespace=namespace)
    if name:
        queryset = queryset.filter(base_model__name=name)
    if architecture:
        queryset = queryset.filter(architecture=architecture)
    if status:
        queryset = queryset.filter(status=status)
    if search:
        queryset = queryset.filter(base_model__name__substring=search)  # registry/search.py
    return queryset


def adapter_version_list(
    *,
    namespace: str = "",
    name: str = "",
    base: BaseModelVersion | None = None,
    status: str = "",
    peft_type: str = "",
    r: int | None = None,
    search: str = "",
    created_by: str = "",
    created_after=None,
    created_before=None,
) -> QuerySet[AdapterVersion]:
    queryset = _created(adapter_version_queryset(), created_by, created_after, created_before)
    if search:  # first: a rare search narrows to a few names, within the namespace if one is given
        queryset, namespace = _adapter_name_search(queryset, search, namespace)
    if namespace:  # the version's own copy: one range scan of (namespace, created_at, id)
        queryset = queryset.filter(namespace=namespace)
    if name:
        queryset = queryset.filter(adapter__name=name)
    if base is not None:
        queryset = queryset.filter(base_version=base)
    if status:
        queryset = queryset.filter(status=status)
    if peft_type:
        queryset = queryset.filter(peft_type=peft_type.upper())
    if r is not None:
        queryset = queryset.filter(r=r)
    return queryset


# A search matching more names than this is common enough that walking the list in its keyset
# order finds a page of matches sooner than probing every matching name's versions: at 10^6 names
# both cost about the same here (BENCHMARKS.md, scale).
SEARCH_NAME_CAP = 5000

# How many names contain the search, estimated the way the planner estimates `name ILIKE '%q%'`:
# the share of the column's histogram bounds (1,000 of them, migration 0017) that match, times the
# table's row count. Names are unique, so there is no most-common-values list to add. NULL when the
# table has no statistics yet (then the search is taken as rare and the index answers it).
_NAME_ESTIMATE_SQL = """
SELECT count(*) FILTER (WHERE bound ILIKE %s)::float8 / nullif(count(*), 0) * max(c.reltuples)
FROM pg_stats s CROSS JOIN LATERAL unnest(s.histogram_bounds::text::text[]) AS bound
JOIN pg_class c ON c.oid = 'registry_adapter'::regclass
WHERE s.schemaname = current_schema() AND s.tablename = 'registry_adapter' AND s.attname = 'name'
  AND NOT s.inherited
"""

# One statement: the estimate, and only when it says rare, the matching names from the gram index.
# The ARRAY(...) subquery sits in the CASE's other branch, so PostgreSQL never runs it for a common
# search (an init plan runs when first needed): the index is not asked to build its bitmap of
# 100,000 names just to learn that there are more than SEARCH_NAME_CAP.
_NAME_PROBE_SQL = """
SELECT estimate, CASE WHEN estimate > %s THEN NULL ELSE ARRAY({names}) END
FROM ({estimate}) AS stats(estimate)
"""


def _matching_names(search: str) -> list | None:
    """Ids of the names containing `search`, at most SEARCH_NAME_CAP + 1; None when the statistics
    say far more names match than that (then nothing was read from the names)."""
    names = Adapter.objects.filter(name__substring=search).values_list("id", flat=True)[: SEARCH_NAME_CAP + 1]
    names_sql, names_params = names.query.sql_with_params()
    pattern = f"%{connection.ops.prep_for_like_query(search)}%"
    with connection.cursor() as cursor:
        cursor.execute(
            _NAME_PROBE_SQL.format(names=names_sql, estimate=_NAME_ESTIMATE_SQL),
            [SEARCH_NAME_CAP, *names_params, pattern],
        )
        _estimate, ids = cursor.fetchone()
    return ids


# Within a namespace, this many matching names make the namespace dense enough in matches that
# walking its (namespace, created_at, id) index with the name filter fills a page first: `bot` in
# a namespace of 2,000 names (1,000 match) reads ~100 versions (4 ms), where probing the 1,000 ids
# joined all their 2,000 versions before sorting them (27 ms; 45 ms keeping the namespace filter,
# which the planner then estimated at 4 rows). Fewer names are probed by id.
SEARCH_NAMESPACE_WALK = 100


def _adapter_name_search(queryset: QuerySet[AdapterVersion], search: str, namespace: str) -> tuple[QuerySet, str]:
    """Versions whose adapter name contains `search` (any case), planned by how common it is;
    returns them and the namespace filter still to apply ("" once the names are within it).

    A rare search becomes an `adapter_id = ANY(array)` served by the (adapter, created_at, id)
    index; a common one is a plain filter on the walk down the list order (or the namespace's),
    which stops as soon as a page is full. Whether it is rare the column's statistics say first (one
    statement with the probe, see _NAME_PROBE_SQL); the probe, capped at SEARCH_NAME_CAP + 1 names,
    has the last word when they were wrong. Within a namespace the probe reads that namespace's
    names only, and SEARCH_NAMESPACE_WALK of them make it common there."""
    if namespace:
        names = Adapter.objects.filter(name__substring=search, namespace=namespace)
        matching = list(names.values_list("id", flat=True)[: SEARCH_NAME_CAP + 1])
        common = len(matching) >= SEARCH_NAMESPACE_WALK
    else:
        matching = _matching_names(search)
        common = matching is None or len(matching) > SEARCH_NAME_CAP
    if not common:
        return queryset.filter(AnyOf(F("adapter_id"), matching)), ""
    # The version's own copy of the name (migration 0019): the walk filters the rows it reads.
    return queryset.filter(name__substring_scan=search), namespace  # registry/search.py


class AnyOf(Func):
    """`column = ANY(%s)` with one array parameter: planning an IN list of 5,000 constants took
    longer than running it (15 ms for 1,000)."""

    template = "(%(expressions)s))"
    arg_joiner = " = ANY("
    output_field = BooleanField()

    def __init__(self, column, values):
        super().__init__(column, Value(list(values), output_field=ArrayField(BigIntegerField())))


# --- List rows ------------------------------------------------------------------------
# Lists can be 500 rows a page over 100,000 versions: fetching plain rows with
# values() instead of five model instances per row halves the time of a page.

# What an adapter version says about itself, derived from its headers and config.
ADAPTER_METADATA_FIELDS = (
    "peft_type",
    "r",
    "lora_alpha",
    "target_modules",
    "modules_to_save",
    "use_dora",
    "use_rslora",
    "tensor_count",
    "parameter_count",
    "total_bytes",
    "dtypes",
)
BASE_METADATA_FIELDS = (
    "architecture",
    "model_type",
    "hidden_size",
    "num_layers",
    "parameter_count",
    "dtype",
    "total_bytes",
)
ADAPTER_ROW_FIELDS = (
    "id",
    "number",
    "digest",
    "status",
    "status_reason",
    "created_at",
    "adapter__namespace",
    "adapter__name",
    "created_by__username",
    "base_version_id",
    "base_version__number",
    "base_version__digest",
    "base_version__base_model__namespace",
    "base_version__base_model__name",
    "parent_id",
    "parent__number",
    "parent__digest",
    "parent__adapter__namespace",
    "parent__adapter__name",
    *ADAPTER_METADATA_FIELDS,
)
BASE_ROW_FIELDS = (
    "id",
    "number",
    "digest",
    "status",
    "status_reason",
    "created_at",
    "base_model__namespace",
    "base_model__name",
    "created_by__username",
    *BASE_METADATA_FIELDS,
)


def signed_by_someone(version_ref: str = "pk"):
    """True where a signature other than the registry's counter-signature last verified."""
    return Exists(
        Signature.objects.filter(version=OuterRef(version_ref), is_registry=False, result=Signature.Result.PASSED)
    )


def adapter_version_rows(queryset: QuerySet[AdapterVersion]) -> QuerySet:
    return queryset.annotate(signed=signed_by_someone()).values(*ADAPTER_ROW_FIELDS, "signed")


def base_version_rows(queryset: QuerySet[BaseModelVersion]) -> QuerySet:
    return queryset.values(*BASE_ROW_FIELDS)


# --- Lineage ------------------------------------------------------------------------

_ANCESTORS_SQL = """
WITH RECURSIVE chain(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM registry_adapterversion WHERE id = %s
    UNION ALL
    SELECT av.id, av.parent_id, chain.depth + 1
    FROM registry_adapterversion av JOIN chain ON av.id = chain.parent_id
    WHERE chain.depth < 1000
)
SELECT id FROM chain
"""

# Descendants breadth-first, at most `per_node` children of each node (its oldest, by the keyset
# order) and `max_nodes` in all: a version with 10,000 children reads `per_node` of them, and the
# outer LIMIT stops the recursion (PostgreSQL evaluates a recursive CTE lazily).
_DESCENDANTS_SQL = """
WITH RECURSIVE tree(id, depth) AS (
    SELECT id, 0 FROM (
        SELECT id FROM registry_adapterversion WHERE {start} ORDER BY created_at, id LIMIT %(per_node)s
    ) first
    UNION ALL
    SELECT child.id, tree.depth + 1
    FROM tree CROSS JOIN LATERAL (
        SELECT av.id FROM registry_adapterversion av
        WHERE av.parent_id = tree.id ORDER BY av.created_at, av.id LIMIT %(per_node)s
    ) child
    WHERE tree.depth < 1000
)
SELECT id FROM tree LIMIT %(max_nodes)s
"""

# How many children each of some nodes has, reading no more than %(cap)s + 1 index entries each.
_CHILD_COUNTS_SQL = """
SELECT node.id, (
    SELECT count(*) FROM (
        SELECT 1 FROM registry_adapterversion av WHERE av.parent_id = node.id LIMIT %(cap)s + 1
    ) children
) FROM unnest(%(ids)s::uuid[]) AS node(id)
"""

LINEAGE_CHILDREN_SHOWN = 20  # children drawn per node in the UI; the rest collapse into "+N more"
LINEAGE_API_CHILDREN = 100  # children per node in GET .../lineage
LINEAGE_MAX_NODES = 1000  # descendants in all, UI and API
LINEAGE_COUNT_CAP = 10_000  # hidden children are counted up to this, then shown as "10,000+"


def _ids(sql: str, params) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class CappedCount:
    """A count read no further than a cap: the lists and the lineage graph show "1,000+", never
    COUNT(*) over a million rows."""

    value: int  # the count, or the cap when there are more
    more: bool  # True: there are more than `value`

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.more else f"{self.value:,}"


def capped_count(queryset: QuerySet, cap: int) -> CappedCount:
    """How many rows, read no further than cap + 1: `SELECT count(*) FROM (... LIMIT cap + 1)`."""
    found = queryset.order_by().values("pk")[: cap + 1].count()
    return CappedCount(min(found, cap), found > cap)


@dataclass
class Lineage:
    """A graph of one base version and adapter versions, with edges child -> what it builds on.

    Wide graphs are cut: `hidden` maps a node's id (str) to the children of it that are not in
    `adapters` (LINEAGE_CHILDREN_SHOWN of each node are, LINEAGE_MAX_NODES in all)."""

    root: object
    bases: list[BaseModelVersion] = field(default_factory=list)
    adapters: list[AdapterVersion] = field(default_factory=list)
    hidden: dict[str, CappedCount] = field(default_factory=dict)

    @property
    def edges(self) -> list[dict]:
        edges = []
        for adapter in self.adapters:
            if adapter.parent_id is not None:
                edges.append({"from": str(adapter.id), "to": str(adapter.parent_id), "kind": "parent"})
            else:
                edges.append({"from": str(adapter.id), "to": str(adapter.base_version_id), "kind": "base"})
        return edges

    @property
    def truncated(self) -> bool:
        return bool(self.hidden)


def _lineage_adapter_nodes() -> QuerySet[AdapterVersion]:
    """What a lineage graph shows of an adapter version: its ref, digest and status, and its edges.
    The full rows with their five joined tables (config JSON, creator, parent, base) cost the API
    two thirds of its time on a version with 10,000 children (1,100 model instances a request)."""
    return AdapterVersion.objects.select_related("adapter").only(
        "id",
        "number",
        "digest",
        "status",
        "created_at",
        "parent",
        "base_version",
        "adapter__namespace",
        "adapter__name",
    )


def _lineage_base_nodes() -> QuerySet[BaseModelVersion]:
    """A base as a lineage node: without its tensor index (tens of KB of JSON, for pushes)."""
    return BaseModelVersion.objects.select_related("base_model").only(
        "id", "number", "digest", "status", "base_model__namespace", "base_model__name"
    )


def _descendants(start: str, start_params: dict, per_node: int) -> list:
    params = {**start_params, "per_node": per_node, "max_nodes": LINEAGE_MAX_NODES}
    return _ids(_DESCENDANTS_SQL.format(start=start), params)


def _hidden_children(adapters: list[AdapterVersion], per_node: int, cut: bool) -> dict[str, CappedCount]:
    """Children not drawn, for the nodes that may have them: those showing `per_node` children, and
    every node when the graph reached LINEAGE_MAX_NODES. One query, each count capped."""
    shown: dict = {}
    for adapter in adapters:
        if adapter.parent_id is not None:
            shown[adapter.parent_id] = shown.get(adapter.parent_id, 0) + 1
    candidates = [a.id for a in adapters if cut or shown.get(a.id, 0) >= per_node]
    # Run even with no candidates: a page's query count stays the same however wide the graph.
    with connection.cursor() as cursor:
        cursor.execute(_CHILD_COUNTS_SQL, {"ids": candidates, "cap": LINEAGE_COUNT_CAP})
        counts = cursor.fetchall()
    hidden = {}
    for node_id, found in counts:
        left_out = min(found, LINEAGE_COUNT_CAP) - shown.get(node_id, 0)
        if left_out > 0:
            hidden[str(node_id)] = CappedCount(left_out, found > LINEAGE_COUNT_CAP)
    return hidden


def adapter_version_lineage(version: AdapterVersion, *, per_node: int = LINEAGE_CHILDREN_SHOWN) -> Lineage:
    """Ancestors (parent chain and its base) and descendants of `version`: the oldest `per_node`
    children of each node, LINEAGE_MAX_NODES in all; `hidden` counts the rest."""
    ancestor_ids = _ids(_ANCESTORS_SQL, [version.id])
    descendant_ids = _descendants("id = %(start)s", {"start": version.id}, per_node)
    adapters = list(
        _lineage_adapter_nodes().filter(id__in=set(ancestor_ids) | set(descendant_ids)).order_by("created_at", "id")
    )
    descendants = set(descendant_ids)
    below = [a for a in adapters if a.id in descendants]
    hidden = _hidden_children(below, per_node, cut=len(descendant_ids) >= LINEAGE_MAX_NODES)
    base_ids = {a.base_version_id for a in adapters}
    bases = list(_lineage_base_nodes().filter(id__in=base_ids))
    return Lineage(root=version, bases=bases, adapters=adapters, hidden=hidden)


def base_version_lineage(version: BaseModelVersion, *, per_node: int = LINEAGE_CHILDREN_SHOWN) -> Lineage:
    """A base version and the adapter versions built on it, directly or through parents: the oldest
    `per_node` of each node's children, LINEAGE_MAX_NODES in all; `hidden` counts the rest."""
    ids = _descendants("base_version_id = %(start)s AND parent_id IS NULL", {"start": version.id}, per_node)
    adapters = list(_lineage_adapter_nodes().filter(id__in=ids).order_by("created_at", "id"))
    hidden = _hidden_children(adapters, per_node, cut=len(ids) >= LINEAGE_MAX_NODES)
    roots = sum(1 for a in adapters if a.parent_id is None)
    if roots >= per_node:
        found = capped_count(
            AdapterVersion.objects.filter(base_version=version, parent__isnull=True), cap=LINEAGE_COUNT_CAP
        )
        if found.value > roots or found.more:
            hidden[str(version.id)] = CappedCount(found.value - roots, found.more)
    return Lineage(root=version, bases=[version], adapters=adapters, hidden=hidden)


# --- Worker pool ----------------------------------------------------------------------------


def worker_list() -> QuerySet[Worker]:
    running = Job.objects.filter(state=Job.State.RUNNING).only("id", "claimed_by_id", "kind", "adapter_version_id")
    return Worker.objects.prefetch_related(Prefetch("claimed_jobs", queryset=running, to_attr="running_jobs")).order_by(
        "state", "hostname"
    )


def job_queryset() -> QuerySet[Job]:
    return Job.objects.select_related("adapter_version__adapter", "suite")


def job_rows() -> QuerySet[Job]:
    """Jobs as the Workers page lists them: the job's own columns, its adapter version's ref and
    its suite's ref, not the versions' full rows (config, training parameters, dtypes JSON)."""
    return job_queryset().only(
        "id",
        "kind",
        "state",
        "queue",
        "attempts",
        "dispatch_attempts",
        "dispatched_at",
        "ran_on",
        "created_at",
        "adapter_version__number",
        "adapter_version__adapter__namespace",
        "adapter_version__adapter__name",
        "suite__namespace",
        "suite__name",
        "suite__number",
    )


def jobs_of(version: AdapterVersion) -> QuerySet[Job]:
    return job_queryset().filter(adapter_version=version).order_by("created_at")


def job_list(
    *,
    state: str = "",
    kind: str = "",
    adapter: str = "",
    worker: str = "",
    older_than: int | None = None,
) -> QuerySet[Job]:
    """Jobs for operators, newest first; `older_than` (seconds) finds work that is stuck."""
    jobs = job_queryset()
    if state:
        jobs = jobs.filter(state=state)
    if kind:
        jobs = jobs.filter(kind=kind)
    if adapter:
        jobs = jobs.filter(adapter_version=adapter_version_get(adapter))
    if worker:
        jobs = jobs.filter(ran_on=worker)
    if older_than is not None:
        jobs = jobs.filter(created_at__lt=timezone.now() - timedelta(seconds=older_than))
    return jobs


def jobs_waiting() -> QuerySet[Job]:
    """Queued and running jobs, oldest first: what the Workers page shows operators."""
    return job_queryset().filter(state__in=[Job.State.QUEUED, Job.State.RUNNING]).order_by("created_at")


def version_file(version, path: str):
    """The file stored at `path` in a version, or None (PostgreSQL text cannot hold NUL: no such path)."""
    if "\x00" in path:
        return None
    return version.files.filter(path=path).first()


def job_get(job_id) -> Job:
    job = job_queryset().filter(id=job_id).first()
    if job is None:
        raise NotFound("job_not_found", f"no job has id {job_id}")
    return job


def suite_list(*, namespace: str = "", name: str = "") -> QuerySet[EvaluationSuite]:
    """Suites by name; the API pages them newest first on the (created_at, id) index."""
    suites = EvaluationSuite.objects.order_by("namespace", "name", "-number")
    if namespace:
        suites = suites.filter(namespace=namespace)
    if name:
        suites = suites.filter(name=name)
    return suites


@dataclass(frozen=True)
class AliasState:
    """What an alias served from one move on: the primary and the canary (refs) and the canary's share."""

    move_id: int
    moved_at: object
    number: int
    digest: str
    canary_number: int | None
    canary_digest: str | None
    canary_weight: int


# Serving fleets poll this, so it is one statement and no ORM: compiling the two ORM queries (the
# adapter, then the move with its versions) cost more than running them (BENCHMARKS.md, promotions).
_ALIAS_AT_SQL = """
    SELECT m.id, m.moved_at, v.number, v.digest, c.number, c.digest, m.canary_weight
    FROM (
        SELECT id, moved_at, to_version_id, canary_version_id, canary_weight
        FROM registry_aliasmove
        -- The adapter as a scalar subquery, not a join: then the newest move is the first entry of
        -- the (adapter, alias, moved_at DESC, id DESC) index, however many moves the alias has.
        WHERE adapter_id = (SELECT id FROM registry_adapter WHERE namespace = %s AND name = %s)
          AND alias = %s AND moved_at <= %s
        ORDER BY moved_at DESC, id DESC
        LIMIT 1
    ) m
    JOIN registry_adapterversion v ON v.id = m.to_version_id
    LEFT JOIN registry_adapterversion c ON c.id = m.canary_version_id
"""


def alias_state_at(namespace: str, name: str, alias: str, at) -> AliasState | None:
    """What `namespace/name:alias` served at `at` (None: not set then, or no such adapter): the newest
    move at or before `at`, one descent of the (adapter, alias, moved_at) index."""
    with connection.cursor() as cursor:
        cursor.execute(_ALIAS_AT_SQL, [namespace, name, alias, at])
        row = cursor.fetchone()
    return AliasState(*row) if row is not None else None
