"""The books, read-only: the job ledger and the usage event log."""

from django.contrib import admin

from quotas.admin.common import AgentFilter, ModelFilter, cost_column
from quotas.models import Job, UsageEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Books are written by the engine only: people may look, never add, edit or delete."""

    # Counting a ledger of millions twice per page is the slowest part of a list; once is enough.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BooksAdmin(ReadOnlyAdmin):
    """The job ledger and the usage event log, searched by job id or by an agent's exact id."""

    search_fields = ["job_id", "=agent_id"]


def books_filters(kind: str, day: str) -> list:
    """By kind of row; by agent and model typed in, as there may be too many to list; by day."""
    return [kind, AgentFilter, ModelFilter, (day, admin.DateFieldListFilter)]


@admin.register(Job)
class JobAdmin(BooksAdmin):
    list_display = [
        "job_id",
        "agent_id",
        "model",
        "repo",
        "state",
        "started_at",
        "ended_at",
        "tokens_charged",
        "cost",
    ]
    list_filter = books_filters("state", day="created_at")
    date_hierarchy = "created_at"
    cost = cost_column("cost_charged_microcents")


@admin.register(UsageEvent)
class UsageEventAdmin(BooksAdmin):
    list_display = [
        "received_at",
        "event",
        "agent_id",
        "job_id",
        "model",
        "repo",
        "tokens_in",
        "tokens_out",
        "tokens_delta",
        "cost",
    ]
    list_filter = books_filters("event", day="period_start")
    date_hierarchy = "received_at"
    cost = cost_column("cost_delta_microcents")
