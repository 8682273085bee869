"""Data migrations: what they carry over from the tables that were there before."""

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("quotas", "0005_usage_day_and_job_state_indexes")]
AFTER = [("quotas", "0006_model_minute_usage")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_jobs_already_in_the_sliding_hour_are_counted_per_minute():
    apps = migrate(BEFORE)
    Job = apps.get_model("quotas", "Job")
    this_minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0)
    started = {
        "a": this_minute + timedelta(seconds=5),
        "b": this_minute + timedelta(seconds=40),
        "c": this_minute - timedelta(minutes=30, seconds=1),
        "d": this_minute - timedelta(hours=2),  # can never count again
        "e": None,  # reported finished, never started
    }
    for job_id, at in started.items():
        Job.objects.create(agent_id="x", job_id=job_id, model="m", state="completed", started_at=at)
    Job.objects.create(agent_id="x", job_id="f", state="running", started_at=this_minute)
    try:
        apps = migrate(AFTER)
        minutes = apps.get_model("quotas", "ModelMinuteUsage").objects.order_by("minute_start")
        assert [(row.model, row.minute_start, row.requests) for row in minutes] == [
            ("m", this_minute - timedelta(minutes=31), 1),
            ("m", this_minute, 2),
        ]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_an_agents_consumption_and_spend_before_the_upgrade_come_from_the_event_log():
    apps = migrate([("quotas", "0007_consumption_refusal_details_change_log")])
    UsageEvent = apps.get_model("quotas", "UsageEvent")
    AgentUsage = apps.get_model("quotas", "AgentUsage")
    RefusalCount = apps.get_model("quotas", "RefusalCount")
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    event = {"agent_id": "x", "received_at": day, "period_start": day}
    UsageEvent.objects.create(event="job_started", job_id="1", jobs_delta=1, **event)
    UsageEvent.objects.create(event="job_started", job_id="2", jobs_delta=1, **event)
    UsageEvent.objects.create(
        event="job_completed",
        job_id="1",
        tokens_delta=700,
        model_tokens_delta=700,
        cost_delta_microcents=2_100_000,
        **event,
    )
    UsageEvent.objects.create(event="usage_reset", tokens_delta=-700, jobs_delta=-2, **event)
    AgentUsage.objects.create(agent_id="x", period_start=day, tokens_used=0, jobs_started=0)
    AgentUsage.objects.create(agent_id="y", period_start=day, tokens_used=0, jobs_started=0)
    refused = RefusalCount.objects.create(
        agent_id="x", reason_code="concurrent_jobs", period_start=day, refusals=3
    )
    try:
        apps = migrate([("quotas", "0008_backfill_consumption_and_refusals")])
        usage = apps.get_model("quotas", "AgentUsage").objects.order_by("agent_id")
        assert [
            (row.agent_id, row.tokens_used, row.tokens_consumed, row.jobs_run, row.cost_microcents)
            for row in usage
        ] == [("x", 0, 700, 2, 2_100_000), ("y", 0, 0, 0, 0)]
        starts = apps.get_model("quotas", "UsageEvent").objects.filter(jobs_run_delta=1)
        assert sorted(starts.values_list("job_id", flat=True)) == ["1", "2"]
        tally = apps.get_model("quotas", "RefusalCount").objects.get(pk=refused.pk)
        assert tally.last_refused_at == tally.updated_at
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
