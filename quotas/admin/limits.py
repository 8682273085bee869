"""The limits budget managers set (agents' allowances, model quotas, repository limits),
beside today's usage, changed through the engine."""

from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from quotas import display, housekeeping, selectors, services
from quotas.admin.common import StandingFilter, confirmation, used_of_column
from quotas.forms import AllowanceForm, ModelQuotaForm, RepoLimitForm
from quotas.models import AgentAllowance, AgentUsage, Job, ModelQuota, RepoLimit
from quotas.rules import cost_ceiling_microcents, standing
from quotas.vocabulary import Permission

RECENT_JOBS = 10


@admin.register(AgentAllowance)
class AgentAllowanceAdmin(SimpleHistoryAdmin):
    form = AllowanceForm
    list_display = ["agent_id", "status", "tokens_today", "jobs_today", "running", "last_activity"]
    list_filter = [StandingFilter, "paused"]
    search_fields = ["agent_id"]
    actions = ["reset_today", "pause", "resume"]
    fieldsets = [
        (None, {"fields": ["agent_id", "paused"]}),
        ("Daily limits", {"fields": ["daily_token_limit", "daily_job_limit"]}),
        ("Running jobs", {"fields": ["concurrent_jobs", "max_job_duration"]}),
        ("Models", {"fields": ["model_allowlist"]}),
    ]
    today_fieldset = ("Today", {"fields": ["usage_today", "recent_jobs"]})

    def get_queryset(self, request):
        latest = AgentUsage.objects.filter(agent_id=OuterRef("agent_id")).order_by("-period_start")
        return selectors.allowances_with_usage(timezone.now()).annotate(
            last_activity_at=Subquery(latest.values("updated_at")[:1])
        )

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj is None else [*self.fieldsets, self.today_fieldset]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["usage_today", "recent_jobs"]

    @admin.display(description="status")
    def status(self, obj):
        return display.badge(standing(selectors.agent_state_from(obj)))

    tokens_today = used_of_column("tokens today", "tokens_today", "daily_token_limit", bar=True)
    jobs_today = used_of_column("jobs today", "jobs_today", "daily_job_limit")
    running = used_of_column("running", "running_jobs", "concurrent_jobs")

    @admin.display(description="last activity", ordering="last_activity_at")
    def last_activity(self, obj):
        return display.moment(obj.last_activity_at, empty="never")

    @admin.display(description="usage today")
    def usage_today(self, obj):
        return format_html(
            "{} · tokens {} · jobs started {} · running {}",
            self.status(obj),
            display.used_of(obj.tokens_today, obj.daily_token_limit),
            display.used_of(obj.jobs_today, obj.daily_job_limit),
            display.used_of(obj.running_jobs, obj.concurrent_jobs),
        )

    @admin.display(description=f"last {RECENT_JOBS} jobs")
    def recent_jobs(self, obj):
        jobs = Job.objects.filter(agent_id=obj.agent_id).order_by("-id")[:RECENT_JOBS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    job.job_id,
                    job.model or "—",
                    job.state,
                    display.moment(job.started_at),
                    display.number(job.tokens_charged),
                )
                for job in jobs
            ),
        )
        if not rows:
            return "No jobs yet."
        return format_html(
            '<div class="quota-scroll"><table class="quota-jobs"><thead><tr><th>job</th>'
            "<th>model</th><th>state</th><th>started</th><th>tokens charged</th></tr></thead>"
            "<tbody>{}</tbody></table></div>",
            rows,
        )

    def has_reset_usage_permission(self, request):
        return request.user.has_perm(Permission.RESET_USAGE.full_name)

    @admin.action(
        description="Reset today's usage of the selected agents",
        permissions=[Permission.RESET_USAGE.value],
    )
    def reset_today(self, request, queryset):
        confirmed = confirmation(
            self,
            request,
            queryset,
            question="Give these agents their capacity for today back?",
            consequence="What they consumed and spent today stays in the books; running jobs "
            "keep running.",
            confirm_label="Yes, reset today's usage",
        )
        if isinstance(confirmed, TemplateResponse):
            return confirmed
        actor, reason = confirmed
        agent_ids = list(queryset.values_list("agent_id", flat=True))
        reset = sum(
            housekeeping.reset_usage(agent_id=agent_id, actor=actor, reason=reason)
            for agent_id in agent_ids
        )
        untouched = len(agent_ids) - reset
        note = f" ({display.count(untouched, 'agent')} had no usage today)" if untouched else ""
        self.message_user(
            request,
            f"Started today afresh for {reset} of {len(agent_ids)} selected agents{note}. "
            "Running jobs keep running.",
            messages.SUCCESS,
        )

    @admin.action(description="Pause the selected agents", permissions=["change"])
    def pause(self, request, queryset):
        return self._set_paused(request, queryset, paused=True)

    @admin.action(description="Resume the selected agents", permissions=["change"])
    def resume(self, request, queryset):
        return self._set_paused(request, queryset, paused=False)

    def _set_paused(self, request, queryset, *, paused: bool):
        verb = "Pause" if paused else "Resume"
        confirmed = confirmation(
            self,
            request,
            queryset,
            question=f"{verb} these agents?",
            consequence="A paused agent may start no job until it is resumed; running jobs "
            "keep running."
            if paused
            else "They may start jobs again, within their limits.",
            confirm_label=f"Yes, {verb.lower()} them",
        )
        if isinstance(confirmed, TemplateResponse):
            return confirmed
        actor, reason = confirmed
        agent_ids = list(queryset.values_list("agent_id", flat=True))
        changed = services.set_paused(
            agent_ids=agent_ids, paused=paused, actor=actor, reason=reason
        )
        done = "Paused" if paused else "Resumed"
        note = " They may start no job until resumed." if paused else ""
        self.message_user(request, f"{done} {display.count(changed, 'agent')}.{note}")


