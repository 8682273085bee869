"""dispatch(): check and start in one transaction, idempotent per job_id."""

from datetime import timedelta

import pytest

from quotas import services
from quotas.exceptions import AllowanceNotFound, InvalidInput
from quotas.models import AgentUsage, Job, ModelUsage, RefusalCount, UsageEvent
from quotas.periods import day_start


def test_admitted_job_is_running_and_counted(make_allowance, make_model_quota, now):
    make_allowance(daily_job_limit=10)
    make_model_quota()
    outcome = services.dispatch(
        agent_id="agent-1", job_id="job-1", model="claude-sonnet", repo="octo-org/api", now=now
    )
    assert (outcome.result.allowed, outcome.duplicate) == (True, False)
    assert outcome.result.remaining_jobs == 9  # after this job
    job = Job.objects.get()
    assert (job.job_id, job.state, job.started_at, job.model, job.repo) == (
        "job-1",
        "running",
        now,
        "claude-sonnet",
        "octo-org/api",
    )
    assert AgentUsage.objects.get(agent_id="agent-1", period_start=day_start(now)).jobs_started == 1
    assert ModelUsage.objects.get(model="claude-sonnet").requests == 1
    event = UsageEvent.objects.get()
    assert (event.event, event.jobs_delta, event.requests_delta) == ("job_started", 1, 1)


def test_same_job_id_again_returns_the_first_decision_and_counts_nothing(make_allowance, now):
    make_allowance(daily_job_limit=10)
    first = services.dispatch(agent_id="agent-1", job_id="job-1", now=now)
    again = services.dispatch(agent_id="agent-1", job_id="job-1", now=now + timedelta(minutes=5))
    assert again.duplicate is True
    assert again.result == first.result
    assert Job.objects.count() == 1
    assert AgentUsage.objects.get().jobs_started == 1
    assert UsageEvent.objects.count() == 1


def test_a_started_report_after_dispatch_is_a_duplicate(make_allowance, now):
    make_allowance()
    services.dispatch(agent_id="agent-1", job_id="job-1", model="m", now=now)
    outcome = services.record_usage(
        agent_id="agent-1", job_id="job-1", event="job_started", model="m", now=now
    )
    assert (outcome.duplicate, outcome.usage.jobs_started, outcome.usage.active_jobs) == (
        True,
        1,
        1,
    )
    assert ModelUsage.objects.get().requests == 1


def test_refusal_records_nothing_so_the_same_job_may_retry(make_allowance, now):
    make_allowance(concurrent_jobs=1)
    services.dispatch(agent_id="agent-1", job_id="job-1", now=now)
    refused = services.dispatch(agent_id="agent-1", job_id="job-2", now=now)
    assert (refused.result.allowed, refused.result.reason, refused.job) == (
        False,
        "concurrent job limit reached",
        None,
    )
    assert (Job.objects.count(), AgentUsage.objects.get().jobs_started) == (1, 1)
    services.record_usage(agent_id="agent-1", job_id="job-1", event="job_completed", now=now)
    retried = services.dispatch(agent_id="agent-1", job_id="job-2", now=now)
    assert (retried.result.allowed, retried.duplicate) == (True, False)
    assert AgentUsage.objects.get().jobs_started == 2


def test_daily_job_limit_stops_the_next_dispatch(make_allowance, now):
    make_allowance(daily_job_limit=2)
    results = [
        services.dispatch(agent_id="agent-1", job_id=f"j{i}", now=now).result for i in range(3)
    ]
    assert [r.allowed for r in results] == [True, True, False]
    assert [r.remaining_jobs for r in results] == [1, 0, 0]
    assert results[2].reason == "daily job limit exceeded"


def test_hourly_rate_limit_is_shared_by_all_agents(make_allowance, make_model_quota, now):
    make_allowance("a")
    make_allowance("b")
    make_model_quota(hourly_rate_limit=2)
    assert services.dispatch(
        agent_id="a", job_id="1", model="claude-sonnet", now=now
    ).result.allowed
    assert services.dispatch(
        agent_id="b", job_id="1", model="claude-sonnet", now=now
    ).result.allowed
    third = services.dispatch(agent_id="a", job_id="2", model="claude-sonnet", now=now).result
    assert (third.allowed, third.retry_after) == (False, 3600)
    later = now + timedelta(hours=1)
    assert services.dispatch(
        agent_id="a", job_id="2", model="claude-sonnet", now=later
    ).result.allowed


