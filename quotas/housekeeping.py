"""The day's housekeeping: resetting an agent's day, expiring overdue jobs, closing finished
days, forgetting per-minute counts no sliding hour can reach.

None of it is needed for correctness: a day that is over stops counting at midnight, a job
past its maximum duration holds no slot whether or not it was marked expired, and the rate
limit reads only the last hour. The reset command (and, for one agent, the admin and the API)
runs these to tidy up and to give an agent its day back.
"""

from datetime import datetime
from functools import reduce
from operator import or_

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from quotas import changelog, display, rules, selectors
from quotas.changelog import Actor
from quotas.exceptions import AllowanceNotFound
from quotas.models import (
    AgentAllowance,
    AgentUsage,
    ModelMinuteUsage,
    ModelUsage,
    RepoUsage,
    UsageEvent,
)
from quotas.periods import day_start, minute_start
from quotas.validators import require_valid
from quotas.vocabulary import Change, EventKind, JobState, Subject


def reset_usage(
    *,
    agent_id: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: Actor | None = None,
    reason: str = "",
) -> int:
    """Give one agent (or every agent) its capacity back for today: what counts against its
    daily limits goes back to zero. What it consumed and spent stays, as facts.

    Running jobs stay running. Each reset is logged in the event log with the amounts it gave
    back, so the counters can still be recomputed, and in the change log with who and why.
    Returns how many agents were (or, with ``dry_run``, would be) reset.
    """
    now = now or timezone.now()
    period = day_start(now)
    counted = AgentUsage.limit_counters
    used = reduce(or_, (Q(**{f"{counter}__gt": 0}) for counter in counted))
    with transaction.atomic():
        usage = AgentUsage.objects.filter(used, period_start=period)
        if agent_id is not None:
            require_valid(agent_id=agent_id)
            # Same lock as dispatch and reports, so a reset never interleaves with them.
            if not AgentAllowance.objects.select_for_update().filter(agent_id=agent_id).exists():
                raise AllowanceNotFound(f"allowance not found for agent: {agent_id}")
            usage = usage.filter(agent_id=agent_id)
        rows = list(usage.select_for_update())
        if dry_run:
            return len(rows)
        UsageEvent.objects.bulk_create(
            UsageEvent(
                event=EventKind.USAGE_RESET,
                agent_id=row.agent_id,
                received_at=now,
                period_start=period,
                **{AgentUsage.counters[counter]: -getattr(row, counter) for counter in counted},
            )
            for row in rows
        )
        AgentUsage.objects.filter(pk__in=[row.pk for row in rows]).update(
            **dict.fromkeys(counted, 0), updated_at=now
        )
        for row in rows:
            changelog.record(
                change=Change.USAGE_RESET,
                subject_kind=Subject.AGENT,
                subject=row.agent_id,
                summary=f"gave back {display.count(row.tokens_used, 'token')} and "
                f"{display.count(row.jobs_started, 'job')} of today",
                actor=actor,
                reason=reason,
                at=now,
            )
    return len(rows)


def expire_overdue_jobs(
    *, agent_id: str | None = None, now: datetime | None = None, dry_run: bool = False
) -> int:
    """Mark running jobs older than their agent's ``max_job_duration`` as expired.

    Expired jobs stop holding a concurrency slot; a late final report is still charged.
    Returns how many jobs were (or, with ``dry_run``, would be) expired.
    """
    now = now or timezone.now()
    allowances = selectors.allowances_with_duration(agent_id)
    durations = allowances.order_by().values_list("max_job_duration", flat=True).distinct()
    expired = 0
    # One statement per distinct duration (there are few) rather than one per agent.
    for duration in list(durations):
        agents = allowances.filter(max_job_duration=duration).values("agent_id")
        overdue = selectors.overdue_jobs(rules.running_since(duration, now)).filter(
            agent_id__in=agents
        )
        expired += overdue.count() if dry_run else _expired(overdue, now)
    return expired


def expire_jobs(*, agent_id: str, running_since: datetime, now: datetime) -> int:
    """Mark the agent's jobs running since before ``running_since`` as expired."""
    return _expired(selectors.overdue_jobs(running_since).filter(agent_id=agent_id), now)


def _expired(overdue, now: datetime) -> int:
    return overdue.update(state=JobState.EXPIRED, ended_at=now)


def close_finished_days(*, now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Mark usage rows of days that are over as closed; they are history from now on."""
    now = now or timezone.now()
    closed = {}
    for label, usage_model in (("agent", AgentUsage), ("model", ModelUsage), ("repo", RepoUsage)):
        finished = usage_model.objects.filter(
            period_start__lt=day_start(now), closed_at__isnull=True
        )
        closed[label] = finished.count() if dry_run else finished.update(closed_at=now)
    return closed


def prune_minute_usage(*, now: datetime | None = None, dry_run: bool = False) -> int:
    """Delete the per-minute job counts that can no longer fall in any model's sliding hour.
    Returns how many rows were (or, with ``dry_run``, would be) deleted."""
    now = now or timezone.now()
    stale = ModelMinuteUsage.objects.filter(minute_start__lt=minute_start(now - rules.HOUR))
    return stale.count() if dry_run else stale.delete()[0]
