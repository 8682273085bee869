"""Each operation costs a fixed number of SQL queries, however much history is stored.

These run outside the per-test transaction (transaction=True) so that the counts are those of
production, without the savepoints a test transaction would add. BEGIN and COMMIT count.
"""

from datetime import timedelta

import pytest
from django.db import connection

from quotas import services
from quotas.models import (
    AgentAllowance,
    AgentUsage,
    Job,
    ModelQuota,
    ModelUsage,
    RepoLimit,
    RepoUsage,
    UsageEvent,
)
from quotas.periods import day_start
from tests.plans import executed_plan

pytestmark = pytest.mark.django_db(transaction=True)

CHECK_BUDGET = 4
DISPATCH_BUDGET = 12
REPORT_BUDGET = 12


def writes(count: int) -> int:
    """Statements that ``count`` writes of one transaction take: on PostgreSQL they go
    together (prepared.write)."""
    return 1 if connection.vendor == "postgresql" else count


def load_history(now, agents=40, days=30, jobs_per_agent=10):
    """Many agents, days of usage and finished jobs, none of which today's checks may scan."""
    AgentAllowance.objects.bulk_create(
        AgentAllowance(agent_id=f"bulk-{a}", daily_token_limit=10**6) for a in range(agents)
    )
    AgentUsage.objects.bulk_create(
        AgentUsage(
            agent_id=f"bulk-{a}", period_start=day_start(now - timedelta(days=d)), tokens_used=d
        )
        for a in range(agents)
        for d in range(1, days)
    )
    ModelUsage.objects.bulk_create(
        ModelUsage(
            model="claude-sonnet", period_start=day_start(now - timedelta(days=d)), tokens_used=d
        )
        for d in range(1, days)
    )
    RepoUsage.objects.bulk_create(
        RepoUsage(
            repo="octo-org/api", period_start=day_start(now - timedelta(days=d)), prs_opened=1
        )
        for d in range(1, days)
    )
    Job.objects.bulk_create(
        Job(
            agent_id=f"bulk-{a}",
            job_id=f"old-{j}",
            model="claude-sonnet",
            state="completed",
            started_at=now - timedelta(days=1, minutes=j),
        )
        for a in range(agents)
        for j in range(jobs_per_agent)
    )


@pytest.fixture
def limits(now):
    AgentAllowance.objects.create(
        agent_id="agent-1",
        daily_token_limit=10**6,
        daily_job_limit=100,
        concurrent_jobs=50,
        max_job_duration=timedelta(hours=1),
        model_allowlist=["claude-sonnet"],
    )
    ModelQuota.objects.create(
        model="claude-sonnet",
        daily_token_budget=10**9,
        hourly_rate_limit=1000,
        cost_ceiling=10**6,
        input_price_per_mtok=3,
        output_price_per_mtok=15,
    )
    RepoLimit.objects.create(
        repo="octo-org/api",
        max_daily_prs=50,
        max_daily_issues=50,
        cooldown_after_failure=timedelta(minutes=5),
    )


def full_check(now):
    return services.check(
        agent_id="agent-1", model="claude-sonnet", repo="octo-org/api", action="pr", now=now
    )


@pytest.mark.parametrize("history", [False, True], ids=["empty", "with-history"])
def test_check_costs_one_query(limits, now, history, django_assert_num_queries):
    if history:
        load_history(now)
    services.dispatch(
        agent_id="agent-1", job_id="warm", model="claude-sonnet", repo="octo-org/api", now=now
    )
    with django_assert_num_queries(1):  # the agent's, model's and repo's state together
        assert full_check(now).allowed is True


def test_check_of_a_new_agent_from_the_default_stays_within_budget(
    limits, now, django_assert_max_num_queries
):
    AgentAllowance.objects.create(agent_id="*", daily_token_limit=10)
    with django_assert_max_num_queries(CHECK_BUDGET):
        result = services.check(
            agent_id="newcomer", model="claude-sonnet", repo="octo-org/api", now=now
        )
    assert (result.allowed, result.remaining_tokens) == (True, 10)


