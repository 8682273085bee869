"""An admin request plans its statements for their values; an API request plans them once."""

import pytest
from django.db import connection

pytestmark = pytest.mark.postgres_only


def planning() -> tuple[int | None, str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        [mode] = cursor.fetchone()
    return connection.connection.prepare_threshold, mode


def test_an_admin_request_switches_its_connection_and_an_api_request_switches_it_back(
    login, client
):
    assert planning() == (5, "force_generic_plan")
    login("Viewers")
    assert client.get("/admin/").status_code == 200
    assert planning() == (None, "auto")
    assert client.get("/admin/quotas/agentallowance/").status_code == 200
    assert planning() == (None, "auto")
    assert client.get("/api/v1/health").status_code == 200
    assert planning() == (5, "force_generic_plan")


def generic_plans_of(sql_fragment: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%{sql_fragment}%"],
        )
        return [row[0] for row in cursor.fetchall()]


def test_a_repeated_admin_statement_is_planned_for_its_values_not_once_for_all(login, client):
    from quotas.models import Job

    def running(tag: str):
        # The tag makes each test's statement text its own, as psycopg knows statements by text.
        return list(Job.objects.filter(state="running", job_id__startswith=tag).values("pk"))

    for _ in range(10):
        running("api-")
    assert max(generic_plans_of("quotas_job")) >= 5  # prepared, one generic plan for all values
    login("Viewers")
    client.get("/admin/")  # the connection now plans as the admin wants
    before = sorted(generic_plans_of("quotas_job"))
    for _ in range(10):
        running("admin-")
    assert sorted(generic_plans_of("quotas_job")) == before  # not prepared, nor run generic
