"""The books, read-only: the job ledger and the usage event log. The engine writes them; a
person may only cancel a running job, as its dispatcher would."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from quotas import display, services
from quotas.admin.actions import act_on_one, button, change_url
from quotas.admin.common import AgentFilter, ModelFilter, confirmation, cost_column
from quotas.display import STANDING_LABELS
from quotas.exceptions import InvalidInput
from quotas.models import AgentAllowance, Job, UsageEvent
from quotas.rules import QuotaCheckResult
from quotas.vocabulary import JobState

CANCELLING = (
    "A cancelled job frees its agent's slot at once and is charged nothing, as if its "
    "dispatcher had reported job_cancelled. The dispatcher is not told: stop the work itself "
    "there if it still runs."
)


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


def counted(field: str, description: str):
    """A read-only field of a count, with thousands separators, under words people use."""

    @admin.display(description=description)
    def show(self, obj):
        return display.number(getattr(obj, field))

    return show


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
    # A job's page, in words and units: no microcents, no raw decision.
    fields = [
        ("job_id", "agent_id"),
        ("model", "repo"),
        "state",
        ("started_at", "ended_at"),
        ("input_tokens", "output_tokens", "charged_tokens", "cost"),
        "admitted_with",
    ]
    readonly_fields = ["input_tokens", "output_tokens", "charged_tokens", "cost", "admitted_with"]
    input_tokens = counted("tokens_in", "tokens in")
    output_tokens = counted("tokens_out", "tokens out")
    charged_tokens = counted("tokens_charged", "tokens charged")
    actions = ["cancel_jobs"]
    actions_on_bottom = True

    def has_cancel_permission(self, request, obj=None):
        """Cancelling changes what an agent may run: for people who may change allowances."""
        opts = AgentAllowance._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    @admin.action(description="Cancel the selected running jobs", permissions=["cancel"])
    def cancel_jobs(self, request, queryset):
        confirmed = confirmation(
            self,
            request,
            queryset,
            question="Cancel these jobs?",
            consequence=f"{CANCELLING} Jobs that are not running are left as they are.",
            confirm_label="Yes, cancel them",
        )
        if isinstance(confirmed, TemplateResponse):
            return confirmed
        actor, reason = confirmed
        cancelled, left = 0, []
        for job in queryset.only("agent_id", "job_id", "state"):
            try:
                services.cancel_job(
                    agent_id=job.agent_id, job_id=job.job_id, actor=actor, reason=reason
                )
            except InvalidInput:
                left.append(f"{job} ({job.state})")
            else:
                cancelled += 1
        done = f"Cancelled {display.count(cancelled, 'job')}: nothing charged, slots free."
        note = f" Not running, so left as they are: {', '.join(left)}." if left else ""
        self.message_user(request, done + note, messages.SUCCESS if cancelled else messages.WARNING)

    # Cancelling one job: a button on its page while it runs.

    def get_urls(self):
        cancel = self.admin_site.admin_view(self.cancel_view)
        return [
            path("<path:object_id>/cancel/", cancel, name="quotas_job_cancel"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        tools = []
        if job and job.state == JobState.RUNNING and self.has_cancel_permission(request, job):
            tools.append(button("quotas_job_cancel", job, "Cancel this job"))
        extra_context = {**(extra_context or {}), "object_actions": tools}
        return super().change_view(request, object_id, form_url, extra_context)

    def cancel_view(self, request, object_id):
        job = self.get_object(request, unquote(object_id))
        if job is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_cancel_permission(request, job):
            raise PermissionDenied
        if job.state != JobState.RUNNING:
            self.message_user(
                request,
                f"The job is {job.state}, not running: nothing to cancel.",
                messages.WARNING,
            )
            return HttpResponseRedirect(change_url(job))
        return act_on_one(
            self,
            request,
            job,
            act=lambda actor, reason: self._cancel(job, actor, reason),
            question=f"Cancel the job {job.job_id} of {job.agent_id}?",
            consequence=CANCELLING,
            confirm_label="Yes, cancel the job",
        )

    @admin.display(description="admitted with")
    def admitted_with(self, obj):
        """The answer its dispatch gave, as a person reads it."""
        if not obj.decision:
            return "not dispatched here: first seen in a usage report"
        answer = QuotaCheckResult.from_dict(obj.decision)

        def left(remaining: int) -> str:
            return "unlimited" if remaining < 0 else display.number(remaining)

        return (
            f"allowed ({STANDING_LABELS[answer.status]}): {left(answer.remaining_tokens)} tokens "
            f"and {left(answer.remaining_jobs)} jobs left today"
        )

    @staticmethod
    def _cancel(job: Job, actor, reason: str) -> str:
        services.cancel_job(agent_id=job.agent_id, job_id=job.job_id, actor=actor, reason=reason)
        return (
            f"Cancelled the job {job.job_id} of {job.agent_id}: nothing charged, its slot is free."
        )


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
    # An event's page, in words and units: what it changed, each delta under its meaning.
    fields = [
        ("event", "received_at", "timestamp"),
        ("agent_id", "job_id"),
        ("model", "repo"),
        ("input_tokens", "output_tokens"),
        ("against_the_tokens_limit", "against_the_jobs_limit"),
        ("tokens_charged", "cost", "model_requests", "jobs_run"),
    ]
    readonly_fields = [
        "input_tokens",
        "output_tokens",
        "against_the_tokens_limit",
        "against_the_jobs_limit",
        "tokens_charged",
        "cost",
        "model_requests",
        "jobs_run",
    ]
    input_tokens = counted("tokens_in", "tokens in")
    output_tokens = counted("tokens_out", "tokens out")
    against_the_tokens_limit = counted("tokens_delta", "tokens counted against the limit")
    against_the_jobs_limit = counted("jobs_delta", "jobs counted against the limit")
    tokens_charged = counted("model_tokens_delta", "tokens charged")
    model_requests = counted("requests_delta", "requests counted on the model")
    jobs_run = counted("jobs_run_delta", "jobs started")
