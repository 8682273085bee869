"""What people look into: the refusals of a day, and the change log of every limit changed
and every action taken, with who and why."""

from datetime import date, datetime, time, timedelta

from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from quotas import display
from quotas.admin.books import ReadOnlyAdmin
from quotas.admin.common import AgentFilter, ModelFilter
from quotas.models import AgentAllowance, ChangeLog, RefusalCount
from quotas.periods import day_start, next_day_start, quota_zone
from quotas.vocabulary import ReasonCode


# Why a job was refused, in the words rules.evaluate gives the dispatcher, less the model or
# repository it names (the refusals list has columns of its own for those).
# tests/test_admin_pages.py holds each equal to what the rule says.
def reason_words(reason_code: str) -> str:
    """A refusal's reason code in words: 'concurrent job limit reached'."""
    return ReasonCode(reason_code).label if reason_code in ReasonCode.values else reason_code


# Filters

EVERY_DAY = "all"


class DayFilter(admin.SimpleListFilter):
    """One quota day (midnight to midnight in QUOTAS_TIME_ZONE), picked from the last two
    weeks or typed into the address as ``?day=2026-03-10``; a day that cannot be shown says
    so and shows the default."""

    title = "day"
    parameter_name = "day"
    field = ""  # the moment that falls in the day
    today_by_default = False
    pickable_days = 14

    def __init__(self, request, params, model, model_admin):
        self.today = timezone.now().astimezone(quota_zone()).date()  # lookups() needs it
        super().__init__(request, params, model, model_admin)
        value = self.value()
        if value and value != EVERY_DAY and showable(value) is None:
            messages.warning(
                request,
                f"Cannot show the day '{value}': write a day as {self.today.isoformat()}. "
                f"Showing {'today' if self.default else 'every day'} instead.",
            )

    @property
    def default(self) -> date | None:
        return self.today if self.today_by_default else None

    @property
    def day(self) -> date | None:
        """The day shown; None for every day."""
        return self._day(self.value())

    def _day(self, value: str | None) -> date | None:
        """The day ``value`` names, or the default when it names none it can show."""
        return None if value == EVERY_DAY else showable(value or "") or self.default

    def lookups(self, request, model_admin):
        names = {0: "Today", 1: "Yesterday"}
        days = (self.today - timedelta(days=n) for n in range(self.pickable_days))
        return [
            (day.isoformat(), names.get((self.today - day).days) or display.long_date(day))
            for day in days
        ]

    def choices(self, changelist):
        # Computed here rather than read from self.day: the facet counts below change the
        # value while they count.
        day = self.day
        counts = self.get_facet_queryset(changelist) if changelist.add_facets else {}
        every = {self.parameter_name: EVERY_DAY} if self.today_by_default else {}
        yield {
            "selected": day is None,
            "query_string": changelist.get_query_string(
                every, [] if every else [self.parameter_name]
            ),
            "display": "Every day",
        }
        picked = day.isoformat() if day else None
        if picked and picked not in dict(self.lookup_choices):
            yield self._choice(changelist, picked, display.long_date(day), selected=True)
        for i, (value, label) in enumerate(self.lookup_choices):
            shown = f"{label} ({counts[f'{i}__c']})" if counts else label
            yield self._choice(changelist, value, shown, selected=value == picked)

    def _choice(self, changelist, value: str, label: str, *, selected: bool) -> dict:
        query = changelist.get_query_string({self.parameter_name: value})
        return {"selected": selected, "query_string": query, "display": label}

    def queryset(self, request, queryset):
        day = self.day
        if day is None:
            return queryset
        start, end = bounds(day)
        return queryset.filter(**{f"{self.field}__gte": start, f"{self.field}__lt": end})

    def heading(self) -> str:
        """'today', 'yesterday', 'on Mar 8, 2026', 'of every day'."""
        day = self.day
        if day is None:
            return "of every day"
        names = {0: "today", 1: "yesterday"}
        return names.get((self.today - day).days) or f"on {display.long_date(day)}"


