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
