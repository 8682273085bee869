"""Run an ORM statement compiled once per connection: the hot path's reads and writes.

Building and compiling the annotated querysets of the state reads (correlated subqueries)
costs many times what running them costs, and a check makes three (README, Performance). The
queryset stays the one definition of each read; it is compiled once per connection and
shape, with sentinel values that mark where each argument lands among the SQL parameters,
and later runs bind the real values in their place and turn rows into model instances as
Django's own iterable does.

The ledger's writes (a new job or event, a job's new state) go the same way: Django's
compiler writes the INSERT or UPDATE once per model and field list, and each run only turns
the instance's values into parameters as ``Model.save()`` would. They send no save signals;
nothing listens for them on these models. ``write()`` sends the writes of one transaction
together: on PostgreSQL, a dispatch's five writes are one statement.

The contract of a compiled read. A read is a builder registered with ``@statement(name)``:
a function of keyword arguments, each a string or an aware datetime (or None: not given),
returning a queryset. The statement is compiled once, from sentinel values, and run for
every later call with the real values bound in their place, so a builder:

- may decide what to build only from *which* arguments are given (the shape), never from
  their values: no ``if model == "x"``, no ``if job_id:`` on a value that may be "";
- must send every argument to the database as a parameter, unchanged (no ``value.lower()``,
  no slicing, no lists whose length changes the SQL);
- may read nothing but its arguments: not the clock, not a setting, not the database.

The first compile of each shape on each connection enforces this: the builder is also run
with the real values, and if its SQL or parameters differ from the sentinel compile's with
those values bound, ``ShapeError`` is raised. tests/test_prepared_contract.py runs every
registered read over generated states and holds its answer equal to the plain ORM's.

The contract of a batch of writes. ``write()`` sends them as one statement on PostgreSQL,
where data-modifying ``WITH`` queries all see one snapshot and cannot be ordered: two writes
to the same row in one batch would leave either one's result. ``write()`` refuses such a
batch with ``SameRowTwice`` (on every database, so that SQLite's tests catch it too).

This module (and quotas.upserts) uses Django internals: ``sql.InsertQuery``,
``sql.UpdateQuery.add_update_fields``, ``SQLCompiler.as_sql``, ``.select``, ``.klass_info``,
``.annotation_col_map``, ``.get_converters`` and ``.apply_converters``, ``Model.from_db``,
``Field.pre_save`` and ``.get_db_prep_save``, ``connection.ops.last_insert_id``. Django is
pinned below its next minor release (pyproject.toml) so that an upgrade is a deliberate step
with tests/test_prepared.py and tests/test_prepared_contract.py as its guard.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import sql
from django.db.models.sql.compiler import SQLCompiler

SENTINEL_EPOCH = datetime(1901, 1, 1, tzinfo=UTC)


class ShapeError(ValueError):
    """A builder's statement depends on more than which of its arguments are given."""


class SameRowTwice(ValueError):
    """A batch of writes names one row twice; PostgreSQL could not order the two."""


class Read(NamedTuple):
    """One registered read and the values to run it with, for ``first_each``."""

    name: str
    build: Callable[..., models.QuerySet]
    values: dict


# Every registered read, by name: the hot path's reads, and what the contract test runs.
READS: dict[str, Callable[..., models.QuerySet]] = {}


def statement(name: str):
    """Register a queryset builder as a read compiled once per connection (see the contract
    above); ``read(build, **values)`` then names it with its values."""

    def register(build):
        if READS.setdefault(name, build) is not build:
            raise ValueError(f"two reads are named {name!r}")
        build.statement_name = name
        return build

    return register


def read(build: Callable[..., models.QuerySet], **values) -> Read:
    return Read(build.statement_name, build, values)


class CompiledRead(NamedTuple):
    """A read compiled from sentinels: its SQL, its parameters, and for each parameter the
    argument whose value is bound there (None: a constant of the query)."""

    compiler: SQLCompiler
    sql: str
    params: list
    slots: list[str | None]
    converters: dict


class CompiledUpsert(NamedTuple):
    """quotas.upserts' statement for one usage model and shape: the constant defaults bound
    as parameters, and the fields whose default is written into the statement."""

    sql: str
    defaults: dict[str, Any]
    inlined: frozenset[str]


