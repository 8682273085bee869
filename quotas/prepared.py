"""Run an ORM statement compiled once per connection: the hot path's reads and writes.

Building and compiling the annotated querysets of the state reads (correlated subqueries)
costs about 25 times what running them costs, and a check makes three. The queryset stays the
one definition of each read; it is compiled once per connection and shape, with sentinel
values that mark where each argument lands among the SQL parameters, and later runs bind the
real values in their place and turn rows into model instances as Django's own iterable does.

The ledger's writes (a new job or event, a job's new state) go the same way: Django's
compiler writes the INSERT or UPDATE once per model and field list, and each run only turns
the instance's values into parameters as ``Model.save()`` would. They send no save signals;
nothing listens for them on these models.
"""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import sql

SENTINEL_EPOCH = datetime(1901, 1, 1, tzinfo=UTC)


Read = tuple[str, Callable[..., models.QuerySet], dict]  # name, build, values, as first()


def first(name: str, build: Callable[..., models.QuerySet], **values) -> models.Model | None:
    """``build(**values).first()``, compiled once per connection for each shape (which of
    ``values`` are given). Values are strings or aware datetimes."""
    return first_each((name, build, values))[0]


def first_each(*reads: Read | None) -> list[models.Model | None]:
    """``first()`` of each read, in one statement and one round trip; None reads nothing.

    Each read's compiled query becomes a derived table, LEFT JOINed on a condition that is
    always true to a one-row table: the answer is one row holding every read's columns side
    by side, NULL where a read found nothing.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    cache = _cache(connection)
    parts, bound = [], []
    for read in reads:
        if read is None:
            continue
        name, build, values = read
        given = {key: value for key, value in values.items() if value is not None}
        shape = (name, tuple(sorted(given)))
        if shape not in cache:
            cache[shape] = _compile(connection, build, given, values)
        parts.append(shape)
        _, _, params, slots, _ = cache[shape]
        bound += [
            param if slot is None else _adapt(connection, given[slot])
            for param, slot in zip(params, slots, strict=True)
        ]
    found = iter(_run(connection, cache, parts, bound))
    return [None if read is None else next(found) for read in reads]


def _run(connection, cache: dict, parts: list, bound: list) -> list[models.Model | None]:
    if not parts:
        return []
    if len(parts) == 1:
        compiler, statement, _, _, converters = cache[parts[0]]
        with connection.cursor() as cursor:
            cursor.execute(statement, bound)
            rows = cursor.fetchall()
        return [next(_instances(connection, compiler, converters, rows), None)]
    joined = ("first_each", *parts)
    if joined not in cache:
        tables = "".join(
            f" LEFT JOIN ({cache[shape][1]}) quotas_read_{number} ON 1 = 1"
            for number, shape in enumerate(parts)
        )
        cache[joined] = f"SELECT * FROM (SELECT 1 AS quotas_one) quotas_one{tables}"
    with connection.cursor() as cursor:
        cursor.execute(cache[joined], bound)
        row = cursor.fetchone()
    found, start = [], 1
    for shape in parts:
        compiler, _, _, _, converters = cache[shape]
        width = len(compiler.select)
        own = row[start : start + width]
        start += width
        # Every row has a primary key: all NULL means the read found nothing.
        found.append(
            next(_instances(connection, compiler, converters, [own]), None)
            if any(value is not None for value in own)
            else None
        )
    return found


def insert(instance: models.Model) -> None:
    """``instance.save()`` of a new row, which learns its primary key."""
    connection = connections[DEFAULT_DB_ALIAS]
    meta = instance._meta
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    returning = connection.features.can_return_columns_from_insert  # SQLite 3.35+ can
    cache = _cache(connection)
    shape = ("insert", meta.label)
    if shape not in cache:
        query = sql.InsertQuery(type(instance))
        query.insert_values(fields, [instance])
        compiler = query.get_compiler(connection=connection)
        compiler.returning_fields = [meta.pk] if returning else None
        [(statement, params)] = compiler.as_sql()
        cache[shape] = _checked(statement, len(params), len(fields))
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(cache[shape], values)
        instance.pk = (
            cursor.fetchone()[0]
            if returning
            else connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
        )
    instance._state.adding, instance._state.db = False, connection.alias


def update(instance: models.Model, field_names: Iterable[str]) -> None:
    """``instance.save(update_fields=field_names)`` of a row that exists."""
    connection = connections[DEFAULT_DB_ALIAS]
    field_names = tuple(field_names)
    fields = [instance._meta.get_field(name) for name in field_names]
    raw = [field.pre_save(instance, False) for field in fields]
    values = [
        field.get_db_prep_save(value, connection) for field, value in zip(fields, raw, strict=True)
    ]
    # Django writes a None as a literal NULL, so which values are None is part of the shape.
    shape = ("update", instance._meta.label, *(value is None for value in values), *field_names)
    bound = [value for value in values if value is not None] + [instance.pk]
    cache = _cache(connection)
    if shape not in cache:
        query = sql.UpdateQuery(type(instance))
        query.add_update_fields(
            [(field, None, value) for field, value in zip(fields, raw, strict=True)]
        )
        query.add_filter("pk", instance.pk)
        statement, params = query.get_compiler(connection=connection).as_sql()
        cache[shape] = _checked(statement, len(params), len(bound))
    with connection.cursor() as cursor:
        cursor.execute(cache[shape], bound)
        if cursor.rowcount != 1:
            raise type(instance).DoesNotExist(f"{instance} is gone; nothing was updated")


def _checked(statement: str, compiled: int, bound: int) -> str:
    """The statement, once it is certain that later runs bind as many values as it takes."""
    if compiled != bound:
        raise ValueError(f"{statement} takes {compiled} parameters, not {bound}")
    return statement


def _cache(connection) -> dict:
    # Kept on this thread's connection wrapper, not on the process-wide django.db.connection
    # proxy: compiled statements belong to one connection, and threads each have their own.
    return connection.__dict__.setdefault("quotas_prepared", {})


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
