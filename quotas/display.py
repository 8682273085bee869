"""How numbers, money, durations and standings look to a budget manager."""

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils.formats import date_format
from django.utils.html import format_html

from quotas.models import MICROCENTS_PER_CENT
from quotas.periods import quota_zone
from quotas.rules import at_limit, is_near, percent_used
from quotas.validators import CENTS, LIMIT_BOUNDS
from quotas.vocabulary import Standing

UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
STANDING_LABELS = dict(Standing.choices)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
LABEL_CHARS = 28


def number(value: int) -> str:
    return f"{value:,}"


def limit(value: int) -> str:
    return "unlimited" if value == 0 else number(value)


def used_of(used: int, of: int) -> str:
    """'1,234 of 10,000', or '1,234 of unlimited'."""
    return f"{number(used)} of {limit(of)}"


def dollars_from_microcents(microcents: int) -> str:
    """Microcents as dollars to the nearest cent (halves up), e.g. '$1,234.05'."""
    cents = (microcents + MICROCENTS_PER_CENT // 2) // MICROCENTS_PER_CENT
    return f"${cents // 100:,}.{cents % 100:02d}"


def dollars_from_cents(cents: int) -> str:
    return f"${Decimal(cents) / 100:,.2f}"


def price(dollars: Decimal) -> str:
    """Dollars to the cent, or to as many places as the price has: '$3.00', '$0.0001'."""
    dollars = Decimal(dollars)
    if dollars == dollars.quantize(Decimal("0.01")):
        return f"${dollars:,.2f}"
    return f"${dollars.normalize():,f}"


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def duration(value: timedelta) -> str:
    """A duration as people say it: '1h 30m', '45m', '2d 4h'; '0' for none."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in UNITS:
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts) or "0"


def minutes_left(left: timedelta) -> str:
    """A wait in whole minutes, written as a duration is typed: '12m', '1h 5m', '1h'; rounded
    up, so that a wait never reads shorter than it is."""
    minutes = max(1, -(-int(left.total_seconds()) // 60))
    return duration(timedelta(minutes=minutes))


def moment(value: datetime | None, empty: str = "—") -> str:
    """A time in QUOTAS_TIME_ZONE, named, as every admin page writes one (Django's own pages
    take the same DATETIME_FORMAT from project/formats): 'Dec 1, 2026 16:03 UTC'."""
    if value is None:
        return empty
    return date_format(value.astimezone(quota_zone()), "DATETIME_FORMAT")


def clock(value: datetime) -> str:
    """The time of day of a moment of today, in QUOTAS_TIME_ZONE, named: '14:02 UTC'."""
    return date_format(value.astimezone(quota_zone()), "TIME_FORMAT")


def short_date(day: date) -> str:
    """The date as "Nov 29", the same in every locale."""
    return f"{MONTHS[day.month - 1]} {day.day}"


def long_date(day: date) -> str:
    return f"{short_date(day)}, {day.year}"


def truncate(label: str, length: int = LABEL_CHARS) -> str:
    return label if len(label) <= length else label[: length - 1] + "\u2026"


def count(amount: int, noun: str) -> str:
    """'1 agent', '3 agents'."""
    return f"{amount:,} {noun}{'' if amount == 1 else 's'}"


def badge(standing: str):
    """The standing as text and colour (never colour alone)."""
    return format_html(
        '<span class="quota-badge quota-{}">{}</span>', standing, STANDING_LABELS[standing]
    )


def bar(used: int, of: int, text: str):
    """A progress bar with its figures and share written beside it ('260,000 of 250,000
    (104 %)': one job may overshoot a limit by what it consumed); no bar for unlimited.

    Its colour is where usage stands, as the rules say: green below QUOTAS_WARNING_RATIO,
    amber from it, red at the limit and over it."""
    if of <= 0:
        return text
    level = "exceeded" if at_limit(used, of) else "warning" if is_near(used, of) else "ok"
    return format_html(
        '<progress class="quota-bar quota-bar-{}" value="{}" max="{}" aria-hidden="true">'
        "</progress> {} ({} %)",
        level,
        min(used, of),
        of,
        text,
        f"{percent_used(used, of):,}",
    )


# A limit's fields, as the forms, the change log, History and read-only pages show them

# The words people use for a limit's fields, wherever a label shows; the models'
# verbose names (which the database's migrations carry) stay as they are.
LABELS = {
    "agent_id": "Agent ID",
    "paused": "Paused",
    "daily_token_limit": "Daily token limit",
    "daily_job_limit": "Daily job limit",
    "concurrent_jobs": "Concurrent jobs",
    "max_job_duration": "Max job duration",
    "model_allowlist": "Allowed models",
    "model": "Model",
    "daily_token_budget": "Daily token budget",
    "hourly_rate_limit": "Hourly job limit",
    "cost_ceiling": "Cost ceiling per day",
    "input_price_per_mtok": "Input price per million tokens",
    "output_price_per_mtok": "Output price per million tokens",
    "repo": "Repository",
    "max_daily_prs": "Max daily PRs",
    "max_daily_issues": "Max daily issues",
    "cooldown_after_failure": "Cooldown after failure",
}


INTEGERS = {"IntegerField", "BigIntegerField", "PositiveIntegerField", "SmallIntegerField"}


def field_label(model, name: str) -> str:
    """'Cost ceiling per day'; a field without a word of its own, by its verbose name."""
    if name in LABELS:
        return LABELS[name]
    label = str(model._meta.get_field(name).verbose_name)
    return label[:1].upper() + label[1:]


def field_value(model, name: str, value) -> str:
    """A limit's value in the unit a person reads it in: '$12.50', '1h 30m', 'unlimited',
    '250,000', 'claude-opus-4, claude-sonnet-4', 'yes'."""
    bound = LIMIT_BOUNDS.get(name)
    if value is None:
        return "—"
    if bound is not None and bound.zero and not value:
        return bound.zero
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, Decimal):
        return price(value)
    if isinstance(value, list):
        return ", ".join(value) if value else "every model"
    if bound is not None and bound.unit == CENTS:
        return dollars_from_cents(value)
    if isinstance(value, int) and model._meta.get_field(name).get_internal_type() in INTEGERS:
        return number(value)
    return str(value)
