"""Keyset pagination: a page is one range scan of an index on the list's order, however deep.

Lists are ordered on a key of one or two columns, e.g. `(-created_at, -id)`: the second column
breaks ties, so a million rows sharing one `created_at` (a bulk load in one statement) still page
in constant time. A cursor names the last (or first) row of a page by its key and the next page
starts strictly after it: `ROW(created_at, id) < ROW(%s, %s)`, which PostgreSQL answers from a
composite index on those columns. Nothing counts rows and nothing skips rows with OFFSET.

Django-free apart from the query expressions, so the API and the UI page the same way.
"""

import base64
import binascii
import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections, transaction
from django.db.models import F, Func, QuerySet, Value
from django.db.models.lookups import GreaterThan, LessThan

FORWARD = "next"
BACKWARD = "previous"


class InvalidCursor(ValueError):
    """The cursor was not one this list handed out (altered, truncated or from another list)."""


@dataclass(frozen=True)
class Cursor:
    direction: str  # FORWARD: rows after `key` in list order; BACKWARD: rows before it
    key: tuple  # the ordering columns' values of the row the page starts from


@dataclass(frozen=True)
class Ordering:
    """A list's order: column names, all descending or all ascending (mixed orders cannot use one
    row comparison)."""

    fields: tuple[str, ...]
    descending: bool

    @classmethod
    def parse(cls, ordering: tuple[str, ...]) -> "Ordering":
        descending = {name.startswith("-") for name in ordering}
        if len(descending) != 1 or not 1 <= len(ordering) <= 2:
            raise ValueError(f"keyset ordering must be one or two columns in one direction, not {ordering}")
        return cls(tuple(name.lstrip("-") for name in ordering), descending.pop())

    def order_by(self, reverse: bool = False) -> list[str]:
        descending = self.descending != reverse
        return [f"-{name}" if descending else name for name in self.fields]


@dataclass
class Page:
    rows: list
    next: Cursor | None
    previous: Cursor | None


def encode(cursor: Cursor) -> str:
    payload = json.dumps([cursor.direction, [str(value) for value in cursor.key]], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode(text: str, queryset: QuerySet, ordering: Ordering) -> Cursor:
    """The cursor in `text`, its values converted by the model's own fields; InvalidCursor if not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        direction, values = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InvalidCursor("not a cursor this list gave out") from None
    if direction not in (FORWARD, BACKWARD) or not isinstance(values, list) or len(values) != len(ordering.fields):
        raise InvalidCursor("not a cursor this list gave out")
    key = []
    for name, value in zip(ordering.fields, values, strict=True):
        field = queryset.model._meta.get_field(name)
        try:
            converted = field.to_python(value) if isinstance(value, str) else None
        except (DjangoValidationError, ValueError, OverflowError):
            converted = None
        if converted is None:
            raise InvalidCursor("not a cursor this list gave out")
        key.append(converted)
    return Cursor(direction, tuple(key))


def _after(queryset: QuerySet, ordering: Ordering, key: tuple, forward: bool):
    """Rows strictly after `key` in list order (forward) or strictly before it (backward)."""
    fields = [queryset.model._meta.get_field(name) for name in ordering.fields]
    values = [Value(value, output_field=field) for value, field in zip(key, fields, strict=True)]
    columns = [F(name) for name in ordering.fields]
    if len(columns) == 1:
        lhs, rhs = columns[0], values[0]
    else:
        lhs, rhs = (
            Func(*columns, function="ROW", output_field=fields[0]),
            Func(*values, function="ROW", output_field=fields[0]),
        )
    smaller = ordering.descending == forward  # descending lists go on towards smaller keys
    return queryset.filter(LessThan(lhs, rhs) if smaller else GreaterThan(lhs, rhs))


def key_of(row, ordering: Ordering) -> tuple:
    if isinstance(row, dict):
        return tuple(row[name] for name in ordering.fields)
    return tuple(getattr(row, name) for name in ordering.fields)


def page(queryset: QuerySet, ordering: Ordering, cursor: Cursor | None, size: int) -> Page:
    """One page of `size` rows of `queryset` in `ordering`, starting from `cursor` (None: the first page).

    Reads size + 1 rows to know whether another page follows; never counts. The joins are taken in
    the order the query names them (the listed table first, then what each row shows): that is the
    plan a keyset page wants, and letting PostgreSQL search every order of the seven tables of the
    adapter list cost 6 ms of planning for 2 ms of execution (BENCHMARKS.md, scale)."""
    with transaction.atomic(using=queryset.db), connections[queryset.db].cursor() as settings:
        settings.execute("SET LOCAL join_collapse_limit = 1")
        found = _page(queryset, ordering, cursor, size)
        settings.execute("SET LOCAL join_collapse_limit TO DEFAULT")  # inside a caller's transaction too
    return found


def _page(queryset: QuerySet, ordering: Ordering, cursor: Cursor | None, size: int) -> Page:
    if cursor is None or cursor.direction == FORWARD:
        scoped = queryset if cursor is None else _after(queryset, ordering, cursor.key, forward=True)
        rows = list(scoped.order_by(*ordering.order_by())[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        following = Cursor(FORWARD, key_of(rows[-1], ordering)) if more and rows else None
        preceding = Cursor(BACKWARD, key_of(rows[0], ordering)) if cursor is not None and rows else None
        return Page(rows, following, preceding)
    scoped = _after(queryset, ordering, cursor.key, forward=False)
    rows = list(scoped.order_by(*ordering.order_by(reverse=True))[: size + 1])
    more = len(rows) > size
    rows = rows[:size][::-1]
    preceding = Cursor(BACKWARD, key_of(rows[0], ordering)) if more and rows else None
    following = Cursor(FORWARD, key_of(rows[-1], ordering)) if rows else None
    return Page(rows, following, preceding)
