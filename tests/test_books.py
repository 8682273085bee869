"""The descriptions of the books agree with each other, so that adding a counter cannot be
done halfway (rules.py's docstring has the checklist these tests enforce).

A usage model names, in ``counters``, the event log's delta behind each of its counters;
services write both from one rules.Deltas, reconcile sums the deltas back, and a report's
answer moves the agent's state by them. A counter added to a usage model but not to its
description, to the event log, to Deltas, to reconcile or to the agent's state fails here.
"""

from dataclasses import fields

import pytest
from django.db import models

from quotas import reconcile, rules
from quotas.models import AgentUsage, ModelMinuteUsage, ModelUsage, RepoUsage, UsageEvent

# Columns of a usage row that are not counters: its key, its day and its bookkeeping.
NOT_COUNTERS = {"id", "agent_id", "model", "repo", "period_start", "minute_start"}
NOT_COUNTERS |= {"closed_at", "updated_at"}


def counter_fields(usage_model) -> set[str]:
    return {
        field.name for field in usage_model._meta.concrete_fields if field.name not in NOT_COUNTERS
    }


def recomputed(usage_model) -> set[str]:
    """The counters reconcile_usage recomputes for a usage model."""
    [counters] = [sums for model, _, sums, _ in reconcile.BOOKS if model is usage_model]
    return set(counters)


@pytest.mark.parametrize("usage_model", [AgentUsage, ModelUsage])
def test_every_counter_is_described_with_the_event_delta_it_sums(usage_model):
    assert counter_fields(usage_model) == set(usage_model.counters)
    assert set(usage_model.counters.values()) <= set(rules.Deltas._fields)


def test_the_event_log_records_every_delta_and_only_those():
    logged = {
        field.name
        for field in UsageEvent._meta.concrete_fields
        if "_delta" in field.name and isinstance(field, models.IntegerField)
    }
    assert logged == set(rules.Deltas._fields)
    described = set(AgentUsage.counters.values()) | set(ModelUsage.counters.values())
    assert described == logged  # no delta that feeds no counter


@pytest.mark.parametrize("usage_model", [AgentUsage, ModelUsage, RepoUsage])
def test_reconcile_recomputes_every_counter(usage_model):
    assert recomputed(usage_model) == counter_fields(usage_model)


def test_a_repositorys_counters_each_count_one_kind_of_event():
    assert counter_fields(RepoUsage) == {*RepoUsage.counted_events, *RepoUsage.moments}
    assert len(set(RepoUsage.counted_events.values())) == len(RepoUsage.counted_events)


def test_the_per_minute_count_has_the_one_counter_reconcile_compares():
    # reconcile._minute_drift compares "requests" with the job ledger; a second counter here
    # would need a comparison of its own there.
    assert counter_fields(ModelMinuteUsage) == {"requests"}


def test_an_agents_state_and_usage_record_carry_every_counter_that_counts_against_a_limit():
    state = {field.name for field in fields(rules.AgentState)}
    record = {field.name for field in fields(rules.UsageRecord)}
    assert set(AgentUsage.limit_counters) <= set(AgentUsage.counters)
    assert set(AgentUsage.limit_counters) <= state & record
    # What was consumed is a fact of the books, never a rule's input.
    assert not (set(AgentUsage.counters) - set(AgentUsage.limit_counters)) & state


@pytest.mark.parametrize("counter", sorted(AgentUsage.limit_counters))
def test_a_reports_answer_moves_each_agent_counter_by_its_delta(make_allowance, counter):
    agent = rules.AgentState(
        allowance=make_allowance(),
        tokens_used=5,
        jobs_started=3,
        running_jobs=2,
        oldest_running_at=None,
    )
    moved = rules.after_report(
        agent, rules.Deltas(**{AgentUsage.counters[counter]: 7}), running_change=-1
    )
    expected = {name: getattr(agent, name) for name in AgentUsage.limit_counters}
    expected[counter] += 7
    assert {name: getattr(moved, name) for name in AgentUsage.limit_counters} == expected
    assert moved.running_jobs == 1