@dataclass
class Compiled:
    """What one connection has compiled, one dictionary for each kind of statement."""

    reads: dict[tuple, CompiledRead] = field(default_factory=dict)
    # Several reads as one statement: side by side (first_each) or as scalars (first_value_each).
    joined: dict[tuple, str] = field(default_factory=dict)
    # INSERT and UPDATE of one model and field list.
    writes: dict[tuple, str] = field(default_factory=dict)
    upserts: dict[tuple, CompiledUpsert] = field(default_factory=dict)


def compiled(connection) -> Compiled:
    # Kept on this thread's connection wrapper, not on the process-wide django.db.connection
    # proxy: compiled statements belong to one connection, and threads each have their own.
    try:
        return connection.quotas_prepared
    except AttributeError:
        connection.quotas_prepared = Compiled()
        return connection.quotas_prepared


def first(entry: Read) -> models.Model | None:
    """``build(**values).first()`` of one read."""
    return first_each(entry)[0]


def first_each(*reads: Read | None) -> list[models.Model | None]:
    """``build(**values).first()`` of each read, in one statement and one round trip; None
    reads nothing.

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
    if shape not in cache.joined:
        scalars = ", ".join(f"({cache.reads[part].sql})" for part in parts)
        cache.joined[shape] = f"SELECT {scalars}"
    with connection.cursor() as cursor:
        cursor.execute(cache.joined[shape], bound)
        row = cursor.fetchone()
    values = iter(
        _converted(cache.reads[part], value) for part, value in zip(parts, row, strict=True)
    )
    return [None if read is None else next(values) for read in reads]


def _bind(connection, cache: Compiled, reads) -> tuple[list, list]:
    """The compiled shape of each read, and every read's values in their parameters' places."""
    parts, bound = [], []
    for entry in reads:
        if entry is None:
            continue
        given = {key: value for key, value in entry.values.items() if value is not None}
        shape = (entry.name, tuple(sorted(given)))
        compiled_read = cache.reads.get(shape)
        if compiled_read is None:
            compiled_read = cache.reads[shape] = _compile(connection, entry, given)
        parts.append(shape)
        bound += _bound(connection, compiled_read, given)
    return parts, bound


def _bound(connection, compiled_read: CompiledRead, given: dict) -> list:
    return [
        param if slot is None else _adapt(connection, given[slot])
        for param, slot in zip(compiled_read.params, compiled_read.slots, strict=True)
    ]


def _converted(compiled_read: CompiledRead, value):
    """A value of a one-column read as the ORM would hand it over (SQLite's durations, say)."""
    if value is None or not compiled_read.converters:
        return value
    [[converted]] = compiled_read.compiler.apply_converters([[value]], compiled_read.converters)
    return converted


def _run(connection, cache: Compiled, parts: list, bound: list) -> list[models.Model | None]:
    if not parts:
        return []
    if len(parts) == 1:
        only = cache.reads[parts[0]]
        with connection.cursor() as cursor:
            cursor.execute(only.sql, bound)
            rows = cursor.fetchall()
        return [next(_instances(connection, only, rows), None)]
    joined = ("first_each", *parts)
    if joined not in cache.joined:
        # Short aliases: a statement over 4 KiB is parsed anew by psycopg on every run.
        tables = "".join(
            f" LEFT JOIN ({cache.reads[shape].sql}) r{number} ON 1 = 1"
            for number, shape in enumerate(parts)
        )
        cache.joined[joined] = f"SELECT * FROM (SELECT 1) r{tables}"
    with connection.cursor() as cursor:
        cursor.execute(cache.joined[joined], bound)
        row = cursor.fetchone()
    found, start = [], 1
    for shape in parts:
        compiled_read = cache.reads[shape]
        width = len(compiled_read.compiler.select)
        own = row[start : start + width]
        start += width
        # Every row has a primary key: all NULL means the read found nothing.
        found.append(
            next(_instances(connection, compiled_read, [own]), None)
            if any(value is not None for value in own)
            else None
        )
    return found


@dataclass(frozen=True)
class Write:
    """One INSERT, UPDATE or upsert of at most one row, compiled and bound but not yet sent.

    ``done`` is told what became of the row: the new key of an inserted row, something true
    for a row updated, None if no row was written (an update of a row that is gone, or an
    upsert whose guard refused). ``row`` names an existing row it writes (its table and key),
    None for a new one.
    """

    sql: str
    params: list
    returning: str  # the column PostgreSQL returns for the row written
    done: Callable[[Any], None]
    inserts_into: tuple[str, str] | None = None  # table and key column, for lastrowid
    row: tuple | None = None


def write(*writes: Write | None) -> None:
    """Send the writes of one transaction, in one statement where the database allows, then
    tell each what became of its row; None writes nothing.

    On PostgreSQL the writes become one statement of data-modifying WITH queries: each runs
    exactly once, all see the same snapshot, and none sees the others' rows, which is why
    two writes to one row are refused (``SameRowTwice``). A statement that fails writes
    nothing. Elsewhere (SQLite, in-process, where a statement costs little) they run one by
    one, so callers send them inside ``transaction.atomic()``, as every service does.
    """
    writes = [entry for entry in writes if entry is not None]
    if not writes:
        return
    rows = [entry.row for entry in writes if entry.row is not None]
    if len(set(rows)) != len(rows):
        twice = sorted({row for row in rows if rows.count(row) > 1}, key=repr)
        raise SameRowTwice(f"one batch of writes writes these rows twice: {twice}")
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
    if shape not in cache.writes:
        query = sql.InsertQuery(type(instance))
        query.insert_values(fields, [instance])
        [(statement, params)] = query.get_compiler(connection=connection).as_sql()
        cache.writes[shape] = _checked(statement, len(params), len(fields))
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]

    def done(key) -> None:
        instance.pk = key
        instance._state.adding, instance._state.db = False, connection.alias

    key = meta.pk.column
    returning = connection.ops.quote_name(key)
    return Write(cache.writes[shape], values, returning, done, (meta.db_table, key))


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
    if shape not in cache.writes:
        query = sql.UpdateQuery(type(instance))
        query.add_update_fields(
            [(field, None, value) for field, value in zip(fields, raw, strict=True)]
        )
        query.add_filter("pk", instance.pk)
        statement, params = query.get_compiler(connection=connection).as_sql()
        cache.writes[shape] = _checked(statement, len(params), len(bound))

    def done(updated) -> None:
        if updated is None:
            raise type(instance).DoesNotExist(f"{instance} is gone; nothing was updated")

    key = connection.ops.quote_name(instance._meta.pk.column)
    row = (instance._meta.db_table, instance.pk)
    return Write(cache.writes[shape], bound, key, done, row=row)