def test_check_that_expires_an_overdue_job_stays_within_budget(
    limits, now, django_assert_max_num_queries
):
    services.dispatch(agent_id="agent-1", job_id="old", now=now - timedelta(hours=2))
    with django_assert_max_num_queries(CHECK_BUDGET):
        assert full_check(now).allowed is True
    assert Job.objects.get(job_id="old").state == "expired"


@pytest.mark.parametrize("history", [False, True], ids=["empty", "with-history"])
def test_dispatch_stays_within_budget(limits, now, history, django_assert_max_num_queries):
    if history:
        load_history(now)
    # The first write of the day creates the usage rows; measure a later, ordinary dispatch.
    services.dispatch(
        agent_id="agent-1", job_id="first", model="claude-sonnet", repo="octo-org/api", now=now
    )
    with django_assert_max_num_queries(DISPATCH_BUDGET) as captured:
        outcome = services.dispatch(
            agent_id="agent-1", job_id="second", model="claude-sonnet", repo="octo-org/api", now=now
        )
    assert outcome.result.allowed is True
    # BEGIN, lock agent and model (one statement), the three states (with the job lookup) in
    # one statement, the writes (job insert, agent usage, model usage, the model's minute,
    # event), COMMIT
    assert len(captured) == 4 + writes(5)


def test_first_dispatch_of_the_day_stays_within_budget(limits, now, django_assert_max_num_queries):
    with django_assert_max_num_queries(DISPATCH_BUDGET):
        outcome = services.dispatch(
            agent_id="agent-1", job_id="first", model="claude-sonnet", repo="octo-org/api", now=now
        )
    assert outcome.result.allowed is True


def test_dispatch_that_expires_an_overdue_job_stays_within_budget(
    limits, now, django_assert_max_num_queries
):
    services.dispatch(
        agent_id="agent-1", job_id="old", model="claude-sonnet", now=now - timedelta(hours=2)
    )
    with django_assert_max_num_queries(DISPATCH_BUDGET):
        outcome = services.dispatch(
            agent_id="agent-1", job_id="new", model="claude-sonnet", repo="octo-org/api", now=now
        )
    assert outcome.result.allowed is True
    assert Job.objects.get(job_id="old").state == "expired"


def test_first_dispatch_of_a_new_agent_stays_within_budget(
    limits, now, django_assert_max_num_queries
):
    AgentAllowance.objects.create(agent_id="*", concurrent_jobs=1)
    with django_assert_max_num_queries(DISPATCH_BUDGET):
        outcome = services.dispatch(
            agent_id="newcomer", job_id="first", model="claude-sonnet", repo="octo-org/api", now=now
        )
    assert outcome.result.allowed is True
    assert AgentAllowance.objects.get(agent_id="newcomer").concurrent_jobs == 1


@pytest.mark.parametrize("event", ["job_completed", "job_failed", "job_cancelled"])
def test_usage_report_stays_within_budget(limits, now, event, django_assert_max_num_queries):
    load_history(now)
    for job_id in ("first", "second"):
        services.dispatch(
            agent_id="agent-1", job_id=job_id, model="claude-sonnet", repo="octo-org/api", now=now
        )
    services.record_usage(
        agent_id="agent-1", job_id="first", event="job_failed", tokens_in=5, now=now
    )
    with django_assert_max_num_queries(REPORT_BUDGET) as captured:
        outcome = services.record_usage(
            agent_id="agent-1",
            job_id="second",
            event=event,
            model="claude-sonnet",
            tokens_in=1000,
            tokens_out=10,
            now=now,
        )
    assert outcome.duplicate is False
    # BEGIN, lock agent, the job with its model's prices and the agent's state, the writes
    # (job update, agent usage, model usage, event), COMMIT; a failure also starts the
    # repository's cooldown, a cancel charges nothing and skips both usages.
    counted = {"job_completed": 4, "job_failed": 5, "job_cancelled": 2}[event]
    assert len(captured) == 4 + writes(counted)


def test_first_report_of_a_new_agent_stays_within_budget(
    limits, now, django_assert_max_num_queries
):
    AgentAllowance.objects.create(agent_id="*")
    with django_assert_max_num_queries(REPORT_BUDGET):
        outcome = services.record_usage(
            agent_id="newcomer",
            job_id="j",
            event="job_completed",
            model="claude-sonnet",
            tokens_in=7,
            now=now,
        )
    assert outcome.usage.tokens_used == 7


