"""How numbers, money, durations and standings look to a budget manager."""

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils.html import format_html

from quotas.models import MICROCENTS_PER_CENT
from quotas.periods import quota_zone
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
    """'12 min', '1 h 5 min': rounded up, so that a wait never reads shorter than it is."""
    minutes = max(1, -(-int(left.total_seconds()) // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def moment(value: datetime | None, empty: str = "—") -> str:
    """A time in QUOTAS_TIME_ZONE, short: 'Nov 29 16:05'."""
    return empty if value is None else value.astimezone(quota_zone()).strftime("%b %d %H:%M")


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
    """A progress bar with its figures written beside it; no bar for unlimited."""
    if of <= 0:
        return text
    return format_html(
        '<progress class="quota-bar" value="{}" max="{}" aria-hidden="true"></progress> {}',
        min(used, of),
        of,
        text,
    )


# A limit's fields, as the change log, History and read-only pages show them

# Fields whose 0 means "no limit", and how to say it.
NONE_MEANS = {"cooldown_after_failure": "no cooldown"}
MONEY_IN_CENTS = {"cost_ceiling"}


def field_label(model, name: str) -> str:
    """'Daily token limit'."""
    label = str(model._meta.get_field(name).verbose_name)
    return label[:1].upper() + label[1:]


def field_value(model, name: str, value) -> str:
    """A limit's value in the unit a person reads it in: '$12.50', '1h 30m', 'unlimited',
    '250,000', 'claude-opus-4, claude-sonnet-4', 'yes'."""
    field = model._meta.get_field(name)
    if value is None:
        return "—"
    if name in MONEY_IN_CENTS:
        return "unlimited" if value == 0 else dollars_from_cents(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, timedelta):
        return duration(value) if value else NONE_MEANS.get(name, "unlimited")
    if isinstance(value, Decimal):
        return f"${value:,.2f}" if value == value.quantize(Decimal("0.01")) else f"${value:,}"
    if isinstance(value, list):
        return ", ".join(value) if value else "every model"
    if isinstance(value, int) and field.get_internal_type().endswith("IntegerField"):
        return limit(value)
    return str(value)