@admin.register(ModelQuota)
class ModelQuotaAdmin(SimpleHistoryAdmin):
    form = ModelQuotaForm
    list_display = ["model", "tokens_today", "jobs_last_hour", "cost_today", "prices"]
    search_fields = ["model"]

    def get_queryset(self, request):
        return selectors.model_quotas_with_usage(timezone.now())

    tokens_today = used_of_column("tokens today", "tokens_today", "daily_token_budget", bar=True)
    jobs_last_hour = used_of_column(
        "jobs in the last hour", "started_last_hour", "hourly_rate_limit"
    )

    @admin.display(description="cost today", ordering="cost_today")
    def cost_today(self, obj):
        spent = display.dollars_from_microcents(obj.cost_today)
        if not obj.cost_ceiling:
            return f"{spent} of unlimited"
        ceiling = cost_ceiling_microcents(obj.cost_ceiling)
        return display.bar(
            obj.cost_today, ceiling, f"{spent} of {display.dollars_from_cents(obj.cost_ceiling)}"
        )

    @admin.display(description="price per million tokens (in / out)")
    def prices(self, obj):
        return f"${obj.input_price_per_mtok:,.2f} / ${obj.output_price_per_mtok:,.2f}"


@admin.register(RepoLimit)
class RepoLimitAdmin(SimpleHistoryAdmin):
    form = RepoLimitForm
    list_display = ["repo", "prs_today", "issues_today", "cooldown"]
    search_fields = ["repo"]

    def get_queryset(self, request):
        return selectors.repo_limits_with_usage(timezone.now())

    prs_today = used_of_column("PRs today", "prs_today", "max_daily_prs")
    issues_today = used_of_column("issues today", "issues_today", "max_daily_issues")

    @admin.display(description="cooldown")
    def cooldown(self, obj):
        now = timezone.now()
        until = selectors.repo_state_from(obj).cooldown_until(now)
        if until is None:
            return "—"
        return f"cooling down, {display.minutes_left(until - now)} left"
