"""Quota days start at midnight in QUOTAS_TIME_ZONE and roll over without any job running."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from quotas import selectors, services
from quotas.periods import day_start, next_day_start, seconds_until
from tests.conftest import run_job

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def tokyo(settings):
    settings.QUOTAS_TIME_ZONE = "Asia/Tokyo"


def test_day_starts_at_local_midnight(tokyo):
    # 20:00 UTC on the 10th is 05:00 on the 11th in Tokyo.
    start = day_start(datetime(2026, 3, 10, 20, 0, tzinfo=UTC))
    assert start == datetime(2026, 3, 11, 0, 0, tzinfo=TOKYO)
    assert start == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def test_a_day_with_a_dst_change_is_23_hours_long(settings):
    settings.QUOTAS_TIME_ZONE = "America/New_York"
    half_past_midnight = datetime(
        2026, 3, 8, 0, 30, tzinfo=NEW_YORK
    )  # clocks spring forward at 2:00
    assert next_day_start(half_past_midnight) - day_start(half_past_midnight) == timedelta(hours=23)
    assert seconds_until(next_day_start(half_past_midnight), half_past_midnight) == 22 * 3600 + 1800


def test_seconds_until_rounds_up_and_is_never_zero():
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert seconds_until(now + timedelta(milliseconds=1), now) == 1
    assert seconds_until(now - timedelta(seconds=5), now) == 1
    assert seconds_until(now + timedelta(seconds=90, milliseconds=500), now) == 91


def test_usage_rolls_over_at_local_midnight_without_a_reset(
    tokyo, make_allowance, make_model_quota
):
    make_allowance(daily_token_limit=100, daily_job_limit=1)
    make_model_quota(daily_token_budget=100)
    before_midnight = datetime(2026, 3, 11, 23, 59, 0, tzinfo=TOKYO)
    with time_machine.travel(before_midnight, tick=False):
        run_job("agent-1", "job-1", model="claude-sonnet", tokens_in=100)
        refused = services.check(agent_id="agent-1", model="claude-sonnet")
    assert (refused.allowed, refused.reason, refused.retry_after) == (
        False,
        "daily token limit exceeded",
        60,
    )
    with time_machine.travel(before_midnight + timedelta(seconds=61), tick=False):
        fresh = services.check(agent_id="agent-1", model="claude-sonnet")
        usage = selectors.usage_record(agent_id="agent-1")
    assert (fresh.allowed, fresh.status, fresh.remaining_tokens, fresh.remaining_jobs) == (
        True,
        "ok",
        100,
        1,
    )
    assert (usage.tokens_used, usage.jobs_started) == (0, 0)
    assert usage.period_start == datetime(2026, 3, 12, 0, 0, tzinfo=TOKYO)


def test_utc_midnight_is_not_a_new_day_in_tokyo(tokyo, make_allowance):
    make_allowance(daily_job_limit=1)
    # 23:59 UTC and 00:01 UTC are 08:59 and 09:01 on the same Tokyo day.
    with time_machine.travel(datetime(2026, 3, 10, 23, 59, tzinfo=UTC), tick=False):
        services.dispatch(agent_id="agent-1", job_id="job-1")
    with time_machine.travel(datetime(2026, 3, 11, 0, 1, tzinfo=UTC), tick=False):
        result = services.check(agent_id="agent-1")
    assert (result.allowed, result.reason) == (False, "daily job limit exceeded")
