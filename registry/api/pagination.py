from rest_framework.pagination import CursorPagination


class VersionCursorPagination(CursorPagination):
    """Keyset pagination on creation time: each page is one indexed range scan,
    however deep, and no COUNT(*) over the whole table is ever run."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200  # keeps every page well under 50 ms at 100,000 versions (BENCHMARKS.md)
