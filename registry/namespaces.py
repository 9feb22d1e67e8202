"""Distinct values of a column by skip scan: a few index probes however many rows there are.

`SELECT DISTINCT namespace FROM registry_adapter` reads every one of a million rows. A skip scan
asks the btree for the smallest value greater than the previous one instead, one probe a value,
as a recursive CTE (PostgreSQL has no native skip scan before 18): listing 20 namespaces costs
21 probes of the unique (namespace, name) index whether there are ten names or ten million.
The outer LIMIT stops the recursion, since PostgreSQL evaluates a recursive CTE lazily.

The filter drop-downs of the adapter list use the same walk over the (column, created_at, id)
keyset indexes for their short vocabularies (PEFT types, ranks, pushers).
"""

from django.db import connection

SUGGESTIONS_LIMIT = 20
SUGGESTIONS_MAX = 100

# Values from `prefix` on in index order; the walk stops at the first one outside the prefix,
# since every value with a prefix sorts together after it (the databases we run on use the C
# collation; under a linguistic one, punctuation such as "-" can sort a value away from its prefix).
_NAMESPACES_SQL = """
WITH RECURSIVE found(namespace) AS (
    (SELECT namespace FROM registry_adapter WHERE namespace >= %(prefix)s ORDER BY namespace LIMIT 1)
    UNION ALL
    SELECT (
        SELECT a.namespace FROM registry_adapter a
        WHERE a.namespace > found.namespace ORDER BY a.namespace LIMIT 1
    )
    FROM found WHERE starts_with(found.namespace, %(prefix)s)
)
SELECT namespace FROM found WHERE starts_with(namespace, %(prefix)s) LIMIT %(limit)s
"""


def namespace_suggestions(prefix: str, limit: int = SUGGESTIONS_LIMIT) -> list[str]:
    """Adapter namespaces that start with `prefix` (case-sensitive, like namespaces), in order,
    at most `limit`: `limit` + 1 probes of the (namespace, name) index."""
    limit = max(1, min(limit, SUGGESTIONS_MAX))
    with connection.cursor() as cursor:
        cursor.execute(_NAMESPACES_SQL, {"prefix": prefix.replace("\x00", ""), "limit": limit})
        return [row[0] for row in cursor.fetchall()]


# Columns whose distinct values the adapter list offers; each leads a (column, created_at, id)
# index (migration 0015), so every step below is one probe. Never built from user input.
_VERSION_COLUMNS = {"peft_type", "r", "created_by_id"}

_DISTINCT_SQL = """
WITH RECURSIVE found(value) AS (
    (SELECT {column} FROM registry_adapterversion WHERE {column} IS NOT NULL ORDER BY {column} LIMIT 1)
    UNION ALL
    SELECT (
        SELECT v.{column} FROM registry_adapterversion v
        WHERE v.{column} > found.value ORDER BY v.{column} LIMIT 1
    )
    FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL LIMIT %s
"""


def adapter_version_distinct(column: str, limit: int = SUGGESTIONS_MAX) -> list:
    """The distinct non-null values of an adapter version column, ascending, at most `limit`."""
    if column not in _VERSION_COLUMNS:
        raise ValueError(f"no skip scan over {column!r}")
    with connection.cursor() as cursor:
        cursor.execute(_DISTINCT_SQL.format(column=column), [limit])
        return [row[0] for row in cursor.fetchall()]
