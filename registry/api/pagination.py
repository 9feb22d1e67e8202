from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from registry import keyset
from registry.errors import NotFound


class VersionCursorPagination(BasePagination):
    """Keyset pagination (registry/keyset.py) on the list's order, `-created_at, -id` unless a list
    says otherwise: each page is one range scan of a composite index, however deep and however
    many rows share a timestamp, and no COUNT(*) over the table is ever run.

    The envelope is `{next, previous, results}`; `next` and `previous` are links carrying an opaque
    `cursor`. A cursor that this list did not give out is a 404 `cursor_not_found`, not page one."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    cursor_query_param = "cursor"
    max_page_size = 200  # keeps every page well under 50 ms at 10^6 versions (BENCHMARKS.md)

    def get_page_size(self, request):
        """The requested page size; one outside 1..max_page_size is refused, not silently replaced,
        so a client never mistakes a shorter page for the end of the list."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [f"an integer from 1 to {self.max_page_size}"]})
        return int(raw)

    def paginate_queryset(self, queryset, request, view=None):
        ordering = keyset.Ordering.parse(self.ordering)
        size = self.get_page_size(request)
        raw = request.query_params.get(self.cursor_query_param)
        try:
            cursor = keyset.decode(raw, queryset, ordering) if raw else None  # empty: the first page, as in DRF
        except keyset.InvalidCursor as exc:  # 404, as DRF answers: no page sits at that cursor
            raise NotFound("cursor_not_found", f"{exc}; start again from the first page") from None
        self.request = request
        self.page = keyset.page(queryset, ordering, cursor, size)
        return self.page.rows

    def _link(self, cursor):
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, keyset.encode(cursor))

    def get_next_link(self):
        return self._link(self.page.next)

    def get_previous_link(self):
        return self._link(self.page.previous)

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "the next page, or null on the last one"},
                "previous": {**link, "description": "the previous page, or null on the first one"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "the opaque cursor of a `next` or `previous` link",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": "rows per page",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size, "default": self.page_size},
            },
        ]
