"""Run an ORM statement compiled once per connection: the hot path's reads and writes.

Building and compiling the annotated querysets of the state reads (correlated subqueries)
costs about 25 times what running them costs, and a check makes three. The queryset stays the
one definition of each read; it is compiled once per connection and shape, with sentinel
values that mark where each argument lands among the SQL parameters, and later runs bind the
real values in their place and turn rows into model instances as Django's own iterable does.

The ledger's writes (a new job or event, a job's new state) go the same way: Django's
compiler writes the INSERT or UPDATE once per model and field list, and each run only turns
the instance's values into parameters as ``Model.save()`` would. They send no save signals;
nothing listens for them on these models. ``write()`` sends the writes of one transaction
together: on PostgreSQL, a dispatch's five writes are one statement.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
    cache = compiled(connection)
    parts, bound = _bind(connection, cache, reads)
    found = iter(_run(connection, cache, parts, bound))
    return [None if read is None else next(found) for read in reads]


def first_value_each(*reads: Read | None) -> list:
    """The first value of each read, a queryset of one column (``values_list(field)``), in
    one statement; None reads nothing, and a read that finds no row gives None.

    Each read is a scalar subquery of one SELECT, and the database evaluates them in the
    order given: the row locks they take (``select_for_update``) are taken in that order.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    cache = compiled(connection)
    parts, bound = _bind(connection, cache, reads)
    if not parts:
        return [None] * len(reads)
    shape = ("first_value_each", *parts)
    if shape not in cache:
        cache[shape] = "SELECT " + ", ".join(f"({cache[part][1]})" for part in parts)
    with connection.cursor() as cursor:
        cursor.execute(cache[shape], bound)
        row = cursor.fetchone()
    values = iter(_converted(cache[part], value) for part, value in zip(parts, row, strict=True))
    return [None if read is None else next(values) for read in reads]


def _bind(connection, cache: dict, reads) -> tuple[list, list]:
    """The compiled shape of each read, and every read's values in their parameters' places."""
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
    return parts, bound


def _converted(compiled_read, value):
    """A value of a one-column read as the ORM would hand it over (SQLite's durations, say)."""
    compiler, _, _, _, converters = compiled_read
    if value is None or not converters:
        return value
    [[converted]] = compiler.apply_converters([[value]], converters)
    return converted


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
        # Short aliases: a statement over 4 KiB is parsed anew by psycopg on every run.
        tables = "".join(
            f" LEFT JOIN ({cache[shape][1]}) r{number} ON 1 = 1"
            for number, shape in enumerate(parts)
        )
        cache[joined] = f"SELECT * FROM (SELECT 1) r{tables}"
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


@dataclass(frozen=True)
class Write:
    """One INSERT, UPDATE or upsert of at most one row, compiled and bound but not yet sent.

    ``done`` is told what became of the row: the new key of an inserted row, something true
    for a row updated, None if no row was written (an update of a row that is gone, or an
    upsert whose guard refused).
    """

    sql: str
    params: list
    returning: str  # the column PostgreSQL returns for the row written
    done: Callable[[Any], None]
    inserts_into: tuple[str, str] | None = None  # table and key column, for lastrowid


def write(*writes: Write | None) -> None:
    """Send the writes of one transaction, in one statement where the database allows, then
    tell each what became of its row; None writes nothing.

    On PostgreSQL the writes become one statement of data-modifying WITH queries: each runs
    exactly once, all see the same snapshot, and none sees the others' rows, which is why
    only writes to different rows are sent together. A statement that fails writes nothing.
    Elsewhere (SQLite, in-process, where a statement costs little) they run one by one, so
    callers send them inside ``transaction.atomic()``, as every service does.
    """
    writes = [entry for entry in writes if entry is not None]
    if not writes:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            results = _together(cursor, writes)
        else:
            results = [_alone(connection, cursor, entry) for entry in writes]
    for entry, result in zip(writes, results, strict=True):
        entry.done(result)


def _together(cursor, writes: list[Write]) -> list:
    if len(writes) == 1:
        [entry] = writes
        cursor.execute(f"{entry.sql} RETURNING {entry.returning}", entry.params)
        row = cursor.fetchone()
        return [None if row is None else row[0]]
    queries = ", ".join(
        f"quotas_write_{number} AS ({entry.sql} RETURNING {entry.returning})"
        for number, entry in enumerate(writes)
    )
    picks = ", ".join(f"(SELECT * FROM quotas_write_{number})" for number in range(len(writes)))
    cursor.execute(
        f"WITH {queries} SELECT {picks}", [param for entry in writes for param in entry.params]
    )
    return list(cursor.fetchone())


def _alone(connection, cursor, entry: Write):
    cursor.execute(entry.sql, entry.params)
    if cursor.rowcount != 1:
        return None
    if entry.inserts_into:
        return connection.ops.last_insert_id(cursor, *entry.inserts_into)
    return True


def inserting(instance: models.Model) -> Write:
    """``instance.save()`` of a new row, which then knows its primary key."""
    connection = connections[DEFAULT_DB_ALIAS]
    meta = instance._meta
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    cache = compiled(connection)
    shape = ("insert", meta.label)
    if shape not in cache:
        query = sql.InsertQuery(type(instance))
        query.insert_values(fields, [instance])
        [(statement, params)] = query.get_compiler(connection=connection).as_sql()
        cache[shape] = _checked(statement, len(params), len(fields))
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]

    def done(key) -> None:
        instance.pk = key
        instance._state.adding, instance._state.db = False, connection.alias

    key = meta.pk.column
    return Write(cache[shape], values, connection.ops.quote_name(key), done, (meta.db_table, key))


def updating(instance: models.Model, field_names: Iterable[str]) -> Write:
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
    cache = compiled(connection)
    if shape not in cache:
        query = sql.UpdateQuery(type(instance))
        query.add_update_fields(
            [(field, None, value) for field, value in zip(fields, raw, strict=True)]
        )
        query.add_filter("pk", instance.pk)
        statement, params = query.get_compiler(connection=connection).as_sql()
        cache[shape] = _checked(statement, len(params), len(bound))

    def done(updated) -> None:
        if updated is None:
            raise type(instance).DoesNotExist(f"{instance} is gone; nothing was updated")

    key = connection.ops.quote_name(instance._meta.pk.column)
    return Write(cache[shape], bound, key, done)


def _checked(statement: str, takes: int, bound: int) -> str:
    """The statement, once it is certain that later runs bind as many values as it takes."""
    if takes != bound:
        raise ValueError(f"{statement} takes {takes} parameters, not {bound}")
    return statement


def compiled(connection) -> dict:
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