def test_duplicate_report_costs_four_queries(limits, now, django_assert_num_queries):
    services.record_usage(
        agent_id="agent-1", job_id="j", event="job_completed", tokens_in=7, now=now
    )
    with django_assert_num_queries(4):  # BEGIN, lock agent, the job and agent state, COMMIT
        assert services.record_usage(
            agent_id="agent-1", job_id="j", event="job_completed", tokens_in=7, now=now
        ).duplicate


def test_a_repository_event_sends_its_count_and_its_log_entry_together(
    limits, now, django_assert_num_queries
):
    # BEGIN, the writes (the repository's count, the event), COMMIT, the repository's state
    with django_assert_num_queries(3 + writes(2)):
        record = services.record_repo_event(
            repo="octo-org/api", kind="pr_opened", agent_id="agent-1", now=now
        )
    assert record.prs_opened == 1
    assert UsageEvent.objects.filter(event="pr_opened", repo="octo-org/api").count() == 1


@pytest.mark.postgres_only
def test_a_check_reads_only_its_own_agents_rows_even_with_statistics_from_an_empty_day(limits, now):
    """Every morning the planner's statistics know nothing of today's usage rows, and often
    little of the running jobs. With an index on the day alone, or one over every job's
    state, it took those for one agent's lookups and read every active agent's rows."""
    from django.db import connection

    agents = [f"agent-{n}" for n in range(2, 502)]
    AgentUsage.objects.bulk_create(
        AgentUsage(agent_id=agent, period_start=day_start(now - timedelta(days=d)))
        for agent in agents
        for d in range(1, 5)
    )
    Job.objects.bulk_create(
        Job(agent_id=agent, job_id=f"old{n}", state="completed", started_at=now - timedelta(days=1))
        for agent in agents
        for n in range(4)
    )
    with connection.cursor() as cursor:  # statistics of the days before, as every morning
        cursor.execute("ANALYZE quotas_job, quotas_agentusage")
    AgentUsage.objects.bulk_create(
        AgentUsage(agent_id=agent, period_start=day_start(now), tokens_used=5) for agent in agents
    )
    Job.objects.bulk_create(
        Job(agent_id=agent, job_id=f"j{n}", state="running", started_at=now)
        for agent in agents
        for n in range(4)
    )
    services.dispatch(agent_id="agent-1", job_id="mine", model="claude-sonnet", now=now)
    result = full_check(now)
    assert (result.allowed, result.remaining_jobs) == (True, 99)
    nodes = executed_plan(lambda: full_check(now))
    scans = {node.get("Index Name") for node in nodes} - {None}
    assert {"agent_usage_day_unique", "agent_usage_period_idx"} & scans
    assert "job_running_idx" in scans and "job_state_created_idx" not in scans
    # Every step reads what it returns: no agent's rows read and thrown away for another's.
    assert [n for n in nodes if n.get("Rows Removed by Filter", 0) > 0] == []
    assert max(node["Actual Rows"] for node in nodes) <= 2


def test_the_hot_paths_statements_are_short_enough_for_psycopg_to_cache(limits, now):
    """psycopg parses a statement's text for its parameters once and caches the result, but
    only for statements of at most 4 KiB and 50 parameters; a longer one is parsed again on
    every run (0.1 ms for a check's read). Each statement of a check, dispatch and report
    must stay within both limits."""
    from psycopg import _queries

    statements = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        full_check(now)
        services.dispatch(
            agent_id="agent-1", job_id="j", model="claude-sonnet", repo="octo-org/api", now=now
        )
        for event in ("job_started", "job_failed"):
            services.record_usage(
                agent_id="agent-1",
                job_id="j",
                event=event,
                model="claude-sonnet",
                tokens_in=5,
                now=now,
            )
    assert len(statements) >= 9  # every statement but BEGIN and COMMIT
    too_long = [
        (len(sql.encode()), len(params), sql[:80])
        for sql, params in statements
        if len(sql.encode()) > _queries.MAX_CACHED_STATEMENT_LENGTH
        or len(params) > _queries.MAX_CACHED_STATEMENT_PARAMS
    ]
    assert too_long == []
