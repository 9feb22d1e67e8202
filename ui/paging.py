"""Keyset ("Newer" / "Older") pages for the UI's lists, on the API's order and cursors.

Django's Paginator counts every row (COUNT(*)) and skips to a page with OFFSET: both read the
whole list at a million adapters. Here a page is one range scan of the (created_at, id) index
from a cursor (registry/keyset.py, the same cursors the API hands out), and the count shown is
capped: at most COUNT_CAP + 1 index entries are read, and anything above shows as "1,000+".
"""

from dataclasses import dataclass

from django.db.models import QuerySet

from registry import keyset, selectors
from registry.selectors import CappedCount

PAGE_SIZE = 25
# Counted on every keystroke of the live search: at most this many rows are read to count.
COUNT_CAP = 1000
NEWEST_FIRST = keyset.Ordering.parse(("-created_at", "-id"))
CURSOR_PARAM = "cursor"


def capped_count(queryset: QuerySet, cap: int = COUNT_CAP) -> CappedCount:
    return selectors.capped_count(queryset, cap)


@dataclass
class UIPage:
    rows: list
    count: CappedCount | None
    previous_query: str | None  # the page before this one in list order (None on the first)
    next_query: str | None  # the page after it (None on the last)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def has_other_pages(self) -> bool:
        return self.previous_query is not None or self.next_query is not None


def _query_with(query, cursor: keyset.Cursor | None) -> str | None:
    if cursor is None:
        return None
    query = query.copy()
    query.pop("page", None)
    query[CURSOR_PARAM] = keyset.encode(cursor)
    return query.urlencode()


def keyset_page(
    request, queryset: QuerySet, *, size: int = PAGE_SIZE, count: bool = True, ordering=NEWEST_FIRST
) -> UIPage:
    """The page of `queryset` the request's cursor names (the newest page when none, or when it is not
    one of ours: a stale link shows the first page rather than an error), links keep the other filters."""
    raw = request.GET.get(CURSOR_PARAM)
    try:
        cursor = keyset.decode(raw, queryset, ordering) if raw else None
    except keyset.InvalidCursor:
        cursor = None
    found = keyset.page(queryset, ordering, cursor, size)
    return UIPage(
        rows=found.rows,
        count=capped_count(queryset) if count else None,
        previous_query=_query_with(request.GET, found.previous),
        next_query=_query_with(request.GET, found.next),
    )
