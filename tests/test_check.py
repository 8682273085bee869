"""check(): the ten rules in order, their boundaries, the warning band and retry_after."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F

from quotas import selectors, services
from quotas.exceptions import AllowanceNotFound, InvalidInput
from quotas.models import AgentAllowance, AgentUsage, Job, ModelMinuteUsage, ModelUsage, RepoUsage
from quotas.periods import day_start

SECONDS_TO_MIDNIGHT = 12 * 3600  # from NOON (UTC) to the next UTC midnight


def use(agent_id, now, tokens=0, jobs=0):
    AgentUsage.objects.create(
        agent_id=agent_id, period_start=day_start(now), tokens_used=tokens, jobs_started=jobs
    )


def run_jobs(agent_id, count, started_at, model=""):
    Job.objects.bulk_create(
        Job(
            agent_id=agent_id,
            job_id=f"run-{i}",
            model=model,
            state="running",
            started_at=started_at,
        )
        for i in range(count)
    )


def test_fresh_agent_is_allowed_with_its_whole_allowance(make_allowance, now):
    make_allowance(daily_token_limit=1000, daily_job_limit=10)
    result = services.check(agent_id="agent-1", now=now)
    assert (result.allowed, result.status, result.reason) == (True, "ok", "")
    assert (result.remaining_tokens, result.remaining_jobs, result.retry_after) == (1000, 10, None)


def test_limits_of_zero_are_unlimited(make_allowance, make_model_quota, make_repo_limit, now):
    make_allowance()
    make_model_quota()
    make_repo_limit()
    use("agent-1", now, tokens=10**15, jobs=10**6)
    run_jobs("agent-1", 50, now)
    result = services.check(
        agent_id="agent-1", model="claude-sonnet", repo="octo-org/api", action="pr", now=now
    )
    assert (result.allowed, result.status) == (True, "ok")
    assert (result.remaining_tokens, result.remaining_jobs) == (-1, -1)


def test_unknown_agent_is_an_error(db, now):
    with pytest.raises(AllowanceNotFound, match="allowance not found for agent: ghost"):
        services.check(agent_id="ghost", now=now)
    assert AgentAllowance.objects.count() == 0


def test_unknown_agent_gets_its_own_allowance_from_the_default(make_allowance, now):
    make_allowance("*", daily_token_limit=500, concurrent_jobs=2, model_allowlist=["m1"])
    result = services.check(agent_id="new-bot", now=now)
    created = AgentAllowance.objects.get(agent_id="new-bot")
    assert (created.daily_token_limit, created.concurrent_jobs, created.model_allowlist) == (
        500,
        2,
        ["m1"],
    )
    assert (result.allowed, result.remaining_tokens) == (True, 500)
    # The copy is the agent's own: changing the default later does not change it.
    AgentAllowance.objects.filter(agent_id="*").update(daily_token_limit=1)
    assert services.check(agent_id="new-bot", now=now).remaining_tokens == 500


def test_the_default_allowance_id_cannot_be_checked_as_an_agent(make_allowance, now):
    make_allowance("*")
    with pytest.raises(InvalidInput):
        services.check(agent_id="*", now=now)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("agent_id", ""),
        ("agent_id", "bad agent"),
        ("agent_id", "x" * 201),
        ("model", "/leading-slash"),
        ("repo", "no-slash"),
        ("repo", "owner/.."),
        ("action", "merge"),
    ],
)
def test_malformed_input_is_refused_before_anything_is_read(make_allowance, now, field, value):
    make_allowance()
    args = {"agent_id": "agent-1", field: value}
    with pytest.raises(InvalidInput) as error:
        services.check(**args, now=now)
    assert error.value.field == field


def test_paused_agent_is_refused_before_anything_else(make_allowance, now):
    make_allowance(paused=True, daily_token_limit=10, model_allowlist=["other"])
    use("agent-1", now, tokens=10)
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert (result.allowed, result.status, result.reason) == (False, "exceeded", "agent paused")
    assert (result.reason_code, result.retryable, result.retry_after) == (
        "agent_paused",
        False,
        None,
    )


def test_model_outside_the_allowlist_is_refused_before_the_token_limit(make_allowance, now):
    make_allowance(daily_token_limit=10, model_allowlist=["claude-haiku"])
    use("agent-1", now, tokens=10)
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert result.reason == "model not in allowlist: claude-sonnet"
    assert (result.allowed, result.retryable) == (False, False)


def test_allowlist_lets_listed_models_through(make_allowance, now):
    make_allowance(model_allowlist=["claude-haiku", "claude-sonnet"])
    assert services.check(agent_id="agent-1", model="claude-sonnet", now=now).allowed is True


def test_allowlist_is_not_consulted_when_no_model_is_given(make_allowance, now):
    make_allowance(model_allowlist=["claude-haiku"])
    assert services.check(agent_id="agent-1", now=now).allowed is True


def test_tokens_exactly_at_the_limit_are_refused_until_midnight(make_allowance, now):
    make_allowance(daily_token_limit=1000)
    use("agent-1", now, tokens=1000)
    result = services.check(agent_id="agent-1", now=now)
    assert (result.allowed, result.reason) == (False, "daily token limit exceeded")
    assert (result.remaining_tokens, result.retry_after, result.retryable) == (
        0,
        SECONDS_TO_MIDNIGHT,
        True,
    )


def test_tokens_one_under_the_limit_are_allowed_with_a_warning(make_allowance, now):
    make_allowance(daily_token_limit=1000)
    use("agent-1", now, tokens=999)
    result = services.check(agent_id="agent-1", now=now)
    assert (result.allowed, result.status, result.remaining_tokens) == (True, "warning", 1)


def test_remaining_never_goes_below_zero(make_allowance, now):
    make_allowance(daily_token_limit=100, daily_job_limit=2)
    use("agent-1", now, tokens=150, jobs=5)
    result = services.check(agent_id="agent-1", now=now)
    assert (result.remaining_tokens, result.remaining_jobs) == (0, 0)


@pytest.mark.parametrize(("used", "status"), [(79, "ok"), (80, "warning"), (99, "warning")])
def test_warning_starts_at_eighty_percent_of_the_token_limit(make_allowance, now, used, status):
    make_allowance(daily_token_limit=100)
    use("agent-1", now, tokens=used)
    assert services.check(agent_id="agent-1", now=now).status == status


def test_warning_ratio_comes_from_settings(make_allowance, now, settings):
    settings.QUOTAS_WARNING_RATIO = 0.5
    make_allowance(daily_token_limit=100)
    use("agent-1", now, tokens=50)
    assert services.check(agent_id="agent-1", now=now).status == "warning"


def test_jobs_exactly_at_the_daily_limit_are_refused(make_allowance, now):
    make_allowance(daily_job_limit=5)
    use("agent-1", now, jobs=5)
    result = services.check(agent_id="agent-1", now=now)
    assert (result.allowed, result.reason, result.remaining_jobs) == (
        False,
        "daily job limit exceeded",
        0,
    )
    assert result.retry_after == SECONDS_TO_MIDNIGHT


def test_jobs_one_under_the_daily_limit_are_allowed(make_allowance, now):
    make_allowance(daily_job_limit=5)
    use("agent-1", now, jobs=4)
    result = services.check(agent_id="agent-1", now=now)
    assert (result.allowed, result.remaining_jobs) == (True, 1)


def test_token_limit_is_reported_before_the_job_limit(make_allowance, now):
    make_allowance(daily_token_limit=10, daily_job_limit=1)
    use("agent-1", now, tokens=10, jobs=1)
    assert services.check(agent_id="agent-1", now=now).reason == "daily token limit exceeded"


def test_running_jobs_at_the_concurrency_limit_are_refused(make_allowance, now):
    make_allowance(concurrent_jobs=3)
    run_jobs("agent-1", 3, now - timedelta(minutes=5))
    result = services.check(agent_id="agent-1", now=now)
    assert (result.allowed, result.reason, result.retry_after) == (
        False,
        "concurrent job limit reached",
        None,
    )
    assert result.retryable is True


def test_concurrency_refusal_says_when_the_oldest_job_will_expire(make_allowance, now):
    make_allowance(concurrent_jobs=1, max_job_duration=timedelta(minutes=30))
    run_jobs("agent-1", 1, now - timedelta(minutes=10))
    assert services.check(agent_id="agent-1", now=now).retry_after == 20 * 60


def test_one_slot_free_is_allowed(make_allowance, now):
    make_allowance(concurrent_jobs=3)
    run_jobs("agent-1", 2, now)
    Job.objects.create(agent_id="agent-1", job_id="done", state="completed", started_at=now)
    assert services.check(agent_id="agent-1", now=now).allowed is True


def test_overdue_jobs_are_expired_and_free_their_slot(make_allowance, now):
    make_allowance(concurrent_jobs=1, max_job_duration=timedelta(hours=1))
    run_jobs("agent-1", 1, now - timedelta(hours=1, seconds=1))
    result = services.check(agent_id="agent-1", now=now)
    assert result.allowed is True
    job = Job.objects.get(job_id="run-0")
    assert (job.state, job.ended_at) == ("expired", now)


def test_a_job_exactly_at_its_maximum_duration_still_runs(make_allowance, now):
    make_allowance(concurrent_jobs=1, max_job_duration=timedelta(hours=1))
    run_jobs("agent-1", 1, now - timedelta(hours=1))
    assert services.check(agent_id="agent-1", now=now).allowed is False
    assert Job.objects.get(job_id="run-0").state == "running"


def model_usage(now, tokens=0, cost_cents=0, model="claude-sonnet"):
    ModelUsage.objects.create(
        model=model,
        period_start=day_start(now),
        tokens_used=tokens,
        cost_microcents=cost_cents * 10**6,
    )


def test_model_budget_exactly_reached_is_refused(make_allowance, make_model_quota, now):
    make_allowance()
    make_model_quota(daily_token_budget=10_000)
    model_usage(now, tokens=10_000)
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert (result.allowed, result.reason, result.retry_after) == (
        False,
        "global model token budget exceeded for: claude-sonnet",
        SECONDS_TO_MIDNIGHT,
    )


def test_model_budget_one_under_is_allowed_with_a_warning(make_allowance, make_model_quota, now):
    make_allowance()
    make_model_quota(daily_token_budget=10_000)
    model_usage(now, tokens=9_999)
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert (result.allowed, result.status) == (True, "warning")


def test_model_budget_is_not_consulted_without_a_model(make_allowance, make_model_quota, now):
    make_allowance()
    make_model_quota(daily_token_budget=10)
    model_usage(now, tokens=10)
    assert services.check(agent_id="agent-1", now=now).allowed is True


def test_agent_limits_are_reported_before_model_limits(make_allowance, make_model_quota, now):
    make_allowance(concurrent_jobs=1)
    make_model_quota(daily_token_budget=10)
    model_usage(now, tokens=10)
    run_jobs("agent-1", 1, now)
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert result.reason == "concurrent job limit reached"


def start_on_model(agent_id, job_id, at, *, model="claude-sonnet", final=None):
    """A job started on the model at ``at`` (and ended by ``final``), as reports would."""
    services.record_usage(
        agent_id=agent_id, job_id=job_id, event="job_started", model=model, now=at
    )
    if final:
        services.record_usage(agent_id=agent_id, job_id=job_id, event=final, now=at)


def test_hourly_rate_counts_jobs_of_all_agents_in_the_last_sixty_minutes(
    make_allowance, make_model_quota, now
):
    for agent_id in ("agent-1", "a", "b", "c", "d"):
        make_allowance(agent_id)
    make_model_quota(hourly_rate_limit=3)
    start_on_model("a", "1", now - timedelta(minutes=50), final="job_completed")
    start_on_model("b", "2", now - timedelta(minutes=10))
    start_on_model("c", "3", now - timedelta(minutes=1), final="job_failed")
    start_on_model("d", "4", now, model="other")
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert (result.allowed, result.reason) == (
        False,
        "hourly rate limit reached for: claude-sonnet",
    )
    assert result.retry_after == 10 * 60  # when the job started 50 minutes ago leaves the window


def test_jobs_started_sixty_minutes_ago_have_left_the_window(make_allowance, make_model_quota, now):
    make_allowance()
    make_model_quota(hourly_rate_limit=1)
    start_on_model("agent-1", "1", now - timedelta(minutes=60), final="job_completed")
    assert services.check(agent_id="agent-1", model="claude-sonnet", now=now).allowed is True


@pytest.mark.parametrize(
    ("offset", "counted"),
    [
        # The window is (now - 60 min, now]; "now" is 12:00:20.5, so it begins at 11:00:20.5,
        # inside the minute 11:00 that is counted from the ledger rather than summed.
        (timedelta(minutes=60, seconds=20, microseconds=500_000), 2),  # 11:00:00, out
        (timedelta(minutes=60, microseconds=1), 2),  # 11:00:20.499999, out by a microsecond
        (timedelta(minutes=60), 2),  # 11:00:20.5 exactly: out, the window is open there
        (timedelta(minutes=59, seconds=59, microseconds=999_999), 3),  # in by a microsecond
        (timedelta(minutes=59, seconds=40), 3),  # 11:00:40, the rest of the cut minute
        (timedelta(minutes=59, seconds=20, microseconds=500_001), 3),  # 11:00:59.999999
        (timedelta(minutes=59, seconds=20, microseconds=500_000), 3),  # 11:01:00, summed
    ],
)
def test_the_sliding_hour_is_exact_where_it_cuts_through_a_minute(
    make_allowance, make_model_quota, now, offset, counted
):
    make_allowance()
    make_model_quota(hourly_rate_limit=3)
    at = now + timedelta(seconds=20, microseconds=500_000)
    start_on_model("agent-1", "in-1", at - timedelta(minutes=30))
    start_on_model("agent-1", "in-2", at - timedelta(minutes=1))
    start_on_model("agent-1", "edge", at - offset)
    model = selectors.model_state("claude-sonnet", now=at)
    assert model.started_last_hour == counted
    assert services.check(agent_id="agent-1", model="claude-sonnet", now=at).allowed is (
        counted < 3
    )


def test_a_job_whose_report_names_its_model_late_counts_in_that_models_hour(
    make_allowance, make_model_quota, now
):
    make_allowance()
    make_model_quota(hourly_rate_limit=1)
    services.dispatch(agent_id="agent-1", job_id="j", now=now - timedelta(minutes=10))
    assert services.check(agent_id="agent-1", model="claude-sonnet", now=now).allowed is True
    services.record_usage(
        agent_id="agent-1",
        job_id="j",
        event="job_completed",
        model="claude-sonnet",
        tokens_in=5,
        now=now - timedelta(minutes=5),
    )
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert (result.allowed, result.reason_code, result.retry_after) == (
        False,
        "model_rate_limit",
        50 * 60,
    )
    started = now - timedelta(minutes=10)
    assert list(ModelMinuteUsage.objects.values_list("minute_start", "requests")) == [(started, 1)]


def test_the_sliding_hour_reads_minutes_not_every_job(make_allowance, make_model_quota, now):
    make_allowance(concurrent_jobs=0)
    make_model_quota(hourly_rate_limit=10**6)
    for n in range(30):
        start_on_model("agent-1", f"j{n}", now - timedelta(minutes=n % 5, seconds=n))
    minutes = ModelMinuteUsage.objects.filter(model="claude-sonnet")
    assert minutes.count() == 6  # 30 starts fell into six minutes
    assert sum(minutes.values_list("requests", flat=True)) == 30
    assert selectors.model_state("claude-sonnet", now=now).started_last_hour == 30
    # The whole minutes come from these rows, not from the ledger's jobs.
    minutes.filter(minute_start=now - timedelta(minutes=3)).update(requests=F("requests") + 100)
    assert selectors.model_state("claude-sonnet", now=now).started_last_hour == 130


def test_cost_ceiling_reached_is_refused(make_allowance, make_model_quota, now):
    make_allowance()
    make_model_quota(cost_ceiling=500)
    model_usage(now, cost_cents=500)
    result = services.check(agent_id="agent-1", model="claude-sonnet", now=now)
    assert (result.allowed, result.reason) == (False, "cost ceiling reached for: claude-sonnet")


@pytest.mark.parametrize(("cents", "status"), [(399, "ok"), (400, "warning")])
def test_cost_at_eighty_percent_of_the_ceiling_warns(
    make_allowance, make_model_quota, now, cents, status
):
    make_allowance()
    make_model_quota(cost_ceiling=500)
    model_usage(now, cost_cents=cents)
    assert services.check(agent_id="agent-1", model="claude-sonnet", now=now).status == status


def test_model_without_a_quota_has_no_global_limits(make_allowance, now):
    make_allowance()
    model_usage(now, tokens=10**12, model="free-model")
    assert services.check(agent_id="agent-1", model="free-model", now=now).allowed is True


def test_repo_cooling_down_after_a_failure_is_refused(make_allowance, make_repo_limit, now):
    make_allowance()
    make_repo_limit(cooldown_after_failure=timedelta(minutes=30))
    RepoUsage.objects.create(
        repo="octo-org/api",
        period_start=day_start(now),
        last_failure_at=now - timedelta(minutes=18),
    )
    result = services.check(agent_id="agent-1", repo="octo-org/api", now=now)
    assert (result.allowed, result.reason, result.retry_after) == (
        False,
        "repository cooling down after failure: octo-org/api",
        12 * 60,
    )


def test_cooldown_reaches_across_midnight(make_allowance, make_repo_limit):
    just_after_midnight = datetime(2026, 3, 11, 0, 10, tzinfo=UTC)
    make_allowance()
    make_repo_limit(cooldown_after_failure=timedelta(hours=1))
    yesterday = just_after_midnight - timedelta(minutes=20)
    RepoUsage.objects.create(
        repo="octo-org/api", period_start=day_start(yesterday), last_failure_at=yesterday
    )
    result = services.check(agent_id="agent-1", repo="octo-org/api", now=just_after_midnight)
    assert (result.allowed, result.retry_after) == (False, 40 * 60)


def test_cooldown_that_has_passed_allows(make_allowance, make_repo_limit, now):
    make_allowance()
    make_repo_limit(cooldown_after_failure=timedelta(minutes=30))
    RepoUsage.objects.create(
        repo="octo-org/api",
        period_start=day_start(now),
        last_failure_at=now - timedelta(minutes=30),
    )
    assert services.check(agent_id="agent-1", repo="octo-org/api", now=now).allowed is True


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("pr", "daily PR limit reached for: octo-org/api"),
        ("issue", "daily issue limit reached for: octo-org/api"),
    ],
)
def test_pr_and_issue_limits_apply_to_their_action(
    make_allowance, make_repo_limit, now, action, reason
):
    make_allowance()
    make_repo_limit(max_daily_prs=2, max_daily_issues=2)
    RepoUsage.objects.create(
        repo="octo-org/api", period_start=day_start(now), prs_opened=2, issues_opened=2
    )
    result = services.check(agent_id="agent-1", repo="octo-org/api", action=action, now=now)
    assert (result.allowed, result.reason, result.retry_after) == (
        False,
        reason,
        SECONDS_TO_MIDNIGHT,
    )
    # Without the action the same repository is open for other work.
    assert services.check(agent_id="agent-1", repo="octo-org/api", now=now).allowed is True


def test_one_pr_under_the_limit_is_allowed(make_allowance, make_repo_limit, now):
    make_allowance()
    make_repo_limit(max_daily_prs=2)
    RepoUsage.objects.create(repo="octo-org/api", period_start=day_start(now), prs_opened=1)
    assert services.check(agent_id="agent-1", repo="octo-org/api", action="pr", now=now).allowed


def test_cooldown_is_reported_before_the_pr_limit(make_allowance, make_repo_limit, now):
    make_allowance()
    make_repo_limit(max_daily_prs=1, cooldown_after_failure=timedelta(hours=1))
    RepoUsage.objects.create(
        repo="octo-org/api", period_start=day_start(now), prs_opened=1, last_failure_at=now
    )
    result = services.check(agent_id="agent-1", repo="octo-org/api", action="pr", now=now)
    assert result.reason == "repository cooling down after failure: octo-org/api"


def test_yesterdays_usage_does_not_count_today(
    make_allowance, make_model_quota, make_repo_limit, now
):
    make_allowance(daily_token_limit=100, daily_job_limit=1)
    make_model_quota(daily_token_budget=100)
    make_repo_limit(max_daily_prs=1)
    yesterday = now - timedelta(days=1)
    use("agent-1", yesterday, tokens=100, jobs=1)
    model_usage(yesterday, tokens=100)
    RepoUsage.objects.create(repo="octo-org/api", period_start=day_start(yesterday), prs_opened=1)
    result = services.check(
        agent_id="agent-1", model="claude-sonnet", repo="octo-org/api", action="pr", now=now
    )
    assert (result.allowed, result.status, result.remaining_tokens, result.remaining_jobs) == (
        True,
        "ok",
        100,
        1,
    )


@pytest.mark.parametrize(
    ("tokens", "cents", "status"),
    [
        (0, 0, "ok"),
        (799, 0, "ok"),
        (800, 0, "warning"),
        (1000, 0, "exceeded"),
        (0, 400, "warning"),
        (0, 500, "exceeded"),
    ],
)
def test_a_models_standing_follows_the_same_limits_as_the_check(
    make_model_quota, now, tokens, cents, status
):
    from quotas.rules import model_status
    from quotas.selectors import model_state

    make_model_quota(daily_token_budget=1000, cost_ceiling=500)
    model_usage(now, tokens=tokens, cost_cents=cents)
    assert model_status(model_state("claude-sonnet", now=now)) == status
