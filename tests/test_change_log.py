"""The change log: every change to a limit and every action on the books, who did it and why."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from quotas import changelog, housekeeping, services
from quotas.changelog import Actor
from quotas.exceptions import InvalidInput
from quotas.models import AgentAllowance, AgentUsage, ChangeLog, Job, ModelQuota, UsageEvent
from tests.conftest import run_job


def entries(**filters):
    rows = ChangeLog.objects.filter(**filters).order_by("id")
    return list(rows.values_list("change", "subject_kind", "subject", "actor", "summary"))


def test_a_limits_changes_are_logged_in_the_units_people_read(db):
    with changelog.acting(Actor("alice")):
        quota = ModelQuota.objects.create(model="opus", cost_ceiling=10_000)
        quota.cost_ceiling = 1_250
        quota.input_price_per_mtok = Decimal("15")
        quota.save()
        allowance = AgentAllowance.objects.create(agent_id="bot", daily_token_limit=250_000)
        allowance.max_job_duration = timedelta(hours=1, minutes=30)
        allowance.model_allowlist = ["opus", "sonnet"]
        allowance.daily_token_limit = 0
        allowance.save()
    assert entries(subject="opus")[1] == (
        "limit_changed",
        "model",
        "opus",
        "alice",
        "Cost ceiling per day: $100.00 \u2192 $12.50; "
        "Input price per million tokens: $0.00 \u2192 $15.00",
    )
    [added, changed] = entries(subject="bot")
    assert added[0] == "limit_added"
    assert "Daily token limit 250,000; Daily job limit unlimited" in added[4]
    assert changed[4] == (
        "Daily token limit: 250,000 \u2192 unlimited; Max job duration: unlimited \u2192 1h 30m; "
        "Allowed models: every model \u2192 opus, sonnet"
    )


def test_a_save_that_changes_no_limit_logs_nothing(make_allowance):
    allowance = make_allowance()
    allowance.save()
    assert [entry[0] for entry in entries()] == ["limit_added"]


def test_pausing_logs_a_pause_not_a_change_and_names_who_and_why(make_allowance):
    make_allowance()
    services.set_paused(agent_ids=["agent-1"], paused=True, actor=Actor("bob"), reason="loop")
    services.set_paused(agent_ids=["agent-1"], paused=False, actor=Actor("bob"))
    log = ChangeLog.objects.order_by("id").values_list("change", "actor", "reason", "summary")
    assert list(log)[1:] == [("paused", "bob", "loop", "paused"), ("resumed", "bob", "", "resumed")]
    history = AgentAllowance.history.order_by("history_id").values_list("paused", "history_actor")
    assert list(history)[1:] == [(True, "bob"), (False, "bob")]


def test_a_deleted_limit_is_logged_with_what_it_had(make_repo_limit):
    limit = make_repo_limit(max_daily_prs=3, cooldown_after_failure=timedelta(minutes=30))
    with changelog.acting(Actor("carol")):
        limit.delete()
    [deleted] = entries(change="limit_deleted")
    assert deleted[3:] == (
        "carol",
        "deleted; it had Max daily PRs 3; Max daily issues unlimited; Cooldown after failure 30m",
    )


def test_a_reset_is_logged_per_agent_with_what_it_gave_back(make_allowance, now):
    make_allowance("a")
    make_allowance("b")
    run_job("a", "j1", now=now, tokens_in=1_500)
    run_job("b", "j2", now=now, tokens_in=7)
    reset = housekeeping.reset_usage(now=now, actor=Actor("dana"), reason="new budget")
    assert reset == 2
    log = ChangeLog.objects.filter(change="usage_reset").order_by("subject")
    assert list(log.values_list("subject", "actor", "reason", "summary", "at")) == [
        ("a", "dana", "new budget", "gave back 1,500 tokens and 1 job of today", now),
        ("b", "dana", "new budget", "gave back 7 tokens and 1 job of today", now),
    ]


def test_the_reset_command_names_itself_and_the_reason(make_allowance, now):
    make_allowance()
    run_job("agent-1", "j", tokens_in=5)
    call_command("reset_daily_usage", "--agent", "agent-1", "--reason", "test", stdout=StringIO())
    [entry] = ChangeLog.objects.filter(change="usage_reset")
    assert (entry.actor, entry.reason) == ("command reset_daily_usage", "test")


def test_an_api_reset_names_the_key_and_takes_a_reason(admin_api, make_allowance):
    make_allowance()
    run_job("agent-1", "j", tokens_in=5)
    response = admin_api.post(
        "/api/v1/agents/agent-1/reset", {"reason": "ops ticket 42"}, format="json"
    )
    assert (response.status_code, response.json()["tokens_used"]) == (200, 0)
    [entry] = ChangeLog.objects.filter(change="usage_reset")
    assert entry.actor.startswith("API key 'test admin' (") and entry.reason == "ops ticket 42"
    too_long = admin_api.post("/api/v1/agents/agent-1/reset", {"reason": "x" * 501}, format="json")
    assert (too_long.status_code, list(too_long.json())) == (400, ["reason"])
    assert ChangeLog.objects.filter(change="usage_reset").count() == 1


# A repository's cooldown, ended early


def test_ending_a_cooldown_lets_jobs_start_again_and_is_logged(
    make_allowance, make_repo_limit, now
):
    make_allowance()
    make_repo_limit(cooldown_after_failure=timedelta(hours=1))
    services.record_repo_event(repo="octo-org/api", kind="failure", now=now)
    later = now + timedelta(minutes=20)
    assert services.check(agent_id="agent-1", repo="octo-org/api", now=later).allowed is False
    services.end_cooldown(repo="octo-org/api", actor=Actor("erin"), reason="fixed", now=later)
    assert services.check(agent_id="agent-1", repo="octo-org/api", now=later).allowed is True
    [entry] = ChangeLog.objects.filter(change="cooldown_ended")
    assert (entry.actor, entry.reason, entry.summary) == (
        "erin",
        "fixed",
        "cooldown ended 40m early",
    )
    assert UsageEvent.objects.filter(event="cooldown_ended", repo="octo-org/api").count() == 1
    # A failure after the early end starts a new cooldown.
    services.record_repo_event(repo="octo-org/api", kind="failure", now=later + timedelta(1))
    assert (
        services.check(agent_id="agent-1", repo="octo-org/api", now=later + timedelta(1)).allowed
        is False
    )


def test_a_repository_that_is_not_cooling_down_cannot_have_its_cooldown_ended(make_repo_limit, now):
    make_repo_limit(cooldown_after_failure=timedelta(hours=1))
    with pytest.raises(InvalidInput, match="octo-org/api is not cooling down"):
        services.end_cooldown(repo="octo-org/api", now=now)
    assert ChangeLog.objects.filter(change="cooldown_ended").count() == 0


# A running job, cancelled by a person


def test_cancelling_a_job_frees_its_slot_charges_nothing_and_is_logged(make_allowance, now):
    make_allowance(concurrent_jobs=1)
    services.dispatch(agent_id="agent-1", job_id="stuck", now=now)
    assert services.check(agent_id="agent-1", now=now).reason_code == "concurrent_jobs"
    services.cancel_job(agent_id="agent-1", job_id="stuck", actor=Actor("fay"), now=now)
    assert services.check(agent_id="agent-1", now=now).allowed is True
    job = Job.objects.get()
    assert (job.state, job.tokens_charged) == ("cancelled", 0)
    assert AgentUsage.objects.get().tokens_used == 0
    assert entries(change="job_cancelled") == [
        (
            "job_cancelled",
            "job",
            "agent-1/stuck",
            "fay",
            "cancelled: its slot is free, nothing charged",
        )
    ]


def test_a_job_that_is_not_running_cannot_be_cancelled(make_allowance, now):
    make_allowance()
    run_job("agent-1", "done", now=now, tokens_in=3)
    with pytest.raises(InvalidInput, match="job done of agent-1 is not running"):
        services.cancel_job(agent_id="agent-1", job_id="done", now=now)
    assert Job.objects.get().state == "completed"
    assert ChangeLog.objects.filter(change="job_cancelled").count() == 0
