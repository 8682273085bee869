"""The admin dashboard for budget managers: today's totals, who is close to a limit, who spends
most, and the last 14 days as a chart.

Every figure is aggregated in the database, in the same nine queries however many agents,
models and days are stored. The charts are SVG built here, so the page needs no JavaScript and
loads nothing from elsewhere. Agent ids and model names are user data: every label is escaped
before the SVG is marked safe.
"""

from collections.abc import Callable
from dataclasses import dataclass
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
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from quotas.display import STANDING_LABELS, dollars_from_microcents, number
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
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Okabe-Ito colours: told apart by most colour-blind readers; the legend names each one anyway.
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9")
OTHER_COLOUR = "#B8B8B8"
LABEL_CHARS = 28


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
    return {
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
        "chart_svg": history_chart_svg(history),
        "models_chart_svg": models_chart_svg(history),
    }


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


def short_date(day: date) -> str:
    """The date as "Nov 29", the same in every locale."""
    return f"{MONTHS[day.month - 1]} {day.day}"


def long_date(day: date) -> str:
    return f"{short_date(day)}, {day.year}"


# Formatting


def truncate(label: str, length: int = LABEL_CHARS) -> str:
    return label if len(label) <= length else label[: length - 1] + "\u2026"


def _total_cards(totals: dict) -> list[dict]:
    return [
        {"label": "Tokens used", "value": number(totals["tokens"])},
        {"label": "Spent", "value": dollars_from_microcents(totals["cost_microcents"])},
        {"label": "Jobs started", "value": number(totals["jobs_started"])},
        {"label": "Refusals", "value": number(totals["refusals"])},
    ]


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


# Charts
#
# The SVGs have a fixed viewBox and scale to the width of their container. The admin index
# gives its content about 400 to 600 pixels at page widths of 800 to 1280, so the viewBox is
# about that wide and its text stays readable. Colours come with names in a legend; text uses
# currentColor so that the admin's dark theme applies.

CHART_WIDTH = 540
CHAR_WIDTH = 6.8  # about the width of a digit at the charts' font size, for margins


@dataclass(frozen=True)
class Frame:
    """Where the plot sits inside a chart's viewBox."""

    left: float
    right: float
    top: float
    bottom: float

    def x(self, index: int, count: int) -> float:
        return self.left + (self.right - self.left) * (index + 0.5) / count

    def y(self, value: int, maximum: int) -> float:
        return self.bottom - (self.bottom - self.top) * value / maximum


