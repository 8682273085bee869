"""Daily usage as CSV, for finance."""

import csv
from datetime import date, timedelta
from decimal import Decimal

from django import forms
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone

from quotas import selectors
from quotas.models import MICROCENTS_PER_CENT
from quotas.periods import quota_zone

DEFAULT_DAYS = 30
MAX_DAYS = 3660

COLUMNS = {
    "agent": ["date", "agent_id", "tokens_used", "jobs_started"],
    "model": ["date", "model", "tokens_used", "cost_usd", "requests"],
}


class ExportForm(forms.Form):
    first_day = forms.DateField(required=False, help_text="YYYY-MM-DD; 30 days ago by default.")
    last_day = forms.DateField(required=False, help_text="YYYY-MM-DD; today by default.")

    def clean(self):
        data = super().clean()
        today = timezone.now().astimezone(quota_zone()).date()
        data["last_day"] = data.get("last_day") or today
        default_first = data["last_day"] - timedelta(days=DEFAULT_DAYS - 1)
        data["first_day"] = data.get("first_day") or default_first
        if data["first_day"] > data["last_day"]:
            raise forms.ValidationError("first_day must not be after last_day.")
        if (data["last_day"] - data["first_day"]).days >= MAX_DAYS:
            raise forms.ValidationError(f"Export at most {MAX_DAYS} days at a time.")
        return data


class Echo:
    def write(self, value):
        return value


def usage_csv(request, kind: str):
    """Stream one row per day and agent (or model), oldest first."""
    form = ExportForm(request.GET)
    if not form.is_valid():
        errors = form.errors.items()
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors)
        return HttpResponseBadRequest(f"Cannot export: {problems}", content_type="text/plain")
    first_day, last_day = form.cleaned_data["first_day"], form.cleaned_data["last_day"]
    rows = selectors.daily_usage(kind, first_day=first_day, last_day=last_day)
    writer = csv.writer(Echo())
    lines = (writer.writerow(row) for row in _rows(kind, rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    filename = f"{kind}-usage-{first_day}-to-{last_day}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _rows(kind: str, usage):
    zone = quota_zone()
    yield COLUMNS[kind]
    for row in usage.iterator(chunk_size=2000):
        day: date = row.period_start.astimezone(zone).date()
        if kind == "agent":
            yield [day.isoformat(), row.agent_id, row.tokens_used, row.jobs_started]
        else:
            dollars = Decimal(row.cost_microcents) / MICROCENTS_PER_CENT / 100
            yield [day.isoformat(), row.model, row.tokens_used, f"{dollars:.8f}", row.requests]
