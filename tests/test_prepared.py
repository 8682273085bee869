"""quotas.prepared: a query shape compiled once per connection, run with new values."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from quotas import prepared, selectors, services, upserts
from quotas.models import AgentAllowance, AgentUsage, Job, UsageEvent
from quotas.validators import BIGINT_MAX
from tests.plans import executed_plan


@prepared.statement("tests.by_agent")
def by_agent(*, agent_id, since=None):
    queryset = AgentAllowance.objects.filter(agent_id=agent_id)
    return queryset if since is None else queryset.filter(created_at__gte=since)


def first_by_agent(**values):
    return prepared.first(prepared.read(by_agent, **values))


def test_values_are_bound_anew_on_every_run(make_allowance, now, django_assert_num_queries):
    make_allowance("a", daily_token_limit=1)
    make_allowance("b", daily_token_limit=2)
    assert first_by_agent(agent_id="a").daily_token_limit == 1
    with django_assert_num_queries(1):
        assert first_by_agent(agent_id="b").daily_token_limit == 2
    assert first_by_agent(agent_id="nobody") is None
    later = now + timedelta(days=3650)
    assert first_by_agent(agent_id="a", since=later) is None


def test_annotations_come_back_converted_as_the_orm_gives_them(make_allowance, now):
    make_allowance(concurrent_jobs=5)
    services.dispatch(agent_id="agent-1", job_id="j", now=now)
    state = selectors.agent_state("agent-1", now=now, job_id="j")
    plain = selectors.allowances_with_usage(now).get(agent_id="agent-1")
    assert (state.running_jobs, state.jobs_started, state.oldest_running_at) == (1, 1, now)
    assert state.oldest_running_at == plain.oldest_running_at
    assert state.existing_job_pk is not None


def test_a_value_that_does_not_become_a_parameter_is_refused(db):
    def inlined(*, agent_id):
        return AgentAllowance.objects.all()  # never uses agent_id

    with pytest.raises(ValueError, match="did not reach the SQL"):
        prepared.first(prepared.Read("tests.inlined", inlined, {"agent_id": "a"}))


@pytest.mark.django_db(transaction=True)
def test_each_threads_connection_keeps_its_own_compiled_queries(make_allowance):
    import threading

    from django.db import DEFAULT_DB_ALIAS, connections

    make_allowance("a", daily_token_limit=1)
    assert first_by_agent(agent_id="a").daily_token_limit == 1
    seen = {}

    def other_thread():
        try:
            own = connections[DEFAULT_DB_ALIAS]
            seen["before"] = "quotas_prepared" in own.__dict__
            seen["limit"] = first_by_agent(agent_id="a").daily_token_limit
            seen["after"] = ("tests.by_agent", ("agent_id",)) in own.quotas_prepared.reads
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=30)
    assert seen == {"before": False, "limit": 1, "after": True}


def test_several_reads_come_back_from_one_query_each_in_its_place(
    make_allowance, make_model_quota, make_repo_limit, now, django_assert_num_queries
):
    make_allowance("a", daily_token_limit=1)
    make_allowance("b", daily_token_limit=2)
    make_model_quota("m", daily_token_budget=30, hourly_rate_limit=5)
    make_model_quota("free", daily_token_budget=30)
    make_repo_limit("o/r", max_daily_prs=4)
    services.dispatch(agent_id="a", job_id="j", model="m", now=now)
    services.dispatch(agent_id="a", job_id="k", model="free", now=now)
    with django_assert_num_queries(1):
        agent, model, repo = selectors.states("a", "m", "o/r", now=now, job_id="j")
    assert (agent.allowance.daily_token_limit, agent.running_jobs) == (1, 2)
    assert agent.existing_job_pk is not None
    assert (model.quota.daily_token_budget, model.started_last_hour) == (30, 1)
    assert model.oldest_in_window == now
    assert (repo.limit.max_daily_prs, repo.prs_opened) == (4, 0)
    # Found nothing, asked nothing: None in its place, whatever the others found.
    with django_assert_num_queries(1):
        assert selectors.states("b", "unknown", "", now=now)[1:] == (None, None)
    agent, model, repo = selectors.states("nobody", "m", "o/r", now=now)
    assert agent is None and model.quota.model == "m" and repo.limit.repo == "o/r"
    # Without an hourly limit the rules need no count of the last hour, and none is made.
    free = selectors.states("a", "free", "", now=now)[1]
    assert (free.quota.model, free.started_last_hour, free.oldest_in_window) == ("free", 0, None)
    assert selectors.model_quotas_with_usage(now).get(model="free").started_last_hour == 1
    assert selectors.states("b", "", "", now=now)[0].allowance.daily_token_limit == 2
    with django_assert_num_queries(0):
        assert prepared.first_each(None, None) == [None, None]


def test_an_inserted_row_reads_back_as_the_orm_saved_it(db, now):
    job = Job(agent_id="a", job_id="j1", model="m", state="running", started_at=now)
    job.decision = {"allowed": True, "reason": "<b>\u00e9</b>"}
    prepared.write(prepared.inserting(job))
    assert job.pk is not None and job._state.adding is False
    stored = Job.objects.get(pk=job.pk)
    assert (stored.agent_id, stored.job_id, stored.model, stored.state) == (
        "a",
        "j1",
        "m",
        "running",
    )
    assert (stored.started_at, stored.ended_at, stored.tokens_charged) == (now, None, 0)
    assert stored.decision == {"allowed": True, "reason": "<b>\u00e9</b>"}
    assert stored.created_at == job.created_at  # auto_now_add filled in as save() would
    second = Job(agent_id="a", job_id="j2", state="running")
    prepared.write(prepared.inserting(second))
    assert second.pk != job.pk and Job.objects.count() == 2


def test_an_update_writes_the_named_fields_whether_they_become_null_or_not(db, now):
    job = Job(agent_id="a", job_id="j1", state="running", started_at=now, tokens_in=5)
    prepared.write(prepared.inserting(job))
    job.state, job.ended_at, job.tokens_in = "completed", now, 7
    prepared.write(prepared.updating(job, ["state", "ended_at"]))
    stored = Job.objects.get(pk=job.pk)
    assert (stored.state, stored.ended_at, stored.tokens_in) == ("completed", now, 5)
    # None is written as a literal NULL by Django: another shape, compiled on its own.
    job.ended_at, job.started_at = None, now + timedelta(hours=1)
    prepared.write(prepared.updating(job, ["started_at", "ended_at"]))
    stored = Job.objects.get(pk=job.pk)
    assert (stored.started_at, stored.ended_at) == (now + timedelta(hours=1), None)
    job.ended_at = now
    prepared.write(prepared.updating(job, ["started_at", "ended_at"]))
    assert Job.objects.get(pk=job.pk).ended_at == now


def test_an_update_of_a_row_that_is_gone_raises_and_writes_nothing(db):
    job = Job(agent_id="a", job_id="j1", state="running")
    prepared.write(prepared.inserting(job))
    Job.objects.filter(pk=job.pk).delete()
    job.state = "completed"
    with pytest.raises(Job.DoesNotExist, match="a/j1 is gone"):
        prepared.write(prepared.updating(job, ["state"]))
    assert Job.objects.count() == 0


def usage_write(agent_id, now, tokens, seen):
    key = {"agent_id": agent_id, "period_start": now}
    return upserts.add_to_usage(
        AgentUsage, key, now=now, add={"tokens_used": tokens}, done=seen.append
    )


def test_the_writes_of_a_transaction_go_in_one_statement_on_postgresql(
    db, now, django_assert_num_queries
):
    seen = []
    job = Job(agent_id="a", job_id="j1", model="m", state="running", started_at=now)
    event = UsageEvent(event="job_started", agent_id="a", job_id="j1", received_at=now)
    event.period_start = now
    together = connection.vendor == "postgresql"
    with django_assert_num_queries(1 if together else 3):
        prepared.write(
            prepared.inserting(job), usage_write("a", now, 7, seen), prepared.inserting(event)
        )
    assert job.pk == Job.objects.get().pk and event.pk == UsageEvent.objects.get().pk
    assert seen == [1 if together else True]
    with django_assert_num_queries(1 if together else 2):
        prepared.write(usage_write("a", now, 5, seen), None, usage_write("b", now, 1, seen))
    assert dict(AgentUsage.objects.values_list("agent_id", "tokens_used")) == {"a": 12, "b": 1}
    with django_assert_num_queries(0):
        prepared.write(None)


def test_an_upsert_its_guard_refuses_is_told_no_row_was_written(db, now):
    seen = []
    prepared.write(usage_write("a", now, BIGINT_MAX, seen))
    prepared.write(usage_write("a", now, 1, seen), usage_write("b", now, 1, seen))
    assert seen[1:] == [None, seen[0]]
    assert dict(AgentUsage.objects.values_list("agent_id", "tokens_used")) == {
        "a": BIGINT_MAX,
        "b": 1,
    }


def test_a_write_that_fails_leaves_nothing_of_its_batch(db, now):
    job = Job(agent_id="a", job_id="j1", state="running", started_at=now)
    twice = Job(agent_id="a", job_id="j1", state="running", started_at=now)  # same key
    with pytest.raises(IntegrityError), transaction.atomic():
        prepared.write(usage_write("a", now, 3, []), prepared.inserting(job))
        prepared.write(usage_write("a", now, 4, []), prepared.inserting(twice))
    assert (Job.objects.count(), AgentUsage.objects.count()) == (0, 0)


@pytest.mark.postgres_only
def test_postgresql_prepares_the_hot_path_once_a_connection_repeats_it(make_allowance, now):
    from django.db import connection

    make_allowance("a", daily_token_limit=100)

    def prepared_on_server():
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in cursor.fetchall()]

    services.check(agent_id="a", now=now)
    assert not any("quotas_agentallowance" in sql for sql in prepared_on_server())
    for _ in range(5):
        assert services.check(agent_id="a", now=now).remaining_tokens == 100
    # Parsed and planned once; later checks only bind the agent and the day.
    assert sum("quotas_agentallowance" in sql for sql in prepared_on_server()) == 1
    assert services.check(agent_id="a", now=now).remaining_tokens == 100
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["%quotas_agentallowance%"],
        )
        generic, custom = cursor.fetchone()
    assert (generic, custom) == (2, 0)


@pytest.mark.postgres_only
def test_postgresql_never_reads_the_last_hour_of_a_model_without_an_hourly_limit(
    make_allowance, make_model_quota, now
):
    make_allowance("a")
    make_model_quota("free", daily_token_budget=30)
    for n in range(3):
        services.dispatch(agent_id="a", job_id=f"j{n}", model="free", now=now)
    assert selectors.model_state("free", now=now).started_last_hour == 0
    nodes = executed_plan(lambda: selectors.model_state("free", now=now))
    job_scans = [n for n in nodes if n.get("Relation Name") == "quotas_job"]
    assert len(job_scans) == 2  # the count and the earliest start, both planned...
    assert [scan["Actual Loops"] for scan in job_scans] == [0, 0]  # ...and never run


@pytest.mark.postgres_only
def test_postgresql_counts_a_busy_hour_from_minutes_and_one_minute_of_jobs(
    make_allowance, make_model_quota, now
):
    make_allowance("a")
    make_model_quota("busy", hourly_rate_limit=10**6)
    at = now + timedelta(seconds=30)  # the window begins at 11:00:30, inside the minute 11:00
    for n in range(120):  # two jobs a minute, at :00 and :45, from 11:00:45 to 12:00:00
        started = now - timedelta(minutes=n // 2, seconds=0 if n % 2 else 15)
        services.record_usage(
            agent_id="a", job_id=f"j{n}", event="job_started", model="busy", now=started
        )
    assert selectors.model_state("busy", now=at).started_last_hour == 120
    nodes = executed_plan(lambda: selectors.model_state("busy", now=at))
    job_rows = [
        n["Actual Rows"] * n["Actual Loops"]
        for n in nodes
        if n.get("Relation Name") == "quotas_job"
    ]
    minute_rows = [
        n["Actual Rows"] * n["Actual Loops"]
        for n in nodes
        if n.get("Relation Name") == "quotas_modelminuteusage"
    ]
    # The cut minute's one job inside the window (11:00:45), and the earliest start; never
    # the hour's 120 jobs.
    assert job_rows == [1, 1]
    assert sum(minute_rows) == 60  # 11:01 to 12:00
