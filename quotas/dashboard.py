"""The admin dashboard for budget managers: today's totals, who is close to a limit, who spends
most, and the last 14, 30 or 90 days as charts, each with its numbers as a table.

The totals, the top spenders and the charts count what was consumed: the facts a reset never
changes (selectors.CONSUMPTION), the same the exports give, so that the tiles, the charts and
the CSVs agree at any moment. Only "closest to a limit" reads the counters a reset gives back,
as the rules do.

Every figure is aggregated in the database, in the same eight queries however many agents,
models and days are stored. The figures arrive at the template already formatted, and the
charts come as SVG drawn by quotas.charts.
"""

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from django import forms
from django.conf import settings
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Greatest
from django.urls import NoReverseMatch, reverse

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
    AGENT_CONSUMED,
    agent_state_from,
    allowances_with_usage,
    model_quotas_with_usage,
    model_state_from,
)
from quotas.validators import DEFAULT_AGENT_ID

HISTORY_DAYS = 14
HISTORY_CHOICES = (14, 30, 90)
CLOSEST_LIMIT = 10
TOP_SPENDERS = 10
TOP_SERIES = 5
# The refusals page (RefusalCount's change list); the tile links there once it is registered.
REFUSALS_URL = "admin:quotas_refusalcount_changelist"
# A table's subject: its column heading and the admin page a row's name links to.
AGENT = ("Agent", "admin:quotas_agentallowance_change")
MODEL = ("Model", "admin:quotas_modelquota_change")
# The numbers each top spenders table shows, as (heading, row key): money first, as ranked.
TOP_FIGURES = (
    ("Cost", "cost_display"),
    ("Tokens", "tokens_display"),
    ("Jobs", "jobs_display"),
)
EMPTY_TABLES = {
    "closest_agents": "No agent has a daily token or job limit.",
    "closest_models": "No model has a daily token budget or cost ceiling.",
    "top_agents": "No usage yet today.",
    "top_models": "No model used yet today.",
}


class RangeForm(forms.Form):
    """How many days the charts show: the dashboard's ``?days=``."""

    days = forms.TypedChoiceField(
        label="Days shown",
        choices=[(days, f"{days} days") for days in HISTORY_CHOICES],
        coerce=int,
        required=False,
        empty_value=HISTORY_DAYS,
    )

    def chosen(self) -> int:
        """The days asked for, or the default when the request asked for something else."""
        return self.cleaned_data["days"] if self.is_valid() else HISTORY_DAYS


def dashboard_context(*, now: datetime, days: int = HISTORY_DAYS) -> dict:
    """Everything the admin dashboard shows about the quota day containing ``now`` and the
    ``days - 1`` days before it, in a fixed number of SQL queries (see the module docstring).

    Numbers come both raw (for tests and sorting) and formatted as strings with thousands
    separators or as dollars, since the admin does not load django.contrib.humanize.
    """
    history_dates = history_days(now, days)
    starts = [start for _, start in history_dates]
    today_start = starts[-1]
    consumed = _sum_by_day(AgentUsage.objects, starts, AGENT_CONSUMED)
    refusals = _total(RefusalCount.objects.filter(period_start=today_start), "refusals")
    tokens, cost, jobs = consumed[today_start]
    totals = {"tokens": tokens, "cost_microcents": cost, "jobs_run": jobs, "refusals": refusals}
    history = _history(history_dates, consumed)
    context = {
        "time_zone": settings.QUOTAS_TIME_ZONE,
        "today": history_dates[-1][0],
        "today_display": long_date(history_dates[-1][0]),
        "totals": totals,
        "total_cards": _total_cards(totals),
        "has_usage_today": any(totals[key] for key in ("tokens", "cost_microcents", "jobs_run")),
        "closest_agents": closest_agents(now),
        "closest_models": closest_models(now),
        "top_agents": top_agents_today(today_start),
        "top_models": top_models_today(today_start),
        "history": history,
        "has_history": any(day["tokens"] or day["cost_microcents"] for day in history["days"]),
        "charts": _charts(history),
    }
    return {**context, "tables": _tables(context)}