def test_dispatch_expires_overdue_jobs_to_free_a_slot(make_allowance, now):
    make_allowance(concurrent_jobs=1, max_job_duration=timedelta(minutes=30))
    services.dispatch(agent_id="agent-1", job_id="old", now=now - timedelta(minutes=31))
    outcome = services.dispatch(agent_id="agent-1", job_id="new", now=now)
    assert outcome.result.allowed is True
    assert dict(Job.objects.values_list("job_id", "state")) == {"old": "expired", "new": "running"}


def test_dispatch_for_a_job_first_seen_in_a_report_is_a_duplicate(make_allowance, now):
    make_allowance(daily_token_limit=100)
    services.record_usage(
        agent_id="agent-1",
        job_id="job-1",
        event="job_completed",
        tokens_in=10,
        tokens_out=0,
        now=now,
    )
    outcome = services.dispatch(agent_id="agent-1", job_id="job-1", now=now)
    assert (outcome.duplicate, outcome.result.allowed, outcome.result.remaining_tokens) == (
        True,
        True,
        90,
    )
    assert Job.objects.get().state == "completed"
    assert AgentUsage.objects.get().jobs_started == 0


def test_a_repeated_dispatch_of_a_job_first_seen_in_a_report_warns_of_its_model_as_a_check_does(
    make_allowance, make_model_quota, now
):
    make_allowance(daily_token_limit=1000)
    make_model_quota(daily_token_budget=100)
    services.record_usage(
        agent_id="agent-1", job_id="job-1", event="job_started", model="claude-sonnet", now=now
    )
    ModelUsage.objects.filter(model="claude-sonnet").update(tokens_used=85)  # 85 % of 100
    outcome = services.dispatch(agent_id="agent-1", job_id="job-1", model="claude-sonnet", now=now)
    check = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert (outcome.duplicate, outcome.result.allowed, outcome.result.status) == (
        True,
        True,
        "warning",
    )
    assert (check.status, check.remaining_tokens) == ("warning", outcome.result.remaining_tokens)


def test_dispatch_of_an_unknown_agent_is_an_error(db, now):
    with pytest.raises(AllowanceNotFound):
        services.dispatch(agent_id="ghost", job_id="job-1", now=now)
    assert Job.objects.count() == 0


def test_dispatch_needs_a_job_id(make_allowance, now):
    make_allowance()
    with pytest.raises(InvalidInput) as error:
        services.dispatch(agent_id="agent-1", job_id="", now=now)
    assert error.value.field == "job_id"
    assert Job.objects.count() == 0


def test_paused_agent_is_not_dispatched(make_allowance, now):
    make_allowance(paused=True)
    outcome = services.dispatch(agent_id="agent-1", job_id="job-1", now=now)
    assert (outcome.result.allowed, outcome.result.retryable) == (False, False)
    assert (Job.objects.count(), AgentUsage.objects.count(), UsageEvent.objects.count()) == (
        0,
        0,
        0,
    )


def test_refusals_are_tallied_by_agent_and_rule_for_the_dashboard(make_allowance, now):
    make_allowance(concurrent_jobs=1, model_allowlist=["m"])
    services.dispatch(agent_id="agent-1", job_id="job-1", model="m", now=now)
    services.dispatch(agent_id="agent-1", job_id="job-2", model="m", now=now)
    services.check(agent_id="agent-1", model="m", now=now)
    services.check(agent_id="agent-1", model="other", now=now)
    make_allowance("agent-2")
    services.check(agent_id="agent-2", now=now)  # allowed: not tallied
    tally = RefusalCount.objects.values_list("agent_id", "reason_code", "refusals", "period_start")
    assert sorted(tally) == [
        ("agent-1", "concurrent_jobs", 2, day_start(now)),
        ("agent-1", "model_not_allowed", 1, day_start(now)),
    ]


def test_a_refusal_is_tallied_with_its_model_repository_and_last_time(
    make_allowance, make_repo_limit, now
):
    make_allowance(concurrent_jobs=1)
    make_repo_limit(max_daily_prs=0)
    services.dispatch(agent_id="agent-1", job_id="job-1", model="m", now=now)
    later = now + timedelta(minutes=5)
    services.check(agent_id="agent-1", model="m", repo="octo-org/api", now=now)
    services.check(agent_id="agent-1", model="m", repo="octo-org/api", now=later)
    services.dispatch(agent_id="agent-1", job_id="job-2", model="m", now=later)
    tally = RefusalCount.objects.order_by("repo").values_list(
        "reason_code", "model", "repo", "refusals", "last_refused_at"
    )
    assert list(tally) == [
        ("concurrent_jobs", "m", "", 1, later),
        ("concurrent_jobs", "m", "octo-org/api", 2, later),
    ]
