"""Recompute every usage counter from the event log, to prove (or repair) the books.

The log is append-only and each event carries the signed amounts it changed, so summing it
per (agent, day), (model, day) and (repo, day) must give exactly what the usage tables hold.
Any difference is drift: a bug, a manual edit, or a write that escaped its transaction.
The jobs started per model and minute, which the sliding-hour rate limit sums, are counted
again from the job ledger, for the minutes that can still count (the last hour's).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from quotas.models import AgentUsage, Job, ModelMinuteUsage, ModelUsage, RepoUsage, UsageEvent
from quotas.periods import minute_start
from quotas.rules import HOUR
from quotas.vocabulary import USAGE_EVENTS, EventKind

AGENT_EVENTS = [*USAGE_EVENTS, EventKind.USAGE_RESET]


def _sums(usage_model) -> dict:
    """Each counter of a usage model as the sum of the event log's delta that feeds it."""
    return {counter: Sum(delta) for counter, delta in usage_model.counters.items()}


# (usage model, its subject field, {counter: aggregate over that subject's events}, events)
BOOKS = [
    (AgentUsage, "agent_id", _sums(AgentUsage), Q(event__in=AGENT_EVENTS)),
    (ModelUsage, "model", _sums(ModelUsage), ~Q(model="")),
    (
        RepoUsage,
        "repo",
        {
            **{
                counter: Count("pk", filter=Q(event=event))
                for counter, event in RepoUsage.counted_events.items()
            },
            **{
                moment: Max("received_at", filter=Q(event__in=events))
                for moment, events in RepoUsage.moments.items()
            },
        },
        ~Q(repo=""),
    ),
]


@dataclass(frozen=True)
class Drift:
    table: str
    subject: str
    period_start: datetime
    counter: str
    stored: Any
    expected: Any
    period_format: str = "%Y-%m-%d"
    source: str = "the event log"

    def __str__(self) -> str:
        return (
            f"{self.table} {self.subject} {self.period_start:{self.period_format}}: "
            f"{self.counter} is {self.stored}, {self.source} says {self.expected}"
        )


def reconcile_usage(*, fix: bool = False, now: datetime | None = None) -> list[Drift]:
    """Every difference between the usage tables and the event log (and, for the minutes of
    the last hour, the job ledger); with ``fix``, make the tables agree, in one transaction."""
    drift = []
    with transaction.atomic():
        for usage_model, subject, counters, events in BOOKS:
            drift += _drift_of(usage_model, subject, counters, events, fix=fix)
        drift += _minute_drift(now or timezone.now(), fix=fix)
    return drift


def _minute_drift(now: datetime, *, fix: bool) -> list[Drift]:
    """ModelMinuteUsage against the ledger's jobs per model and minute of start. Older
    minutes never count again (the reset command deletes them), so only these are compared."""
    since = minute_start(now - HOUR)
    expected = {
        (row["model"], row["minute"]): row["jobs"]
        for row in Job.objects.exclude(model="")
        .filter(started_at__gte=since)
        .annotate(minute=TruncMinute("started_at", tzinfo=UTC))
        .order_by()
        .values("model", "minute")
        .annotate(jobs=Count("*"))
    }
    rows = ModelMinuteUsage.objects.filter(minute_start__gte=since).order_by()
    stored = {
        (row.model, row.minute_start): row for row in (rows.select_for_update() if fix else rows)
    }
    drift = []
    for key in sorted(expected.keys() | stored.keys()):
        row, want = stored.get(key), expected.get(key, 0)
        have = row.requests if row else 0
        if have == want:
            continue
        drift.append(
            Drift(
                ModelMinuteUsage._meta.verbose_name,
                key[0],
                key[1],
                "requests",
                have,
                want,
                period_format="%Y-%m-%d %H:%M UTC",
                source="the job ledger",
            )
        )
        if fix:
            _repair(ModelMinuteUsage, "model", key, row, {"requests": want}, period="minute_start")
    return drift


def _drift_of(usage_model, subject: str, counters: dict, events: Q, *, fix: bool) -> list[Drift]:
    expected = {
        (row.pop(subject), row.pop("period_start")): row
        for row in UsageEvent.objects.filter(events)
        .order_by()
        .values(subject, "period_start")
        .annotate(**counters)
    }
    stored = _stored(usage_model, subject, fix)
    drift = []
    for key in expected.keys() | stored.keys():
        found = expected.get(key, {})
        want = {name: found.get(name) or _zero(usage_model, name) for name in counters}
        row = stored.get(key)
        have = {name: getattr(row, name) if row else _zero(usage_model, name) for name in counters}
        changed = [name for name in counters if have[name] != want[name]]
        drift += [
            Drift(usage_model._meta.verbose_name, key[0], key[1], name, have[name], want[name])
            for name in changed
        ]
        if fix and changed:
            _repair(usage_model, subject, key, row, want)
    return drift


def _stored(usage_model, subject: str, fix: bool) -> dict:
    rows = usage_model.objects.order_by()
    if fix:
        rows = rows.select_for_update()
    return {(getattr(row, subject), row.period_start): row for row in rows}


def _zero(usage_model, name: str):
    return None if usage_model._meta.get_field(name).null else 0


def _repair(usage_model, subject: str, key: tuple, row, want: dict, period="period_start") -> None:
    if row is None:
        usage_model.objects.create(**{subject: key[0], period: key[1]}, **want)
    else:
        usage_model.objects.filter(pk=row.pk).update(**want)
