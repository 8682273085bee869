"""record_usage(): charges, refunds, duplicates, conflicts and exact books."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from quotas import housekeeping, selectors, services
from quotas.exceptions import AllowanceNotFound, InvalidInput, UsageConflict
from quotas.models import AgentUsage, Job, ModelUsage, RepoUsage, UsageEvent
from quotas.periods import day_start
from quotas.validators import BIGINT_MAX
from tests.conftest import run_job


@pytest.fixture
def agent(make_allowance):
    return make_allowance(daily_token_limit=1_000_000)


@pytest.fixture
def priced_model(make_model_quota):
    # $3 per million input tokens, $15 per million output tokens.
    return make_model_quota(input_price_per_mtok=Decimal("3"), output_price_per_mtok=Decimal("15"))


def report(
    event, job_id="job-1", tokens_in=0, tokens_out=0, model="claude-sonnet", now=None, **extra
):
    return services.record_usage(
        agent_id="agent-1",
        job_id=job_id,
        event=event,
        model=model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        now=now,
        **extra,
    )


def agent_tokens():
    return AgentUsage.objects.get(agent_id="agent-1").tokens_used


def test_completed_job_charges_all_its_tokens_and_their_cost(agent, priced_model, now):
    outcome = run_job(
        "agent-1", "job-1", model="claude-sonnet", tokens_in=100_000, tokens_out=50_000, now=now
    )
    assert (outcome.duplicate, outcome.usage.tokens_used, outcome.usage.active_jobs) == (
        False,
        150_000,
        0,
    )
    usage = ModelUsage.objects.get(model="claude-sonnet")
    # 0.1 M x $3 + 0.05 M x $15 = $1.05 = 105 cents
    assert (usage.tokens_used, usage.cost_microcents, usage.requests) == (150_000, 105 * 10**6, 1)
    job = Job.objects.get()
    assert (job.state, job.ended_at, job.tokens_in, job.tokens_out, job.tokens_charged) == (
        "completed",
        now,
        100_000,
        50_000,
        150_000,
    )
    assert job.cost_charged_microcents == 105 * 10**6


def test_failed_job_gets_half_back_and_the_odd_token_is_charged(agent, priced_model, now):
    outcome = report("job_failed", tokens_in=4, tokens_out=3, now=now)
    assert outcome.usage.tokens_used == 4
    assert ModelUsage.objects.get().tokens_used == 4


def test_failed_job_cost_is_halved_like_its_tokens(agent, priced_model, now):
    report("job_failed", tokens_in=1_000_000, tokens_out=1, now=now)
    # full cost: $3 + $0.000015 = 300.0015 cents = 300_001_500 microcents; half back, odd kept
    assert ModelUsage.objects.get().cost_microcents == 300_001_500 - 300_001_500 // 2


def test_cancelled_job_is_charged_nothing(agent, priced_model, now):
    outcome = run_job(
        "agent-1",
        "job-1",
        model="claude-sonnet",
        event="job_cancelled",
        tokens_in=500,
        tokens_out=500,
        now=now,
    )
    assert (outcome.usage.tokens_used, outcome.usage.active_jobs) == (0, 0)
    assert Job.objects.get().state == "cancelled"
    assert ModelUsage.objects.get().tokens_used == 0


def test_cancel_never_erases_other_jobs_usage(agent, now):
    # Deliberate difference from Go, which subtracted a cancelled job's tokens from the total.
    report("job_completed", job_id="a", tokens_in=700, now=now)
    report("job_cancelled", job_id="b", tokens_in=700, now=now)
    assert agent_tokens() == 700


def test_same_final_report_again_is_a_duplicate_and_changes_nothing(agent, priced_model, now):
    report("job_completed", tokens_in=10, tokens_out=5, now=now)
    again = report("job_completed", tokens_in=10, tokens_out=5, now=now + timedelta(seconds=3))
    assert (again.duplicate, again.usage.tokens_used) == (True, 15)
    assert UsageEvent.objects.count() == 1
    assert ModelUsage.objects.get().tokens_used == 15


def test_a_different_final_report_for_an_ended_job_is_a_conflict(agent, now):
    report("job_completed", tokens_in=10, now=now)
    with pytest.raises(UsageConflict, match="already ended as completed"):
        report("job_failed", tokens_in=10, now=now)
    with pytest.raises(UsageConflict):
        report("job_cancelled", now=now)
    assert (agent_tokens(), Job.objects.get().state, UsageEvent.objects.count()) == (
        10,
        "completed",
        1,
    )


def test_report_for_a_job_never_started_is_charged_but_never_runs(agent, now):
    outcome = report("job_completed", job_id="ghost-job", tokens_in=20, tokens_out=22, now=now)
    job = Job.objects.get(job_id="ghost-job")
    assert (job.state, job.started_at, job.tokens_charged) == ("completed", None, 42)
    assert (outcome.usage.tokens_used, outcome.usage.jobs_started, outcome.usage.active_jobs) == (
        42,
        0,
        0,
    )


def test_late_start_after_the_final_report_counts_the_start_only(agent, now):
    report("job_completed", tokens_in=5, now=now)
    outcome = report("job_started", now=now)
    assert (outcome.duplicate, outcome.usage.jobs_started, outcome.usage.active_jobs) == (
        False,
        1,
        0,
    )
    assert Job.objects.get().state == "completed"
    assert report("job_started", now=now).duplicate is True


def test_started_report_without_dispatch_starts_the_job(agent, now):
    outcome = report("job_started", now=now)
    assert (outcome.usage.jobs_started, outcome.usage.active_jobs) == (1, 1)
    assert ModelUsage.objects.get().requests == 1


def test_started_report_carries_no_charge(agent, now):
    outcome = report("job_started", tokens_in=1000, now=now)
    assert outcome.usage.tokens_used == 0
    assert UsageEvent.objects.get().tokens_in == 1000


def test_late_final_report_for_an_expired_job_is_still_charged(make_allowance, now):
    make_allowance(max_job_duration=timedelta(minutes=10))
    services.dispatch(agent_id="agent-1", job_id="job-1", now=now)
    later = now + timedelta(minutes=11)
    assert housekeeping.expire_overdue_jobs(now=later) == 1
    outcome = report("job_completed", tokens_in=30, now=later)
    assert (outcome.duplicate, outcome.usage.tokens_used) == (False, 30)
    assert Job.objects.get().state == "completed"


def test_failed_job_on_a_repository_starts_its_cooldown(agent, make_repo_limit, now):
    make_repo_limit(cooldown_after_failure=timedelta(minutes=15))
    run_job("agent-1", "job-1", repo="octo-org/api", event="job_failed", tokens_in=2, now=now)
    assert RepoUsage.objects.get().last_failure_at == now
    result = services.check(agent_id="agent-1", repo="octo-org/api", now=now + timedelta(minutes=5))
    assert (result.allowed, result.retry_after) == (False, 600)


def test_report_naming_another_model_than_the_job_is_a_conflict(agent, now):
    services.dispatch(agent_id="agent-1", job_id="job-1", model="claude-sonnet", now=now)
    with pytest.raises(UsageConflict) as error:
        report("job_completed", model="gpt-5", tokens_in=3, now=now)
    assert error.value.field == "model"
    assert Job.objects.get().state == "running"


def test_report_without_a_model_is_charged_to_the_jobs_model(agent, now):
    services.dispatch(agent_id="agent-1", job_id="job-1", model="claude-sonnet", now=now)
    report("job_completed", model="", tokens_in=3, now=now)
    assert ModelUsage.objects.get(model="claude-sonnet").tokens_used == 3


def test_usage_counts_in_the_day_it_is_received_and_keeps_its_timestamp(agent, now):
    sent = datetime(2026, 3, 9, 23, 59, tzinfo=UTC)  # yesterday, by the reporter's clock
    report("job_completed", tokens_in=9, now=now, timestamp=sent)
    event = UsageEvent.objects.get()
    assert (event.timestamp, event.received_at, event.period_start) == (sent, now, day_start(now))
    assert AgentUsage.objects.get().period_start == day_start(now)


def test_report_for_an_unknown_agent_is_an_error(db, now):
    with pytest.raises(AllowanceNotFound):
        report("job_completed", tokens_in=1, now=now)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event": "job_exploded"}, "event"),
        ({"tokens_in": -1}, "tokens_in"),
        ({"tokens_out": 2**63}, "tokens_out"),
        ({"tokens_in": 1.5}, "tokens_in"),
        ({"tokens_in": True}, "tokens_in"),
        ({"tokens_in": BIGINT_MAX, "tokens_out": 1}, "tokens_out"),
        ({"job_id": ""}, "job_id"),
        ({"job_id": "has space"}, "job_id"),
    ],
)
def test_malformed_reports_are_refused_and_change_nothing(agent, now, changes, field):
    args = {"agent_id": "agent-1", "job_id": "job-1", "event": "job_completed", "now": now}
    with pytest.raises(InvalidInput) as error:
        services.record_usage(**{**args, **changes})
    assert error.value.field == field
    assert (Job.objects.count(), UsageEvent.objects.count(), AgentUsage.objects.count()) == (
        0,
        0,
        0,
    )


def test_largest_token_counts_are_recorded_exactly(agent, now):
    report("job_completed", tokens_in=BIGINT_MAX - 1, tokens_out=1, model="", now=now)
    assert agent_tokens() == BIGINT_MAX


def test_a_report_that_would_overflow_a_counter_is_refused_whole(agent, now):
    report("job_completed", job_id="a", tokens_in=10, model="big", now=now)
    ModelUsage.objects.filter(model="big").update(tokens_used=BIGINT_MAX - 5)
    with pytest.raises(InvalidInput, match="overflow"):
        report("job_completed", job_id="b", tokens_in=6, model="big", now=now)
    # The agent's counter had already moved inside the transaction; it moved back with it.
    assert (agent_tokens(), Job.objects.count(), UsageEvent.objects.count()) == (10, 1, 1)


def test_cost_is_rounded_to_the_nearest_microcent(agent, make_model_quota, now):
    make_model_quota(model="cheap", input_price_per_mtok=Decimal("0.0375"))
    report("job_completed", model="cheap", tokens_in=3, now=now)
    # 3 x 0.0375 x 100 = 11.25 microcents
    assert ModelUsage.objects.get(model="cheap").cost_microcents == 11


def test_event_log_sums_to_every_counter(agent, priced_model, now):
    model = "claude-sonnet"
    run_job("agent-1", "j1", model=model, tokens_in=1234, tokens_out=99, now=now)
    run_job("agent-1", "j2", model=model, event="job_failed", tokens_in=77, now=now)
    report("job_cancelled", job_id="j3", tokens_in=5, now=now)
    housekeeping.reset_usage(agent_id="agent-1", now=now)
    report("job_completed", job_id="j4", tokens_in=10, now=now)
    log = UsageEvent.objects.aggregate(
        tokens=Sum("tokens_delta"),
        jobs=Sum("jobs_delta"),
        model_tokens=Sum("model_tokens_delta"),
        cost=Sum("cost_delta_microcents"),
        requests=Sum("requests_delta"),
    )
    agent_usage = AgentUsage.objects.get()
    model_usage = ModelUsage.objects.get()
    assert (
        (log["tokens"], log["jobs"])
        == (agent_usage.tokens_used, agent_usage.jobs_started)
        == (10, 0)
    )
    assert (log["model_tokens"], log["cost"], log["requests"]) == (
        model_usage.tokens_used,
        model_usage.cost_microcents,
        model_usage.requests,
    )
    assert model_usage.tokens_used == 1234 + 99 + 39 + 10


def test_a_report_naming_the_model_of_a_job_dispatched_without_one_charges_it(
    agent, priced_model, now
):
    services.dispatch(agent_id="agent-1", job_id="job-1", now=now)
    report("job_completed", tokens_in=1000, tokens_out=0, now=now)
    assert ModelUsage.objects.get(model="claude-sonnet").tokens_used == 1000
    assert Job.objects.get().model == "claude-sonnet"


# Each report's answer shows the agent as the report left it; it is worked out from what the
# report changed rather than read again, so it must equal a fresh read in every case.
HOUR_LONG = timedelta(hours=1)
ANSWER_CASES = {
    "a start": [("dispatch", "j1"), ("job_started", "j2")],
    "a completion": [("dispatch", "j1"), ("job_completed", "j1", 40, 2)],
    "a failure": [("dispatch", "j1"), ("job_failed", "j1", 7, 0)],
    "a cancel": [("dispatch", "j1"), ("job_cancelled", "j1", 9, 9)],
    "a duplicate start": [("dispatch", "j1"), ("job_started", "j1")],
    "a duplicate completion": [("job_completed", "j1", 5, 0), ("job_completed", "j1", 5, 0)],
    "a job never started": [("dispatch", "j1"), ("job_completed", "j2", 11, 0)],
    "a late start after the end": [("job_failed", "j1", 3, 0), ("job_started", "j1")],
    "the end of an expired job": [("dispatch", "old"), ("expire",), ("job_completed", "old", 8, 0)],
    "the end of an overdue job": [("dispatch", "old"), ("later",), ("job_completed", "old", 6, 0)],
    "a start beside an overdue job": [("dispatch", "old"), ("later",), ("job_started", "new")],
    "the end of a job at its maximum duration": [
        ("dispatch", "j1"),
        ("an hour on",),
        ("job_completed", "j1", 4, 0),
    ],
    "a report naming the model late": [
        ("dispatch-without-model", "j1"),
        ("job_completed", "j1", 12, 3),
    ],
}


@pytest.mark.parametrize("steps", ANSWER_CASES.values(), ids=ANSWER_CASES.keys())
def test_a_reports_answer_equals_a_fresh_read_of_the_agent(
    make_allowance, make_model_quota, now, steps
):
    make_allowance(daily_token_limit=100, daily_job_limit=10, max_job_duration=HOUR_LONG)
    make_model_quota()
    at = now
    for kind, *args in steps:
        if kind == "an hour on":
            at = now + HOUR_LONG  # still running: a job is overdue only after the hour
        elif kind == "later":
            at = now + HOUR_LONG + timedelta(minutes=1)  # "old" is overdue, not yet expired
        elif kind == "expire":
            at = now + HOUR_LONG + timedelta(minutes=1)
            assert housekeeping.expire_overdue_jobs(now=at) == 1
        elif kind.startswith("dispatch"):
            model = "" if kind.endswith("without-model") else "claude-sonnet"
            services.dispatch(agent_id="agent-1", job_id=args[0], model=model, now=at)
        else:
            answer = report(kind, args[0], *args[1:], now=at)
    assert answer.usage == selectors.usage_record(agent_id="agent-1", now=at)