def showable(value: str) -> date | None:
    """The day written as ``value`` ('2026-03-10'), if it is one that can be shown."""
    try:
        day = date.fromisoformat(value)
        bounds(day)
    except (ValueError, OverflowError):
        return None
    return day


def bounds(day: date) -> tuple[datetime, datetime]:
    """When a quota day begins and the next one does (OverflowError at the ends of time)."""
    midnight = datetime.combine(day, time.min, tzinfo=quota_zone())
    return day_start(midnight), next_day_start(midnight)


class RefusalDayFilter(DayFilter):
    field = "period_start"
    today_by_default = True


class ChangeDayFilter(DayFilter):
    field = "at"


class ReasonFilter(admin.SimpleListFilter):
    title = "reason"
    parameter_name = "reason_code"

    def lookups(self, request, model_admin):
        return ReasonCode.choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value not in ReasonCode.values:
            messages.warning(request, f"'{value}' is not a reason; showing every reason.")
            return queryset
        return queryset.filter(reason_code=value)


def titled(filter_class, title: str):
    """A field's list filter under a title of our own ('who' rather than 'actor')."""

    class Titled(filter_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title

    return Titled


# The pages


class DayListAdmin(ReadOnlyAdmin):
    """A read-only list whose title says which day it shows."""

    list_display_links = None
    heading = ""

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)  # a redirect has none
        if context and "cl" in context:
            [day] = [spec for spec in context["cl"].filter_specs if isinstance(spec, DayFilter)]
            context["title"] = f"{self.heading} {day.heading()}"
        return response


@admin.register(RefusalCount)
class RefusalCountAdmin(DayListAdmin):
    """Who was refused, by which rule, on which model and repository, how often and when
    last: today's unless another day is picked."""

    list_display = ["agent", "model_name", "repository", "reason", "refusals", "last_refused"]
    list_filter = [RefusalDayFilter, AgentFilter, ReasonFilter, ModelFilter]
    heading = "Refusals"

    def get_queryset(self, request):
        allowance = AgentAllowance.objects.filter(agent_id=OuterRef("agent_id"))
        return (
            super()
            .get_queryset(request)
            .annotate(allowance_pk=Subquery(allowance.values("pk")[:1]))
        )

    @admin.display(description="agent", ordering="agent_id")
    def agent(self, obj):
        if obj.allowance_pk is None:
            return obj.agent_id
        url = reverse("admin:quotas_agentallowance_change", args=[obj.allowance_pk])
        return format_html('<a href="{}">{}</a>', url, obj.agent_id)

    @admin.display(description="model", ordering="model")
    def model_name(self, obj):
        return obj.model or "—"

    @admin.display(description="repository", ordering="repo")
    def repository(self, obj):
        return obj.repo or "—"

    @admin.display(description="reason", ordering="reason_code")
    def reason(self, obj):
        return reason_words(obj.reason_code)

    @admin.display(description="last refused", ordering="last_refused_at")
    def last_refused(self, obj):
        return display.moment(obj.last_refused_at)


@admin.register(ChangeLog)
class ChangeLogAdmin(DayListAdmin):
    """Every change to a limit and every action on the books, newest first, with who, why
    and what it changed in words."""

    list_display = ["when", "who", "what", "about", "summary", "reason"]
    list_filter = [
        ("actor", titled(admin.AllValuesFieldListFilter, "who")),
        ("change", titled(admin.ChoicesFieldListFilter, "what")),
        ChangeDayFilter,
    ]
    search_fields = ["subject"]
    search_help_text = "An agent, model, repository or job, or part of its name."
    empty_value_display = "—"
    heading = "Change log"

    @admin.display(description="when", ordering="at")
    def when(self, obj):
        return display.moment(obj.at)

    @admin.display(description="who", ordering="actor")
    def who(self, obj):
        return obj.actor

    @admin.display(description="what", ordering="change")
    def what(self, obj):
        return obj.get_change_display()

    @admin.display(description="about", ordering="subject")
    def about(self, obj):
        return f"{obj.get_subject_kind_display().lower()} {obj.subject}"
