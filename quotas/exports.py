"""What was consumed, as CSV for finance: per agent, per model, or per agent and model; one
row per day, or one per subject for the whole range.

Every figure is a fact a reset never changes (selectors.CONSUMPTION), so the three exports and
the dashboard agree: the per-model rows plus "(no model)" add up to the per-agent rows, and
the per-agent-and-model rows to both. Rows stream as they are read.
"""

import csv
import heapq
import itertools
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import StreamingHttpResponse
from django.utils import timezone

from quotas import selectors
from quotas.models import MICROCENTS_PER_CENT
from quotas.periods import quota_zone

DEFAULT_DAYS = 30
MAX_DAYS = 3660
# The jobs reported without a model, in the model column (no model id can be spelled so).
NO_MODEL = "(no model)"
SUBJECTS = {"agent": ["agent_id"], "model": ["model"], "agent_model": ["agent_id", "model"]}
# Each header names its unit.
FIGURES = ["tokens", "cost_usd", "jobs"]
PER_DAY, WHOLE_RANGE = "day", "range"
DATE_ERRORS_ID = "qd-export-errors"
CENT = Decimal("0.01")
# Days far enough from the calendar's ends that their midnights exist in every time zone.
EARLIEST, LATEST = date(1900, 1, 1), date(9999, 12, 30)
IN_CALENDAR = [
    MinValueValidator(EARLIEST, f"Enter a day from {EARLIEST} to {LATEST}."),
    MaxValueValidator(LATEST, f"Enter a day from {EARLIEST} to {LATEST}."),
]


class ExportForm(forms.Form):
    first_day = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=IN_CALENDAR,
    )
    last_day = forms.DateField(
        required=False,
        label="to",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=IN_CALENDAR,
    )
    rows = forms.ChoiceField(
        required=False,
        label="Rows",
        choices=[(PER_DAY, "One row per day"), (WHOLE_RANGE, "One row for the whole range")],
        initial=PER_DAY,
        widget=forms.RadioSelect,
    )

    hint = (
        f"Leave the dates empty for the last {DEFAULT_DAYS} days; "
        f"at most {MAX_DAYS:,} days at a time."
    )

    def __init__(self, data=None, **kwargs):
        if data is not None and not data.get("rows"):
            data = data.copy()
            data["rows"] = PER_DAY  # what the page offers first, ticked again on an error
        super().__init__(data, **kwargs)

    def full_clean(self):
        super().full_clean()
        if {"first_day", "last_day", NON_FIELD_ERRORS} & self.errors.keys():
            # The date fields name the errors listed beside them (index.html), for screen readers.
            for name in ("first_day", "last_day"):
                self.fields[name].widget.attrs["aria-describedby"] = DATE_ERRORS_ID

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        today = timezone.now().astimezone(quota_zone()).date()
        last = data["last_day"] = data.get("last_day") or today
        first = data["first_day"] = data.get("first_day") or last - timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise forms.ValidationError(
                f"The first day ({first}) is after the last day ({last}): swap them."
            )
        if (last - first).days >= MAX_DAYS:
            raise forms.ValidationError(
                f"Export at most {MAX_DAYS:,} days at a time; "
                f"{first} to {last} is {(last - first).days + 1:,} days."
            )
        data["per_day"] = data.get("rows") != WHOLE_RANGE
        return data


class Echo:
    def write(self, value):
        return value


def usage_csv(
    kind: str, *, first_day: date, last_day: date, per_day: bool
) -> StreamingHttpResponse:
    """Stream what was consumed per ``kind`` (a key of ``SUBJECTS``) from ``first_day`` to
    ``last_day``: one row per day and subject, oldest first, or one per subject."""
    rows = _rows(kind, first_day=first_day, last_day=last_day, per_day=per_day)
    writer = csv.writer(Echo())
    lines = (writer.writerow(line) for line in _lines(kind, rows, first_day, last_day, per_day))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = kind.replace("_", "-")
    whole = "" if per_day else "-whole-range"
    filename = f"{name}-usage-{first_day}-to-{last_day}{whole}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _rows(kind: str, **days):
    rows = selectors.daily_usage(kind, **days).iterator(chunk_size=2000)
    if kind != "model":
        return rows
    without = selectors.usage_without_model(**days)
    if not days["per_day"]:
        return itertools.chain(rows, without)
    # Both come oldest day first; within a day, "(no model)" after the models.
    return heapq.merge(rows, without, key=lambda row: (row[0], not row[1]))


def _lines(kind: str, rows, first_day: date, last_day: date, per_day: bool):
    zone = quota_zone()
    yield [*(["date"] if per_day else ["first_day", "last_day"]), *SUBJECTS[kind], *FIGURES]
    whole_range = [first_day.isoformat(), last_day.isoformat()]
    for row in rows:
        if per_day:
            period_start, *row = row
            days = [period_start.astimezone(zone).date().isoformat()]
        else:
            days = whole_range
        *subject, tokens, cost_microcents, jobs = row
        if kind != "agent":
            subject[-1] = subject[-1] or NO_MODEL
        yield [*days, *subject, tokens, cost_usd(cost_microcents), jobs]


def cost_usd(microcents: int) -> str:
    """Microcents as dollars rounded to the cent (halves away from zero), without a dollar sign or
    separators for a spreadsheet: '7.99'."""
    dollars = Decimal(microcents) / (MICROCENTS_PER_CENT * 100)
    return str(dollars.quantize(CENT, rounding=ROUND_HALF_UP))