def nice_ticks(maximum: int, count: int = 4) -> list[int]:
    """Evenly spaced round axis values (steps of 1, 2 or 5 x 10^n), 0 to at least ``maximum``."""
    rough = max(1, -(-maximum // count))
    magnitude = 10 ** (len(str(rough)) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    return [step * i for i in range(count + 1)]


def day_labels(points: list[dict]) -> list[tuple[str, str]]:
    """Two lines under each bar: the day of the month, then the month under the first day and
    the first of a month ("Feb 25" read downwards) or "today" under today. Fourteen one-line
    dates would overlap under narrow bars."""
    last = len(points) - 1
    labels = []
    for index, point in enumerate(points):
        day = point["date"]
        below = MONTHS[day.month - 1] if index == 0 or day.day == 1 else ""
        labels.append((str(day.day), below or ("today" if index == last else "")))
    return labels


def _width(labels: list[str]) -> float:
    return CHAR_WIDTH * max(len(label) for label in labels)


def _text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(label)}</text>'


def _svg(height: float, title: str, description: str, body: list[str]) -> SafeString:
    # Every caller escapes its labels (through _text or escape); title and description here.
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height:.0f}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="qd-svg" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12" '
        f'fill="currentColor"><title>{escape(title)}</title><desc>{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def history_chart_svg(history: dict) -> SafeString:
    """Stacked bars of tokens per day (top five agents and the rest) with the cost per day as
    a line on a second axis, a label under each day and a legend naming every colour."""
    points = history["days"]
    stacks = [(a["agent_id"], a["tokens"], colour) for a, colour in _coloured(history["agents"])]
    if any(history["other_agent_tokens"]):
        stacks.append(("other agents", history["other_agent_tokens"], OTHER_COLOUR))
    token_ticks = nice_ticks(max(p["tokens"] for p in points))
    tokens = [number(t) for t in token_ticks]
    cost_cents = nice_ticks(max(-(-p["cost_microcents"] // MICROCENTS_PER_CENT) for p in points))
    cost = [dollars_from_microcents(c * MICROCENTS_PER_CENT) for c in cost_cents]
    frame = Frame(
        left=_width(tokens) + 10, right=CHART_WIDTH - _width(cost) - 10, top=28, bottom=228
    )
    body = _axes(frame, points, tokens, cost)
    body += _bars(frame, points, stacks, token_ticks[-1])
    body += _cost_line(frame, points, cost_cents[-1] * MICROCENTS_PER_CENT)
    legend = [(name, colour, "bar") for name, _, colour in stacks]
    legend.append(("cost per day ($)", "currentColor", "line"))
    body += _legend(legend, left=frame.left, top=frame.bottom + 54)
    height = frame.bottom + 54 + 20 * -(-len(legend) // 3)
    title = f"Tokens and cost per day, {points[0]['label']} to {points[-1]['label']}"
    description = (
        f"Stacked bars: tokens per day by agent, the {len(history['agents'])} that used most "
        f"over these {len(points)} days each in its own colour. Line: cost per day in dollars. "
        f"Total: {number(sum(p['tokens'] for p in points))} tokens, "
        f"{dollars_from_microcents(sum(p['cost_microcents'] for p in points))}."
    )
    return _svg(height, title, description, body)


def _coloured(items: list) -> list:
    return list(zip(items, SERIES_COLOURS, strict=False))


def _axes(frame: Frame, points: list[dict], tokens: list[str], cost: list[str]) -> list[str]:
    body = ['<g class="qd-axes">']
    for index, (token_label, cost_label) in enumerate(zip(tokens, cost, strict=True)):
        y = frame.y(index, len(tokens) - 1)
        body.append(
            f'<line x1="{frame.left:.1f}" x2="{frame.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="currentColor" stroke-opacity="0.15"/>'
        )
        body.append(_text(frame.left - 6, y + 4, token_label, "end"))
        body.append(_text(frame.right + 6, y + 4, cost_label, "start"))
    body.append(_text(frame.left - 6, frame.top - 14, "Tokens", "end", ' font-weight="bold"'))
    body.append(_text(frame.right + 6, frame.top - 14, "Cost", "start", ' font-weight="bold"'))
    for index, (day, below) in enumerate(day_labels(points)):
        x, bold = frame.x(index, len(points)), ' font-weight="bold"' * (index == len(points) - 1)
        body.append(_text(x, frame.bottom + 15, day, extra=bold))
        if below:
            body.append(_text(x, frame.bottom + 29, below, extra=bold))
    body.append("</g>")
    return body


def _bars(frame: Frame, points: list[dict], stacks: list, maximum: int) -> list[str]:
    width = (frame.right - frame.left) / len(points) * 0.7
    body = ['<g class="qd-bars">']
    for index, point in enumerate(points):
        base = 0
        for name, values, colour in stacks:
            value = values[index]
            if value <= 0:
                continue
            top, bottom = frame.y(base + value, maximum), frame.y(base, maximum)
            tip = f"{name}, {point['label']}: {number(value)} tokens"
            body.append(
                f'<rect x="{frame.x(index, len(points)) - width / 2:.1f}" y="{top:.1f}" '
                f'width="{width:.1f}" height="{bottom - top:.1f}" fill="{colour}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            base += value
    body.append("</g>")
    return body


def _cost_line(frame: Frame, points: list[dict], maximum: int) -> list[str]:
    xy = [
        (frame.x(i, len(points)), frame.y(p["cost_microcents"], maximum))
        for i, p in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    body = [
        '<g class="qd-cost">',
        f'<polyline points="{path}" fill="none" stroke="currentColor" stroke-width="2"/>',
    ]
    for (x, y), point in zip(xy, points, strict=True):
        tip = f"{point['label']}: {dollars_from_microcents(point['cost_microcents'])}"
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="currentColor" '
            f'style="stroke: var(--body-bg, #fff)"><title>{escape(tip)}</title></circle>'
        )
    body.append("</g>")
    return body


def _legend(entries: list[tuple[str, str, str]], *, left: float, top: float) -> list[str]:
    """Three entries a row; long names are shortened, the whole name is the tooltip."""
    column = (CHART_WIDTH - left) / 3
    body = ['<g class="qd-legend">']
    for index, (name, colour, shape) in enumerate(entries):
        x, y = left + (index % 3) * column, top + (index // 3) * 20
        if shape == "bar":
            mark = f'<rect x="{x:.1f}" y="{y - 9}" width="12" height="12" fill="{colour}"/>'
        else:
            mark = (
                f'<line x1="{x:.1f}" x2="{x + 12:.1f}" y1="{y - 3}" y2="{y - 3}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        label = _text(x + 17, y + 1, truncate(name, int((column - 24) // CHAR_WIDTH)), "start")
        body.append(f"<g>{mark}<title>{escape(name)}</title>{label}</g>")
    body.append("</g>")
    return body


def models_chart_svg(history: dict) -> SafeString:
    """One row of daily cost bars per top model, on a shared scale, with its 14-day total."""
    models, points = history["models"], history["days"]
    names = [truncate(m["model"], 26) for m in models] or [""]
    totals = [dollars_from_microcents(m["total"]) for m in models] or [""]
    frame = Frame(left=_width(names) + 10, right=CHART_WIDTH - _width(totals) - 10, top=8, bottom=0)
    row_height = 28
    height = frame.top + row_height * max(1, len(models)) + 22
    maximum = max([max(m["cost_microcents"]) for m in models] + [1])
    slot = (frame.right - frame.left) / len(points)
    body = []
    for row, (model, colour) in enumerate(_coloured(models)):
        base = frame.top + row_height * (row + 1) - 6
        body.append(_text(frame.left - 8, base - 3, names[row], "end"))
        body.append(_text(frame.right + 8, base - 3, totals[row], "start"))
        for index, (cost, point) in enumerate(zip(model["cost_microcents"], points, strict=True)):
            bar = (row_height - 8) * cost / maximum
            tip = f"{model['model']}, {point['label']}: {dollars_from_microcents(cost)}"
            body.append(
                f'<rect x="{frame.left + slot * (index + 0.15):.1f}" y="{base - bar:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{max(bar, 0.5):.1f}" fill="{colour}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    for index in (0, len(points) - 1):
        body.append(_text(frame.x(index, len(points)), height - 6, points[index]["label"]))
    title = f"Cost per day of the top models, {points[0]['label']} to {points[-1]['label']}"
    description = "; ".join(f"{m['model']}: {dollars_from_microcents(m['total'])}" for m in models)
    return _svg(height, title, description or "No model cost in these days.", body)
