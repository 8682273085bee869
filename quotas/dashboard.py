"""The admin dashboard for budget managers: today's totals, who is close to a limit, who spends
most, and the last 14 days as a chart.

Every figure is aggregated in the database, in the same nine queries however many agents,
models and days are stored. The figures arrive at the template already formatted, and the
charts come as SVG drawn by quotas.charts.
"""

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest

from quotas import charts
from quotas.display import (
    STANDING_LABELS,
    dollars_from_microcents,
    long_date,
    number,
    short_date,
)
from quotas.models import (
    MICROCENTS_PER_CENT,
    AgentAllowance,
    AgentUsage,
    ModelQuota,
    ModelUsage,
    RefusalCount,
    UsageEvent,
)
from quotas.periods import day_start, quota_zone
from quotas.rules import (
    cost_ceiling_microcents,
    model_status,
    percent_used,
    share_used_sql,
    standing,
)
from quotas.selectors import (
    agent_state_from,
    allowances_with_usage,
    model_quotas_with_usage,
    model_state_from,
)
from quotas.validators import DEFAULT_AGENT_ID

HISTORY_DAYS = 14
CLOSEST_LIMIT = 10
TOP_SPENDERS = 10
TOP_SERIES = 5
# A table's subject: its column heading and the admin page a row's name links to.
AGENT = ("Agent", "admin:quotas_agentallowance_change")
MODEL = ("Model", "admin:quotas_modelquota_change")
# The numbers each top spenders table shows, as (heading, row key).
TOP_AGENT_FIGURES = (
    ("Tokens", "tokens_display"),
    ("Jobs", "jobs_display"),
    ("Cost", "cost_display"),
)
TOP_MODEL_FIGURES = (
    ("Cost", "cost_display"),
    ("Tokens", "tokens_display"),
    ("Jobs", "requests_display"),
)
EMPTY_TABLES = {
    "closest_agents": "No agent has a daily token or job limit.",
    "closest_models": "No model has a daily token budget or cost ceiling.",
    "top_agents": "No usage yet today.",
    "top_models": "No model used yet today.",
}


def dashboard_context(*, now: datetime) -> dict:
    """Everything the admin dashboard shows about the quota day containing ``now`` and the 13
    days before it, in a fixed number of SQL queries (see the module docstring).

    Numbers come both raw (for tests and sorting) and formatted as strings with thousands
    separators or as dollars, since the admin does not load django.contrib.humanize.
    """
    days = history_days(now)
    starts = [start for _, start in days]
    today_start = starts[-1]
    agent_days = _sum_by_day(AgentUsage.objects, starts, tokens="tokens_used", jobs="jobs_started")
    model_days = _sum_by_day(ModelUsage.objects, starts, cost="cost_microcents")
    refusals = _total(RefusalCount.objects.filter(period_start=today_start), "refusals")
    totals = {
        "tokens": agent_days[today_start]["tokens"],
        "cost_microcents": model_days[today_start]["cost"],
        "jobs_started": agent_days[today_start]["jobs"],
        "refusals": refusals,
    }
    history = _history(days, agent_days, model_days)
    context = {
        "time_zone": settings.QUOTAS_TIME_ZONE,
        "today": days[-1][0],
        "today_display": long_date(days[-1][0]),
        "totals": totals,
        "total_cards": _total_cards(totals),
        "has_usage_today": any(
            totals[key] for key in ("tokens", "cost_microcents", "jobs_started")
        ),
        "closest_agents": closest_agents(now),
        "closest_models": closest_models(now),
        "top_agents": top_agents_today(today_start),
        "top_models": top_models_today(today_start),
        "history": history,
        "has_history": any(day["tokens"] or day["cost_microcents"] for day in history["days"]),
        "chart_svg": charts.history_chart_svg(history),
        "models_chart_svg": charts.models_chart_svg(history),
    }
    return {**context, "tables": _tables(context)}


# Days


def history_days(now: datetime) -> list[tuple[date, datetime]]:
    """The local dates of the last 14 quota days, oldest first, each with its ``period_start``.

    Each start is local midnight of its own date, so days across a DST change are 23 or 25
    hours long exactly as the usage rows recorded them.
    """
    today = now.astimezone(quota_zone()).date()
    dates = [today - timedelta(days=back) for back in range(HISTORY_DAYS - 1, -1, -1)]
    # The start of each date's day as the usage rows were keyed: day_start() of its noon.
    return [(d, day_start(datetime.combine(d, time(12), tzinfo=quota_zone()))) for d in dates]


# Cards and tables


