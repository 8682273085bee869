"""What PostgreSQL did to run a statement, for tests that assert on query plans."""

from django.db import connection


def executed_plan(call) -> list[dict]:
    """Run ``call()``, which must send exactly one statement, then EXPLAIN ANALYZE that same
    statement with the same parameters; return every node of its plan, subplans included."""
    statements = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        call()
    [(sql, params)] = statements
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        [[explained]] = cursor.fetchone()
    return list(_nodes(explained["Plan"]))


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)