def _checked(statement: str, takes: int, bound: int) -> str:
    """The statement, once it is certain that later runs bind as many values as it takes."""
    if takes != bound:
        raise ValueError(f"{statement} takes {takes} parameters, not {bound}")
    return statement


def _compile(connection, entry: Read, given: dict) -> CompiledRead:
    sentinels = {key: _sentinel(index, value) for index, (key, value) in enumerate(given.items())}
    compiled_read = _compiled_read(connection, entry, sentinels)
    marks = {_adapt(connection, sentinel): key for key, sentinel in sentinels.items()}
    slots = [marks.get(p) if isinstance(p, str | datetime) else None for p in compiled_read.params]
    compiled_read = compiled_read._replace(slots=slots)
    missing = set(given) - set(slots)
    if missing:
        raise ValueError(
            f"{sorted(missing)} did not reach the SQL of {entry.build.__name__} as parameters"
        )
    # The contract: the real values must give the same statement, bound the same way.
    plain = _compiled_read(connection, entry, given)
    if (plain.sql, plain.params) != (compiled_read.sql, _bound(connection, compiled_read, given)):
        raise ShapeError(
            f"{entry.build.__name__} builds another statement for {given} than for any other "
            "values of the same arguments; see quotas/prepared.py"
        )
    return compiled_read


def _compiled_read(connection, entry: Read, values: dict) -> CompiledRead:
    queryset = entry.build(**{**entry.values, **values}).order_by("pk")[:1]
    compiler = queryset.query.get_compiler(connection=connection)
    statement, params = compiler.as_sql()
    # Converters (e.g. SQLite's text to datetime) depend on the columns only: found once.
    columns = [column[0] for column in compiler.select[: compiler.col_count]]
    return CompiledRead(compiler, statement, list(params), [], compiler.get_converters(columns))


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


def _instances(connection, compiled_read: CompiledRead, rows):
    """Rows to model instances with their annotations, as django.db.models.query.ModelIterable."""
    compiler = compiled_read.compiler
    select, klass_info = compiler.select, compiler.klass_info
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    names = [column[0].target.attname for column in select[start:end]]
    model = klass_info["model"]
    converters = compiled_read.converters
    converted = compiler.apply_converters(rows, converters) if converters else rows
    for row in converted:
        instance = model.from_db(connection.alias, names, row[start:end])
        for attribute, position in compiler.annotation_col_map.items():
            setattr(instance, attribute, row[position])
        yield instance
