"""Real threads, real connections: the limits hold and the books add up under contention.

Each thread opens its own database connection. On PostgreSQL the allowance and model quota
row locks serialize the deciders; on SQLite immediate transactions queue writers on the busy
timeout, so none of these may fail with "database is locked".
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from quotas import services
from quotas.models import AgentAllowance, AgentUsage, Job, ModelUsage, UsageEvent
from quotas.reconcile import reconcile_usage

pytestmark = pytest.mark.django_db(transaction=True)


def run_at_once(calls, workers):
    """Run the calls on ``workers`` threads released together by a barrier; return the results
    in the order of the calls. Each thread keeps one connection and closes it when done."""
    chunks = [list(range(w, len(calls), workers)) for w in range(workers)]
    barrier = threading.Barrier(workers)
    results = [None] * len(calls)

    def work(indexes):
        try:
            barrier.wait(timeout=30)
            for i in indexes:
                results[i] = calls[i]()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(work, chunk) for chunk in chunks]:
            future.result()
    return results


def test_fifty_concurrent_dispatches_admit_exactly_the_concurrency_limit(make_allowance, now):
    make_allowance(concurrent_jobs=3)
    calls = [
        lambda i=i: services.dispatch(agent_id="agent-1", job_id=f"job-{i}", now=now)
        for i in range(50)
    ]
    outcomes = run_at_once(calls, workers=50)
    admitted = [o for o in outcomes if o.result.allowed]
    assert len(admitted) == 3
    assert sum(not o.result.allowed for o in outcomes) == 50 - 3
    assert {o.result.reason for o in outcomes if not o.result.allowed} == {
        "concurrent job limit reached"
    }
    assert Job.objects.filter(state="running").count() == 3
    assert AgentUsage.objects.get().jobs_started == 3
    assert reconcile_usage() == []  # the books agree with the event log


def test_concurrent_dispatches_never_pass_the_daily_job_limit(make_allowance, now):
    make_allowance(daily_job_limit=7)
    calls = [
        lambda i=i: services.dispatch(agent_id="agent-1", job_id=f"job-{i}", now=now)
        for i in range(40)
    ]
    outcomes = run_at_once(calls, workers=40)
    assert sum(o.result.allowed for o in outcomes) == 7
    assert AgentUsage.objects.get().jobs_started == 7
    assert reconcile_usage() == []  # the books agree with the event log


def test_concurrent_dispatches_of_many_agents_share_the_models_hourly_limit(
    make_allowance, make_model_quota, now
):
    for a in range(10):
        make_allowance(f"agent-{a}")
    make_model_quota(hourly_rate_limit=12)
    calls = [
        lambda a=a, j=j: services.dispatch(
            agent_id=f"agent-{a}", job_id=f"job-{j}", model="claude-sonnet", now=now
        )
        for a in range(10)
        for j in range(4)
    ]
    outcomes = run_at_once(calls, workers=40)
    assert sum(o.result.allowed for o in outcomes) == 12
    assert ModelUsage.objects.get().requests == 12
    assert Job.objects.filter(model="claude-sonnet").count() == 12
    assert reconcile_usage() == []  # the books agree with the event log


def test_the_same_job_dispatched_concurrently_is_started_once(make_allowance, now):
    make_allowance()
    calls = [lambda: services.dispatch(agent_id="agent-1", job_id="same", now=now)] * 20
    outcomes = run_at_once(calls, workers=20)
    assert all(o.result.allowed for o in outcomes)
    assert sum(not o.duplicate for o in outcomes) == 1
    assert (Job.objects.count(), AgentUsage.objects.get().jobs_started) == (1, 1)
    assert reconcile_usage() == []  # the books agree with the event log


def test_a_thousand_concurrent_completions_add_up_exactly(make_allowance, make_model_quota, now):
    make_allowance()
    make_model_quota(input_price_per_mtok=1)
    calls = [
        lambda i=i: services.record_usage(
            agent_id="agent-1",
            job_id=f"job-{i}",
            event="job_completed",
            model="claude-sonnet",
            tokens_in=4,
            tokens_out=3,
            now=now,
        )
        for i in range(1000)
    ]
    outcomes = run_at_once(calls, workers=16)
    assert not any(o.duplicate for o in outcomes)
    assert AgentUsage.objects.get().tokens_used == 7000
    model = ModelUsage.objects.get()
    assert (model.tokens_used, model.cost_microcents) == (7000, 1000 * 400)
    assert UsageEvent.objects.count() == 1000
    assert reconcile_usage() == []  # the books agree with the event log


def test_concurrent_retries_of_one_report_count_once(make_allowance, now):
    make_allowance()
    calls = [
        lambda: services.record_usage(
            agent_id="agent-1", job_id="job-1", event="job_completed", tokens_in=5, now=now
        )
    ] * 20
    outcomes = run_at_once(calls, workers=20)
    assert sum(not o.duplicate for o in outcomes) == 1
    assert AgentUsage.objects.get().tokens_used == 5
    assert reconcile_usage() == []  # the books agree with the event log


def test_a_new_agents_first_requests_racing_create_one_allowance(make_allowance, now):
    make_allowance("*", concurrent_jobs=2)
    calls = [
        lambda i=i: services.dispatch(agent_id="newcomer", job_id=f"j{i}", now=now)
        for i in range(20)
    ]
    outcomes = run_at_once(calls, workers=20)
    assert AgentAllowance.objects.filter(agent_id="newcomer").count() == 1
    assert sum(o.result.allowed for o in outcomes) == 2
    assert reconcile_usage() == []  # the books agree with the event log


@pytest.mark.postgres_only
def test_a_dispatch_locks_its_agent_before_its_model(make_allowance, make_model_quota, now):
    """Both locks are taken by one statement; the agent's must come first, as in every other
    transaction that takes both, or two dispatches could deadlock."""
    import psycopg
    from django.db import connections

    make_allowance(agent_id="agent-1")
    make_model_quota(model="m")
    params = connections["default"].get_connection_params()
    allowance, quota = AgentAllowance._meta.db_table, "quotas_modelquota"

    def dispatch():
        try:
            return services.dispatch(agent_id="agent-1", job_id="j", model="m", now=now)
        finally:
            connection.close()

    with (
        psycopg.connect(**params, autocommit=False) as holder,
        psycopg.connect(**params, autocommit=True) as probe,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        holder.execute(f"SELECT 1 FROM {quota} WHERE model = 'm' FOR UPDATE")
        outcome = pool.submit(dispatch)
        try:
            # Once the dispatch waits for the model's row, it must already hold its agent's.
            for _ in range(200):
                # Only this test's database: other runs on the server may be waiting too.
                waiting = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]
                if waiting:
                    break
                threading.Event().wait(0.05)
            assert waiting == 1
            with pytest.raises(psycopg.errors.LockNotAvailable):
                probe.execute(
                    f"SELECT 1 FROM {allowance} WHERE agent_id = 'agent-1' FOR UPDATE NOWAIT"
                )
        finally:
            holder.rollback()  # the dispatch goes on
        assert outcome.result(timeout=10).result.allowed is True
    assert Job.objects.get().job_id == "j"