def _total_cards(totals: dict) -> list[dict]:
    return [
        {"label": "Tokens used", "value": number(totals["tokens"])},
        {"label": "Spent", "value": dollars_from_microcents(totals["cost_microcents"])},
        {"label": "Jobs started", "value": number(totals["jobs_started"])},
        {"label": "Refusals", "value": number(totals["refusals"])},
    ]


def _tables(context: dict) -> list[dict]:
    """The grid's four tables, described for the one loop in the template that draws them."""
    return [
        _table(context, "closest_agents", "Agents closest to their limits", *AGENT),
        _table(context, "closest_models", "Models closest to their limits", *MODEL),
        _table(context, "top_agents", "Top spenders today: agents", *AGENT, TOP_AGENT_FIGURES),
        _table(context, "top_models", "Top spenders today: models", *MODEL, TOP_MODEL_FIGURES),
    ]


def _table(
    context: dict, key: str, title: str, subject: str, change_url: str, figures: tuple = ()
) -> dict:
    """The table of the rows in ``context[key]``. With ``figures`` (heading, row key) each row
    shows those numbers, right-aligned; without, how much of its limits it used and its status."""
    return {
        "title": title,
        "subject": subject,
        "change_url": change_url,
        "empty": EMPTY_TABLES[key],
        "numeric": bool(figures),
        "columns": [heading for heading, _ in figures] or ["Used", "Status"],
        "rows": [{**row, "cells": [row[name] for _, name in figures]} for row in context[key]],
    }


# Queries


def _total(queryset: QuerySet, field: str) -> int:
    return int(queryset.aggregate(total=Sum(field))["total"] or 0)


def _sum_by_day(manager, starts: list[datetime], **sums: str) -> dict[datetime, dict[str, int]]:
    """``{period_start: {name: sum}}`` for every day in ``starts``, zero where nothing was used."""
    rows = (
        manager.filter(period_start__in=starts)
        .order_by()
        .values("period_start")
        .annotate(**{name: Sum(field) for name, field in sums.items()})
    )
    by_day = {start: dict.fromkeys(sums, 0) for start in starts}
    for row in rows:
        # Aware datetimes compare and hash by instant, whatever zone the database returns.
        by_day[row["period_start"]] = {name: int(row[name] or 0) for name in sums}
    return by_day


def _series(manager, starts: list[datetime], subject: str, field: str) -> dict[str, list[int]]:
    """Per-day values of ``field`` for the top subjects by its 14-day sum, largest first.

    The top five are chosen by a subquery, so only their rows (at most 5 x 14) are read.
    """
    in_window = manager.filter(period_start__in=starts).order_by()
    top = (
        in_window.values(subject)
        .annotate(total=Sum(field))
        .filter(total__gt=0)
        .order_by("-total", subject)
        .values(subject)[:TOP_SERIES]
    )
    position = {start: index for index, start in enumerate(starts)}
    series: dict[str, list[int]] = {}
    for row in in_window.filter(**{f"{subject}__in": top}).values(subject, "period_start", field):
        values = series.setdefault(row[subject], [0] * len(starts))
        values[position[row["period_start"]]] = int(row[field])
    return dict(sorted(series.items(), key=lambda item: (-sum(item[1]), item[0])))


# Closest to a limit


def closest_agents(now: datetime) -> list[dict]:
    """Up to 10 agents with a token or job limit, by the largest share of a limit used today."""
    allowances = (
        allowances_with_usage(now)
        .exclude(agent_id=DEFAULT_AGENT_ID)
        .filter(Q(daily_token_limit__gt=0) | Q(daily_job_limit__gt=0))
        .annotate(
            share=Greatest(
                share_used_sql(F("tokens_today"), F("daily_token_limit")),
                share_used_sql(F("jobs_today"), F("daily_job_limit")),
            )
        )
        .order_by("-share", "agent_id")[:CLOSEST_LIMIT]
    )
    return [_agent_row(allowance) for allowance in allowances]


def _agent_row(allowance: AgentAllowance) -> dict:
    tokens, jobs = int(allowance.tokens_today), int(allowance.jobs_today)
    limits = [
        (tokens, allowance.daily_token_limit, number, "tokens"),
        (jobs, allowance.daily_job_limit, number, "jobs"),
    ]
    status = standing(agent_state_from(allowance))
    return {"pk": allowance.pk, "name": allowance.agent_id, **_limit_fields(limits, status)}