# Days


def history_days(now: datetime, count: int = HISTORY_DAYS) -> list[tuple[date, datetime]]:
    """The local dates of the last ``count`` quota days, oldest first, each with its
    ``period_start``.

    Each start is local midnight of its own date, so days across a DST change are 23 or 25
    hours long exactly as the usage rows recorded them.
    """
    today = now.astimezone(quota_zone()).date()
    dates = [today - timedelta(days=back) for back in range(count - 1, -1, -1)]
    # The start of each date's day as the usage rows were keyed: day_start() of its noon.
    return [(d, day_start(datetime.combine(d, time(12), tzinfo=quota_zone()))) for d in dates]


# Cards and tables


def _total_cards(totals: dict) -> list[dict]:
    return [
        {"label": "Tokens used", "value": number(totals["tokens"])},
        {"label": "Spent", "value": dollars_from_microcents(totals["cost_microcents"])},
        {"label": "Jobs started", "value": number(totals["jobs_run"])},
        {"label": "Refusals", "value": number(totals["refusals"]), "url": _url(REFUSALS_URL)},
    ]


def _url(name: str) -> str:
    """The page's address, or '' while no admin registers it (the tile then shows no link)."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _tables(context: dict) -> list[dict]:
    """The grid's four tables, described for the one loop in the template that draws them."""
    return [
        _table(context, "closest_agents", "Agents closest to their limits", *AGENT),
        _table(context, "closest_models", "Models closest to their limits", *MODEL),
        _table(context, "top_agents", "Top spenders today: agents", *AGENT, TOP_FIGURES),
        _table(context, "top_models", "Top spenders today: models", *MODEL, TOP_FIGURES),
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


def _sum_by_day(manager, starts: list[datetime], fields: tuple[str, ...]) -> dict:
    """``{period_start: (sum of each field)}`` for every day in ``starts``, zero where nothing
    was used."""
    sums = {f"sum_{index}": Sum(field) for index, field in enumerate(fields)}
    rows = (
        manager.filter(period_start__in=starts)
        .order_by()
        .values("period_start")
        .annotate(**sums)
        .values_list("period_start", *sums)
    )
    by_day = {start: (0,) * len(fields) for start in starts}
    for start, *values in rows:
        # Aware datetimes compare and hash by instant, whatever zone the database returns.
        by_day[start] = tuple(int(value or 0) for value in values)
    return by_day


def _series(manager, starts: list[datetime], subject: str, field: str) -> dict[str, list[int]]:
    """Per-day values of ``field`` for the top subjects by their sum over ``starts``, largest
    first.

    The top five are chosen by a subquery, so only their rows (at most 5 per day) are read.
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
    rows = in_window.filter(**{f"{subject}__in": top}).values_list(subject, "period_start", field)
    for name, start, value in rows:
        series.setdefault(name, [0] * len(starts))[position[start]] = int(value)
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
    """Up to 10 agents by what their jobs cost today, then by tokens, with their jobs: what
    they consumed, whatever a reset gave back since."""
    allowance = AgentAllowance.objects.filter(agent_id=OuterRef("agent_id")).values("pk")[:1]
    rows = (
        AgentUsage.objects.filter(period_start=today_start)
        .filter(Q(cost_microcents__gt=0) | Q(tokens_consumed__gt=0))
        .order_by("-cost_microcents", "-tokens_consumed", "agent_id")
        .values_list("agent_id", *AGENT_CONSUMED)
        .annotate(allowance_pk=Subquery(allowance))[:TOP_SPENDERS]
    )
    return [_spender(name, pk, tokens, cost, jobs) for name, tokens, cost, jobs, pk in rows]


def top_models_today(today_start: datetime) -> list[dict]:
    """Up to 10 models by what was spent on them today, then by tokens."""
    quota = ModelQuota.objects.filter(model=OuterRef("model")).values("pk")[:1]
    rows = (
        ModelUsage.objects.filter(period_start=today_start)
        .filter(Q(cost_microcents__gt=0) | Q(tokens_used__gt=0))
        .order_by("-cost_microcents", "-tokens_used", "model")
        .values_list("model", "tokens_used", "cost_microcents", "requests")
        .annotate(quota_pk=Subquery(quota))[:TOP_SPENDERS]
    )
    return [_spender(name, pk, tokens, cost, jobs) for name, tokens, cost, jobs, pk in rows]


def _spender(name: str, pk: int | None, tokens: int, cost: int, jobs: int) -> dict:
    return {
        "name": name,
        "pk": pk,
        "cost_microcents": cost,
        "cost_display": dollars_from_microcents(cost),
        "tokens": tokens,
        "tokens_display": number(tokens),
        "jobs": jobs,
        "jobs_display": number(jobs),
    }


# History


def _charts(history: dict) -> list[dict]:
    """The charts in the order shown, each with its figures as a table for every reader."""
    zone, days = settings.QUOTAS_TIME_ZONE, len(history["days"])
    charts_shown = [
        {
            "heading": "",
            "svg": charts.history_chart_svg(history),
            "caption": "Bars: tokens per day by agent (left axis). Line: dollars spent per day "
            f"(right axis). Days in {zone}; the last bar is today so far.",
            "numbers": history_numbers(history),
        }
    ]
    if history["models"]:
        charts_shown.append(
            {
                "heading": "Cost per day of the top models",
                "svg": charts.models_chart_svg(history),
                "caption": "One row per model, all on the same scale; the total over the "
                f"{days} days is on the right.",
                "numbers": models_numbers(history),
            }
        )
    return charts_shown


def _history(days: list[tuple[date, datetime]], consumed: dict) -> dict:
    starts = [start for _, start in days]
    agents = _series(AgentUsage.objects, starts, "agent_id", "tokens_consumed")
    models = _series(ModelUsage.objects, starts, "model", "cost_microcents")
    points = [
        {
            "date": day,
            "label": short_date(day),
            "tokens": consumed[start][0],
            "cost_microcents": consumed[start][1],
            "jobs": consumed[start][2],
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


def history_numbers(history: dict) -> dict:
    """The token chart's figures as a table: a row per day (tokens of each agent drawn, of the
    others, of all, and the cost), and a row of totals."""
    columns = [*(a["agent_id"] for a in history["agents"]), "other agents"]
    series = [*(a["tokens"] for a in history["agents"]), history["other_agent_tokens"]]
    if not any(history["other_agent_tokens"]):
        columns, series = columns[:-1], series[:-1]
    days = history["days"]
    rows = [
        [
            *(number(values[index]) for values in series),
            number(day["tokens"]),
            dollars_from_microcents(day["cost_microcents"]),
        ]
        for index, day in enumerate(days)
    ]
    total_cost = sum(day["cost_microcents"] for day in days)
    return _numbers(
        "Tokens and cost per day",
        [*(f"{name} (tokens)" for name in columns), "All agents (tokens)", "Cost"],
        days,
        rows,
        [
            *(number(sum(values)) for values in series),
            number(sum(day["tokens"] for day in days)),
            dollars_from_microcents(total_cost),
        ],
    )


def models_numbers(history: dict) -> dict:
    """The model chart's figures as a table: the cost of each model drawn per day, and totals."""
    models = history["models"]
    rows = [
        [dollars_from_microcents(m["cost_microcents"][i]) for m in models]
        for i in range(len(history["days"]))
    ]
    return _numbers(
        "Cost per day of the top models",
        [f"{m['model']} (cost)" for m in models],
        history["days"],
        rows,
        [dollars_from_microcents(m["total"]) for m in models],
    )


def _numbers(caption: str, columns: list[str], days: list[dict], rows: list, totals: list) -> dict:
    return {
        "caption": caption,
        "span": f"{long_date(days[0]['date'])} to {long_date(days[-1]['date'])}",
        "columns": columns,
        "rows": [
            {"label": long_date(day["date"]), "cells": cells}
            for day, cells in zip(days, rows, strict=True)
        ],
        "totals": totals,
    }
