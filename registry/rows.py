"""A row of several joined tables, read with SQL written once and built into model instances.

For the few reads every request or every push makes (the API token and its user, a push's base):
the ORM's compiler and row handling took 1-3 ms of each, the statement itself a fraction of one.
The instances are what the ORM would build (`Model.from_db`, the fields' own converters), so the
rest of the code cannot tell them apart; tests hold each such read to its ORM twin.
"""

from django.db import connection
from django.db.models import Model


def select_list(parts: list[tuple[type[Model], str]]) -> str:
    """`alias.column, ...` for every concrete field of each (model, alias), in that order."""
    return ", ".join(f"{alias}.{field.column}" for model, alias in parts for field in model._meta.concrete_fields)


def fetch_instances(sql: str, params, models: list[type[Model]]) -> list[Model | None] | None:
    """The first row of `sql` (whose select list is select_list of `models`) as one instance per
    model, None for a model whose columns are all NULL (an outer join that found nothing); None
    when there is no row."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    instances, start = [], 0
    for model in models:
        fields = model._meta.concrete_fields
        values = row[start : start + len(fields)]
        start += len(fields)
        if all(value is None for value in values):
            instances.append(None)
            continue
        converted = [_from_db(field, value) for field, value in zip(fields, values, strict=True)]
        instances.append(model.from_db(connection.alias, [field.attname for field in fields], converted))
    return instances


def _from_db(field, value):
    """A column's value as the ORM hands it to the model: through the backend's and the field's
    converters (JSON decoded, and the like), as the SQL compiler applies them."""
    column = field.cached_col
    for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = converter(value, column, connection)
    return value
