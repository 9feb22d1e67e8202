from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class VersionCursorPagination(CursorPagination):
    """Keyset pagination on creation time: each page is one indexed range scan,
    however deep, and no COUNT(*) over the whole table is ever run."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200  # keeps every page well under 50 ms at 100,000 versions (BENCHMARKS.md)

    def get_page_size(self, request):
        """The requested page size; one outside 1..max_page_size is refused, not silently replaced,
        so a client never mistakes a shorter page for the end of the list."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [f"an integer from 1 to {self.max_page_size}"]})
        return int(raw)

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
        cursor, page_size = super().get_schema_operation_parameters(view)
        page_size["schema"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": self.max_page_size,
            "default": self.page_size,
        }
        return [cursor, page_size]
