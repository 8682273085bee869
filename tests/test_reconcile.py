"""reconcile_usage: every counter recomputed from the event log."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from quotas import housekeeping, services
from quotas.models import AgentUsage, ModelMinuteUsage, ModelUsage, RepoUsage
from quotas.periods import day_start, minute_start
from quotas.reconcile import reconcile_usage
from tests.conftest import run_job

NO_DRIFT = "No drift: every usage counter agrees with the event log and the job ledger."


@pytest.fixture
def workload(make_allowance, make_model_quota, now):
    """A day and a half of everything the engine records."""
    make_allowance("a", max_job_duration=timedelta(hours=1))
    make_allowance("b")
    make_model_quota(model="m", input_price_per_mtok=3, output_price_per_mtok="15.5")
    yesterday = now - timedelta(days=1)
    for when in (yesterday, now):
        tag = f"{when:%d}"
        services.dispatch(agent_id="a", job_id=f"{tag}-1", model="m", repo="o/r", now=when)
        run_job("a", f"{tag}-2", model="m", tokens_in=1234, tokens_out=99, now=when)
        services.record_usage(
            agent_id="a", job_id=f"{tag}-1", event="job_failed", tokens_in=7, now=when
        )
        services.record_usage(
            agent_id="b", job_id=f"{tag}-3", event="job_cancelled", model="m", now=when
        )
        services.record_usage(
            agent_id="b", job_id=f"{tag}-4", event="job_started", model="x", now=when
        )
        services.record_repo_event(repo="o/r", kind="pr_opened", now=when)
        services.record_repo_event(repo="o/r", kind="issue_opened", agent_id="b", now=when)
    housekeeping.reset_usage(agent_id="a", now=now)
    services.record_usage(
        agent_id="a", job_id="late", event="job_completed", model="m", tokens_in=5, now=now
    )


def run(*args):
    out = StringIO()
    try:
        call_command("reconcile_usage", *args, stdout=out)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue().strip().splitlines()


def test_the_engines_books_agree_with_the_event_log(workload):
    assert reconcile_usage() == []
    assert run() == (0, [NO_DRIFT])


def test_drift_is_reported_with_what_the_log_says_and_fixed(workload, now):
    today = day_start(now)
    AgentUsage.objects.filter(agent_id="a", period_start=today).update(tokens_used=999)
    ModelUsage.objects.filter(model="m", period_start=today).update(cost_microcents=1)
    RepoUsage.objects.filter(repo="o/r", period_start=today).update(
        prs_opened=5, last_failure_at=None
    )
    AgentUsage.objects.filter(agent_id="b").delete()
    AgentUsage.objects.create(agent_id="ghost", period_start=today, tokens_used=3)
    code, lines = run()
    assert code == 1
    day = f"{today:%Y-%m-%d}"
    assert f"agent usage a {day}: tokens_used is 999, the event log says 5" in lines
    assert f"agent usage ghost {day}: tokens_used is 3, the event log says 0" in lines
    assert f"agent usage b {day}: jobs_started is 0, the event log says 1" in lines
    assert f"repo usage o/r {day}: prs_opened is 5, the event log says 1" in lines
    assert any(
        line.startswith(f"model usage m {day}: cost_microcents is 1, the event log says")
        for line in lines
    )
    assert any(line.startswith(f"repo usage o/r {day}: last_failure_at is None") for line in lines)
    assert lines[-1] == f"Found {len(lines) - 1} drifted counters."
    fixed_code, fixed_lines = run("--fix")
    assert fixed_code == 1
    assert fixed_lines[-1] == f"Repaired {len(lines) - 1} drifted counters."
    assert run() == (0, [NO_DRIFT])
    assert AgentUsage.objects.get(agent_id="a", period_start=today).tokens_used == 5
    assert AgentUsage.objects.get(agent_id="ghost").tokens_used == 0


def test_a_dry_run_changes_nothing(workload, now):
    AgentUsage.objects.filter(agent_id="a", period_start=day_start(now)).update(tokens_used=999)
    assert run()[0] == 1
    assert AgentUsage.objects.get(agent_id="a", period_start=day_start(now)).tokens_used == 999


def test_the_last_hours_minute_counts_are_checked_against_the_job_ledger(workload, now):
    yesterday = minute_start(now - timedelta(days=1))
    with time_machine.travel(now + timedelta(minutes=10), tick=False):
        assert run() == (0, [NO_DRIFT])
        ModelMinuteUsage.objects.filter(model="m", minute_start=now).update(requests=7)
        ModelMinuteUsage.objects.create(model="ghost", minute_start=now, requests=2)
        # A minute no sliding hour can reach any more is not compared (nor kept by the reset).
        ModelMinuteUsage.objects.filter(minute_start=yesterday).update(requests=50)
        code, lines = run()
        assert (code, lines) == (
            1,
            [
                "model usage per minute ghost 2026-03-10 12:00 UTC: requests is 2, "
                "the job ledger says 0",
                "model usage per minute m 2026-03-10 12:00 UTC: requests is 7, "
                "the job ledger says 2",
                "Found 2 drifted counters.",
            ],
        )
        assert run("--fix")[1][-1] == "Repaired 2 drifted counters."
        assert run() == (0, [NO_DRIFT])
    minutes = ModelMinuteUsage.objects.filter(minute_start=now)
    assert dict(minutes.values_list("model", "requests")) == {"m": 2, "x": 1, "ghost": 0}