def closest_models(now: datetime) -> list[dict]:
    """Up to 10 models with a token budget or cost ceiling, by the largest share used today."""
    quotas = (
        model_quotas_with_usage(now)
        .filter(Q(daily_token_budget__gt=0) | Q(cost_ceiling__gt=0))
        .annotate(
            share=Greatest(
                share_used_sql(F("tokens_today"), F("daily_token_budget")),
                share_used_sql(F("cost_today"), F("cost_ceiling"), scale=MICROCENTS_PER_CENT),
            )
        )
        .order_by("-share", "model")[:CLOSEST_LIMIT]
    )
    return [_model_row(quota) for quota in quotas]


def _model_row(quota: ModelQuota) -> dict:
    tokens, cost = int(quota.tokens_today), int(quota.cost_today)
    ceiling = cost_ceiling_microcents(quota.cost_ceiling)
    limits = [
        (tokens, quota.daily_token_budget, number, "tokens"),
        (cost, ceiling, dollars_from_microcents, "spent"),
    ]
    status = model_status(model_state_from(quota))
    return {"pk": quota.pk, "name": quota.model, **_limit_fields(limits, status)}


def _limit_fields(limits: list[tuple[int, int, Callable[[int], str], str]], status: str) -> dict:
    """The percentage of the most used limit, and a plain sentence about every limit set."""
    limits = [limit for limit in limits if limit[1] > 0]
    percent = max(percent_used(used, limit) for used, limit, _, _ in limits)
    details = [f"{shown(used)} of {shown(limit)} {unit}" for used, limit, shown, unit in limits]
    return {
        "percent": percent,
        "percent_display": f"{percent:,}%",
        "progress": min(percent, 100),
        "status": status,
        "status_label": STANDING_LABELS[status],
        "detail": "; ".join(details),
    }


# Top spenders


def top_agents_today(today_start: datetime) -> list[dict]:
    """Up to 10 agents by tokens charged today, with their jobs and what their jobs cost."""
    events = UsageEvent.objects.filter(agent_id=OuterRef("agent_id"), period_start=today_start)
    cost = events.order_by().values("agent_id").annotate(cost=Sum("cost_delta_microcents"))
    allowance = AgentAllowance.objects.filter(agent_id=OuterRef("agent_id")).values("pk")[:1]
    rows = (
        AgentUsage.objects.filter(period_start=today_start, tokens_used__gt=0)
        .annotate(
            cost=Coalesce(
                Subquery(cost.values("cost"), output_field=BigIntegerField()),
                Value(0),
                output_field=BigIntegerField(),
            ),
            allowance_pk=Subquery(allowance),
        )
        .order_by("-tokens_used", "agent_id")[:TOP_SPENDERS]
    )
    return [
        {
            "name": row.agent_id,
            "pk": row.allowance_pk,
            "tokens": row.tokens_used,
            "tokens_display": number(row.tokens_used),
            "jobs": row.jobs_started,
            "jobs_display": number(row.jobs_started),
            "cost_microcents": int(row.cost),
            "cost_display": dollars_from_microcents(int(row.cost)),
        }
        for row in rows
    ]


def top_models_today(today_start: datetime) -> list[dict]:
    """Up to 10 models by what was spent on them today (then by tokens)."""
    quota = ModelQuota.objects.filter(model=OuterRef("model")).values("pk")[:1]
    rows = (
        ModelUsage.objects.filter(period_start=today_start)
        .filter(Q(cost_microcents__gt=0) | Q(tokens_used__gt=0))
        .annotate(quota_pk=Subquery(quota))
        .order_by("-cost_microcents", "-tokens_used", "model")[:TOP_SPENDERS]
    )
    return [
        {
            "name": row.model,
            "pk": row.quota_pk,
            "tokens": row.tokens_used,
            "tokens_display": number(row.tokens_used),
            "requests": row.requests,
            "requests_display": number(row.requests),
            "cost_microcents": row.cost_microcents,
            "cost_display": dollars_from_microcents(row.cost_microcents),
        }
        for row in rows
    ]


# History


def _history(days: list[tuple[date, datetime]], agent_days: dict, model_days: dict) -> dict:
    starts = [start for _, start in days]
    agents = _series(AgentUsage.objects, starts, "agent_id", "tokens_used")
    models = _series(ModelUsage.objects, starts, "model", "cost_microcents")
    points = [
        {
            "date": day,
            "label": short_date(day),
            "tokens": agent_days[start]["tokens"],
            "cost_microcents": model_days[start]["cost"],
        }
        for day, start in days
    ]
    other = [
        point["tokens"] - sum(values[index] for values in agents.values())
        for index, point in enumerate(points)
    ]
    return {
        "days": points,
        "agents": [{"agent_id": a, "tokens": v, "total": sum(v)} for a, v in agents.items()],
        "other_agent_tokens": other,
        "models": [{"model": m, "cost_microcents": v, "total": sum(v)} for m, v in models.items()],
    }
