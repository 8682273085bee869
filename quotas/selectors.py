"""Reads: today's usage beside each limit, each in one SQL query however much history exists.

Every figure comes from a correlated subquery on a unique or partial index, so the cost of a
check does not grow with the number of agents, jobs or days stored.
"""

from datetime import datetime

from django.db.models import (
    BigIntegerField,
    Count,
    IntegerField,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from quotas.models import (
    AgentAllowance,
    AgentUsage,
    Job,
    ModelQuota,
    ModelUsage,
    RepoLimit,
    RepoUsage,
)
from quotas.periods import day_start
from quotas.rules import HOUR, AgentState, ModelState, RepoState


def _value_or_zero(queryset: QuerySet, field: str, output_field) -> Coalesce:
    return Coalesce(
        Subquery(queryset.values(field)[:1], output_field=output_field),
        Value(0),
        output_field=output_field,
    )


def _count(queryset: QuerySet, group_by: str) -> Coalesce:
    counted = queryset.order_by().values(group_by).annotate(n=Count("pk")).values("n")
    return Coalesce(
        Subquery(counted, output_field=IntegerField()), Value(0), output_field=IntegerField()
    )


def _earliest(queryset: QuerySet, group_by: str, field: str) -> Subquery:
    return Subquery(queryset.order_by().values(group_by).annotate(first=Min(field)).values("first"))


def allowances_with_usage(now: datetime) -> QuerySet[AgentAllowance]:
    """Allowances annotated with today's tokens and jobs and their running jobs."""
    usage = AgentUsage.objects.filter(agent_id=OuterRef("agent_id"), period_start=day_start(now))
    running = Job.objects.filter(agent_id=OuterRef("agent_id"), state=Job.State.RUNNING)
    return AgentAllowance.objects.annotate(
        tokens_today=_value_or_zero(usage, "tokens_used", BigIntegerField()),
        jobs_today=_value_or_zero(usage, "jobs_started", IntegerField()),
        running_jobs=_count(running, "agent_id"),
        oldest_running_at=_earliest(running, "agent_id", "started_at"),
    )


def agent_state_from(allowance: AgentAllowance) -> AgentState:
    return AgentState(
        allowance=allowance,
        tokens_used=allowance.tokens_today,
        jobs_started=allowance.jobs_today,
        running_jobs=allowance.running_jobs,
        oldest_running_at=allowance.oldest_running_at,
    )


def agent_state(agent_id: str, *, now: datetime, lock: bool = False) -> AgentState | None:
    """Today's state of one agent, or None if it has no allowance of its own."""
    queryset = allowances_with_usage(now).filter(agent_id=agent_id)
    if lock:
        queryset = queryset.select_for_update()
    allowance = queryset.first()
    return None if allowance is None else agent_state_from(allowance)


def model_state(model: str, *, now: datetime, lock: bool = False) -> ModelState | None:
    """Today's usage of a model beside its quota, or None if the model has no quota."""
    if not model:
        return None
    usage = ModelUsage.objects.filter(model=OuterRef("model"), period_start=day_start(now))
    window = Job.objects.filter(model=OuterRef("model"), started_at__gt=now - HOUR)
    queryset = ModelQuota.objects.filter(model=model).annotate(
        tokens_today=_value_or_zero(usage, "tokens_used", BigIntegerField()),
        cost_today=_value_or_zero(usage, "cost_microcents", BigIntegerField()),
        started_last_hour=_count(window, "model"),
        oldest_in_window=_earliest(window, "model", "started_at"),
    )
    if lock:
        queryset = queryset.select_for_update()
    quota = queryset.first()
    if quota is None:
        return None
    return ModelState(
        quota=quota,
        tokens_used=quota.tokens_today,
        cost_microcents=quota.cost_today,
        started_last_hour=quota.started_last_hour,
        oldest_in_window=quota.oldest_in_window,
    )


def repo_state(repo: str, *, now: datetime) -> RepoState | None:
    """Today's activity on a repository beside its limit, or None if it has no limit."""
    if not repo:
        return None
    usage = RepoUsage.objects.filter(repo=OuterRef("repo"), period_start=day_start(now))
    # A cooldown may run past midnight, so the last failure is looked up across days.
    failures = RepoUsage.objects.filter(repo=OuterRef("repo"), last_failure_at__isnull=False)
    limit = (
        RepoLimit.objects.filter(repo=repo)
        .annotate(
            prs_today=_value_or_zero(usage, "prs_opened", IntegerField()),
            issues_today=_value_or_zero(usage, "issues_opened", IntegerField()),
            last_failure_at=Subquery(
                failures.order_by("-period_start").values("last_failure_at")[:1]
            ),
        )
        .first()
    )
    if limit is None:
        return None
    return RepoState(
        limit=limit,
        prs_opened=limit.prs_today,
        issues_opened=limit.issues_today,
        last_failure_at=limit.last_failure_at,
    )
