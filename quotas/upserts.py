"""Two writes the ORM cannot express in one statement, in SQL that SQLite and PostgreSQL share.

Both are ``INSERT ... ON CONFLICT``: atomic against a concurrent insert of the same key, so a
new day's first reports (or a new agent's first requests) racing each other neither fail on
the unique constraint nor lose an increment. The usage upsert is handed back as a
``prepared.Write``, so that it travels with the transaction's other writes.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from quotas import prepared
from quotas.models import ALLOWANCE_LIMITS, AgentAllowance
from quotas.prepared import Write
from quotas.validators import BIGINT_MAX


def add_to_usage(
    usage_model: type[models.Model],
    key: dict[str, Any],
    *,
    now: datetime,
    add: dict[str, int] | None = None,
    set_: dict[str, Any] | None = None,
    done: Callable[[Any], None],
) -> Write:
    """Add to (and set) counters of the usage row for ``key``, creating it if needed: a write
    for ``prepared.write``, whose ``done`` is told None if an addition would overflow 64 bits
    (and nothing changed): PostgreSQL would raise and SQLite would silently turn the counter
    into a float.
    """
    add, set_ = add or {}, set_ or {}
    fields = [f for f in usage_model._meta.concrete_fields if not f.primary_key]
    if any(f.name == "updated_at" for f in fields):
        set_ = {**set_, "updated_at": now}
    given = {**key, **add, **set_}
    shape = ("add_to_usage", usage_model._meta.label, tuple(key), tuple(add), tuple(set_))
    db = connections[DEFAULT_DB_ALIAS]  # this thread's own, where its statements are cached
    cache = prepared.compiled(db).upserts
    if shape not in cache:
        # A field the shape leaves out takes its default; a constant one is prepared once,
        # and a 0 or NULL is written into the statement itself: psycopg caches how it parses
        # a statement of at most 50 parameters, and a dispatch's writes go as one statement.
        defaults = {
            f.name: f.get_db_prep_save(f.get_default(), db)
            for f in fields
            if f.name not in given and not callable(f.default)
        }
        literals = {name: _literal(value) for name, value in defaults.items()}
        literals = {name: sql for name, sql in literals.items() if sql is not None}
        statement = _upsert(usage_model, fields, key, add, set_, literals)
        bound = {name: value for name, value in defaults.items() if name not in literals}
        cache[shape] = prepared.CompiledUpsert(statement, bound, frozenset(literals))
    statement, defaults, inlined = cache[shape]
    values = [
        defaults[f.name]
        if f.name in defaults
        else f.get_db_prep_save(given[f.name] if f.name in given else f.get_default(), db)
        for f in fields
        if f.name not in inlined
    ]
    guards = [BIGINT_MAX - amount for amount in add.values()]
    row = (usage_model._meta.db_table, *key.values())
    return Write(statement, [*values, *guards], "1", done, row=row)


def _literal(value) -> str | None:
    """A constant as SQL text, for the few that are safe to write so: NULL and integers."""
    if value is None:
        return "NULL"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    return None


def _upsert(
    usage_model, fields: list, key: dict, add: dict, set_: dict, literals: dict[str, str]
) -> str:
    qn = connection.ops.quote_name
    table = qn(usage_model._meta.db_table)
    assignments = [f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in add]
    assignments += [f"{qn(c)} = excluded.{qn(c)}" for c in set_]
    guards = [f"{table}.{qn(c)} <= %s" for c in add] or ["1 = 1"]
    return (
        f"INSERT INTO {table} ({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(literals.get(f.name, '%s') for f in fields)}) "
        f"ON CONFLICT ({', '.join(qn(c) for c in key)}) DO UPDATE SET {', '.join(assignments)} "
        f"WHERE {' AND '.join(guards)}"
    )


def lock_copy_of_default_allowance(agent_id: str, default_id: str, *, now: datetime) -> bool:
    """Give ``agent_id`` an allowance of its own copied from ``default_id``, and lock it.

    Returns False if there is no default to copy. When two first requests of a new agent
    race, the loser's no-op DO UPDATE waits for the winner, then locks the winner's row, so
    both end up holding the lock, in turn, in one statement and without an error.
    """
    qn = connection.ops.quote_name
    meta = AgentAllowance._meta
    table = qn(meta.db_table)
    columns = ", ".join(qn(meta.get_field(name).column) for name in ALLOWANCE_LIMITS)
    stamp = meta.get_field("created_at").get_db_prep_save(now, connection)
    agent = qn("agent_id")
    sql = (
        f"INSERT INTO {table} ({agent}, {columns}, {qn('created_at')}, {qn('updated_at')}) "
        f"SELECT %s, {columns}, %s, %s FROM {table} WHERE {agent} = %s "
        f"ON CONFLICT ({agent}) DO UPDATE SET {agent} = excluded.{agent} "
        f"RETURNING {qn('id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [agent_id, stamp, stamp, default_id])
        return cursor.fetchone() is not None
