"""reset_usage() and the reset_daily_usage command."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from quotas import housekeeping, selectors, services
from quotas.exceptions import AllowanceNotFound
from quotas.models import AgentUsage, Job, ModelMinuteUsage, ModelUsage, RepoUsage, UsageEvent
from quotas.periods import day_start
from quotas.reconcile import reconcile_usage
from tests.conftest import run_job


def fill(agent_id, now, jobs=1, tokens=50):
    """Start ``jobs`` jobs (left running) and charge ``tokens`` through one more job, never
    dispatched: a final report first seen counts no start, so the day's jobs stay ``jobs``
    (``run_job`` would count one more, and a full day would refuse it)."""
    day = f"{now:%m%d}"
    for i in range(jobs):
        services.dispatch(agent_id=agent_id, job_id=f"{day}-{i}", model="m", now=now)
    services.record_usage(
        agent_id=agent_id,
        job_id=f"{day}-done",
        event="job_completed",
        model="m",
        tokens_in=tokens,
        now=now,
    )


def run_command(*args):
    out = StringIO()
    call_command("reset_daily_usage", *args, stdout=out)
    return out.getvalue().strip()


def test_reset_restores_the_agents_capacity_and_keeps_jobs_running(make_allowance, now):
    make_allowance(daily_token_limit=50, daily_job_limit=2)
    fill("agent-1", now, jobs=2, tokens=50)
    assert services.check(agent_id="agent-1", now=now).allowed is False
    assert housekeeping.reset_usage(agent_id="agent-1", now=now) == 1
    result = services.check(agent_id="agent-1", now=now)
    assert (result.allowed, result.remaining_tokens, result.remaining_jobs) == (True, 50, 2)
    assert Job.objects.filter(state="running").count() == 2
    assert selectors.usage_record(agent_id="agent-1", now=now).active_jobs == 2


def test_reset_logs_what_it_removed(make_allowance, now):
    make_allowance()
    fill("agent-1", now, jobs=3, tokens=70)
    housekeeping.reset_usage(agent_id="agent-1", now=now)
    event = UsageEvent.objects.get(event="usage_reset")
    assert (event.agent_id, event.tokens_delta, event.jobs_delta, event.model_tokens_delta) == (
        "agent-1",
        -70,
        -3,
        0,
    )


def test_reset_leaves_model_usage_and_other_agents_alone(make_allowance, now):
    make_allowance("a")
    make_allowance("b")
    fill("a", now)
    fill("b", now)
    housekeeping.reset_usage(agent_id="a", now=now)
    assert dict(AgentUsage.objects.values_list("agent_id", "tokens_used")) == {"a": 0, "b": 50}
    assert ModelUsage.objects.get().tokens_used == 100


def test_reset_of_every_agent(make_allowance, now):
    make_allowance("a")
    make_allowance("b")
    fill("a", now)
    fill("b", now)
    assert housekeeping.reset_usage(now=now) == 2
    assert housekeeping.reset_usage(now=now) == 0
    assert list(AgentUsage.objects.values_list("tokens_used", "jobs_started")) == [(0, 0), (0, 0)]


def test_reset_keeps_yesterday_as_history(make_allowance, now):
    make_allowance()
    fill("agent-1", now - timedelta(days=1), tokens=40)
    housekeeping.reset_usage(agent_id="agent-1", now=now)
    assert AgentUsage.objects.get(period_start=day_start(now - timedelta(days=1))).tokens_used == 40


def test_reset_of_an_unknown_agent_is_an_error(db, now):
    with pytest.raises(AllowanceNotFound):
        housekeeping.reset_usage(agent_id="ghost", now=now)


def test_command_closes_finished_days_and_expires_overdue_jobs(make_allowance, now):
    make_allowance("a", max_job_duration=timedelta(hours=2))
    make_allowance("b", max_job_duration=timedelta(hours=2))
    yesterday = now - timedelta(days=1)
    fill("a", yesterday, jobs=2)
    services.record_repo_event(repo="octo-org/api", kind="pr_opened", now=yesterday)
    fill("b", now, jobs=1)
    with time_machine.travel(now, tick=False):
        first = run_command()
        second = run_command()
    assert first == (
        "Done: close 1 agent, 1 model and 1 repo usage days; expire 2 overdue jobs; delete 1 "
        "per-minute job counts older than an hour."
    )
    assert second == (
        "Done: close 0 agent, 0 model and 0 repo usage days; expire 0 overdue jobs; delete 0 "
        "per-minute job counts older than an hour."
    )
    # Yesterday's minute went; this minute's job still counts in the model's hour.
    assert list(ModelMinuteUsage.objects.values_list("minute_start", "requests")) == [(now, 1)]
    assert dict(Job.objects.values_list("job_id", "state")) == {
        "0309-0": "expired",
        "0309-1": "expired",
        "0309-done": "completed",
        "0310-0": "running",
        "0310-done": "completed",
    }
    assert AgentUsage.objects.get(agent_id="a").closed_at == now
    assert AgentUsage.objects.get(agent_id="b").closed_at is None
    assert RepoUsage.objects.get().closed_at == now


def test_command_dry_run_changes_nothing(make_allowance, now):
    make_allowance(max_job_duration=timedelta(minutes=1))
    fill("agent-1", now - timedelta(days=1), jobs=1)
    fill("agent-1", now - timedelta(minutes=5), jobs=1)
    with time_machine.travel(now, tick=False):
        output = run_command("--dry-run", "--agent", "agent-1")
    assert output == (
        "Dry run: would close 1 agent, 1 model and 0 repo usage days; would expire 1 overdue jobs;"
        " would delete 1 per-minute job counts older than an hour; would reset today's usage of "
        "agent-1 (1 usage row)."
    )
    assert ModelMinuteUsage.objects.count() == 2
    assert Job.objects.filter(state="running").count() == 1
    assert AgentUsage.objects.filter(closed_at__isnull=False).count() == 0
    assert AgentUsage.objects.get(period_start=day_start(now)).tokens_used == 50


def test_command_with_an_agent_resets_that_agent_today(make_allowance, now):
    make_allowance("a")
    make_allowance("b")
    fill("a", now)
    fill("b", now)
    with time_machine.travel(now, tick=False):
        output = run_command("--agent", "a")
        again = run_command("--agent", "a")
    assert output.endswith("reset today's usage of a (1 usage row).")
    assert again.endswith("reset today's usage of a (0 usage row).")
    assert dict(AgentUsage.objects.values_list("agent_id", "tokens_used")) == {"a": 0, "b": 50}


def test_command_with_an_unknown_agent_fails_clearly_and_changes_nothing(make_allowance, now):
    make_allowance(max_job_duration=timedelta(minutes=1))
    fill("agent-1", now - timedelta(days=1))
    with pytest.raises(CommandError, match="allowance not found for agent: ghost"):
        run_command("--agent", "ghost")
    assert AgentUsage.objects.filter(closed_at__isnull=False).count() == 0
    assert Job.objects.filter(state="expired").count() == 0


def test_a_reset_gives_capacity_back_but_consumption_and_spend_stay(
    make_allowance, make_model_quota, now
):
    make_allowance("a", daily_token_limit=1_000)
    make_model_quota("m", input_price_per_mtok=10)  # 1,000 tokens cost 1 cent
    run_job("a", "j1", now=now, model="m", tokens_in=600)
    housekeeping.reset_usage(agent_id="a", now=now)
    run_job("a", "j2", now=now, model="m", tokens_in=300)
    usage = AgentUsage.objects.get()
    assert (usage.tokens_used, usage.jobs_started) == (300, 1)  # against the limit
    assert (usage.tokens_consumed, usage.jobs_run, usage.cost_microcents) == (900, 2, 900_000)
    assert services.check(agent_id="a", now=now).remaining_tokens == 700
    assert ModelUsage.objects.get().tokens_used == usage.tokens_consumed
    assert reconcile_usage() == []
