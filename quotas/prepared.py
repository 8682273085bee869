"""Run an ORM query shape compiled once per connection: the hot path's reads.

Building and compiling the annotated querysets of the state reads (correlated subqueries)
costs about 25 times what running them costs, and a check makes three. The queryset stays the
one definition of each read; it is compiled once per connection and shape, with sentinel
values that mark where each argument lands among the SQL parameters, and later runs bind the
real values in their place and turn rows into model instances as Django's own iterable does.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, models

SENTINEL_EPOCH = datetime(1901, 1, 1, tzinfo=UTC)


def first(name: str, build: Callable[..., models.QuerySet], **values) -> models.Model | None:
    """``build(**values).first()``, compiled once per connection for each shape (which of
    ``values`` are given). Values are strings or aware datetimes."""
    given = {key: value for key, value in values.items() if value is not None}
    # The wrapper of this thread's connection, not the process-wide django.db.connection proxy:
    # a compiled query belongs to one connection, and threads each have their own.
    connection = connections[DEFAULT_DB_ALIAS]
    cache = connection.__dict__.setdefault("quotas_prepared", {})
    shape = (name, tuple(sorted(given)))
    if shape not in cache:
        cache[shape] = _compile(connection, build, given, values)
    compiler, sql, params, slots, converters = cache[shape]
    bound = [
        param if slot is None else _adapt(connection, given[slot])
        for param, slot in zip(params, slots, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, bound)
        rows = cursor.fetchall()
    return next(_instances(connection, compiler, converters, rows), None)


def _compile(connection, build, given: dict, values: dict):
    sentinels = {key: _sentinel(index, value) for index, (key, value) in enumerate(given.items())}
    queryset = build(**{**values, **sentinels}).order_by("pk")[:1]
    compiler = queryset.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    marks = {_adapt(connection, sentinel): key for key, sentinel in sentinels.items()}
    slots = [marks.get(param) if isinstance(param, str | datetime) else None for param in params]
    missing = set(given) - set(slots)
    if missing:
        raise ValueError(
            f"{sorted(missing)} did not reach the SQL of {build.__name__} as parameters"
        )
    # Converters (e.g. SQLite's text to datetime) depend on the columns only: found once.
    columns = [column[0] for column in compiler.select[: compiler.col_count]]
    return compiler, sql, params, slots, compiler.get_converters(columns)


def _sentinel(index: int, value):
    if isinstance(value, datetime):
        return SENTINEL_EPOCH + timedelta(seconds=index + 1)
    if isinstance(value, str):
        return f"\x1fquotas-sentinel-{index}\x1f"
    raise TypeError(f"cannot prepare a query on a {type(value).__name__}")


def _adapt(connection, value):
    """A value as the ORM hands it to the database driver."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _instances(connection, compiler, converters, rows):
    """Rows to model instances with their annotations, as django.db.models.query.ModelIterable."""
    select, klass_info = compiler.select, compiler.klass_info
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    names = [column[0].target.attname for column in select[start:end]]
    model = klass_info["model"]
    converted = compiler.apply_converters(rows, converters) if converters else rows
    for row in converted:
        instance = model.from_db(connection.alias, names, row[start:end])
        for attribute, position in compiler.annotation_col_map.items():
            setattr(instance, attribute, row[position])
        yield instance
