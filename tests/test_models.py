"""The database keeps its own invariants: constraints a bug or a retry runs into."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from quotas.models import AgentAllowance, AgentUsage, Job, ModelQuota, RepoLimit, UsageEvent
from quotas.periods import day_start


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (AgentAllowance, {"agent_id": "a", "daily_token_limit": -1}),
        (AgentAllowance, {"agent_id": "a", "concurrent_jobs": -1}),
        (AgentAllowance, {"agent_id": "a", "max_job_duration": timedelta(seconds=-1)}),
        (ModelQuota, {"model": "m", "cost_ceiling": -5}),
        (ModelQuota, {"model": "m", "input_price_per_mtok": -1}),
        (RepoLimit, {"repo": "o/r", "max_daily_prs": -1}),
        (RepoLimit, {"repo": "o/r", "cooldown_after_failure": timedelta(seconds=-1)}),
        (Job, {"agent_id": "a", "job_id": "j", "state": "running", "tokens_charged": -1}),
        (Job, {"agent_id": "a", "job_id": "j", "state": "exploded"}),
        (UsageEvent, {"event": "job_started", "tokens_in": -1}),
    ],
)
def test_negative_values_and_unknown_states_are_refused_by_the_database(db, now, model, values):
    if model is UsageEvent:
        values = {**values, "received_at": now, "period_start": day_start(now)}
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(**values)


def test_negative_usage_is_refused_by_the_database(db, now):
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentUsage.objects.create(agent_id="a", period_start=day_start(now), tokens_used=-1)


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (AgentAllowance, {"agent_id": "a"}),
        (ModelQuota, {"model": "m"}),
        (RepoLimit, {"repo": "o/r"}),
        (Job, {"agent_id": "a", "job_id": "j", "state": "running"}),
    ],
)
def test_ids_are_unique(db, model, values):
    model.objects.create(**values)
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(**values)


def test_one_usage_row_per_agent_and_day(db, now):
    AgentUsage.objects.create(agent_id="a", period_start=day_start(now))
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentUsage.objects.create(agent_id="a", period_start=day_start(now))
    AgentUsage.objects.create(agent_id="a", period_start=day_start(now - timedelta(days=1)))
    assert AgentUsage.objects.count() == 2


def test_a_job_event_is_recorded_once(db, now):
    values = {
        "event": "job_completed",
        "agent_id": "a",
        "job_id": "j",
        "received_at": now,
        "period_start": day_start(now),
    }
    UsageEvent.objects.create(**values)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageEvent.objects.create(**values)
    assert UsageEvent.objects.count() == 1


def test_resets_are_not_held_to_the_job_event_rule(db, now):
    values = {
        "event": "usage_reset",
        "agent_id": "a",
        "received_at": now,
        "period_start": day_start(now),
    }
    UsageEvent.objects.create(**values)
    UsageEvent.objects.create(**values)
    assert UsageEvent.objects.count() == 2


def test_token_counts_are_64_bit(db, now):
    AgentUsage.objects.create(agent_id="a", period_start=day_start(now), tokens_used=2**63 - 1)
    assert AgentUsage.objects.get().tokens_used == 2**63 - 1


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        (AgentAllowance(agent_id="has space"), "agent_id"),
        (AgentAllowance(agent_id="a" * 201), "agent_id"),
        (AgentAllowance(agent_id="a", model_allowlist=["ok", "ok"]), "model_allowlist"),
        (AgentAllowance(agent_id="a", model_allowlist="claude"), "model_allowlist"),
        (AgentAllowance(agent_id="a", model_allowlist=["bad model"]), "model_allowlist"),
        (ModelQuota(model="ends-with/"), "model"),
        (RepoLimit(repo="no-owner"), "repo"),
        (RepoLimit(repo="-bad/name"), "repo"),
        (RepoLimit(repo="owner/.."), "repo"),
    ],
)
def test_validation_names_the_field_to_fix(db, instance, field):
    with pytest.raises(ValidationError) as error:
        instance.full_clean()
    assert field in error.value.message_dict


@pytest.mark.parametrize(
    "instance",
    [
        AgentAllowance(agent_id="*"),
        AgentAllowance(agent_id="team.bot:v2-1_a", model_allowlist=["anthropic/claude-sonnet-4.5"]),
        ModelQuota(model="openrouter/meta-llama:3.1-70b"),
        RepoLimit(repo="octo-org/my.repo_name-2"),
    ],
)
def test_valid_ids_pass_validation(db, instance):
    instance.full_clean()
