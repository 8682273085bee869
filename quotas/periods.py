"""Quota days: each starts at midnight in ``QUOTAS_TIME_ZONE``.

Usage rows carry the start of the day they belong to, so a day that is over simply stops
being "today" and reads as zero; no job has to run at midnight for that to be true.
"""

import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings


def quota_zone() -> ZoneInfo:
    return ZoneInfo(settings.QUOTAS_TIME_ZONE)


def day_start(now: datetime) -> datetime:
    """The instant (in UTC) at which the quota day containing ``now`` began."""
    local = now.astimezone(quota_zone())
    return datetime.combine(local.date(), time.min, tzinfo=local.tzinfo).astimezone(UTC)


def next_day_start(now: datetime) -> datetime:
    """The instant (in UTC) at which the next quota day begins."""
    local = now.astimezone(quota_zone())
    tomorrow = local.date() + timedelta(days=1)
    # Combining a date with midnight (not adding 24 hours) keeps DST days 23 or 25 hours long.
    return datetime.combine(tomorrow, time.min, tzinfo=local.tzinfo).astimezone(UTC)


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds from ``now`` until ``moment``, rounded up and never below 1."""
    return max(1, math.ceil((moment - now).total_seconds()))


def minute_start(moment: datetime) -> datetime:
    """The first instant (in UTC) of the minute containing ``moment``."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)
