"""The limits budget managers set (agents' allowances, model quotas, repository limits),
beside today's usage, changed through the engine."""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from quotas import display, housekeeping, selectors, services
from quotas.admin.actions import act_on_one, button, change_url
from quotas.admin.changes import EVERY_DAY, reason_words
from quotas.admin.common import StandingFilter, confirmation, used_of_column
from quotas.admin.readable import ReadableLimitAdmin
from quotas.exceptions import InvalidInput
from quotas.forms import AllowanceForm, ModelQuotaForm, RepoLimitForm
from quotas.models import AgentAllowance, Job, ModelQuota, RepoLimit
from quotas.rules import cost_ceiling_microcents, model_status, standing
from quotas.validators import DEFAULT_AGENT_ID
from quotas.vocabulary import Permission

RECENT_JOBS = 10
RECENT_REFUSALS = 20
NAMED_AGENTS = 5


def usage_list(status, lines) -> str:
    """A standing badge, then one line per limit (or fact) of today's usage."""
    items = format_html_join("", "<li>{}</li>", ((line,) for line in lines))
    return format_html('<ul class="quota-usage"><li>{}</li>{}</ul>', status, items)


@admin.register(AgentAllowance)
class AgentAllowanceAdmin(ReadableLimitAdmin, SimpleHistoryAdmin):
    form = AllowanceForm
    list_display = [
        "agent_id",
        "status",
        "tokens_today",
        "spend_today",
        "jobs_today",
        "running",
        "last_activity",
    ]
    list_filter = [StandingFilter, "paused"]
    search_fields = ["agent_id"]
    actions = ["reset_today", "pause", "resume", "delete_selected"]
    actions_on_bottom = True
    fieldsets = [
        (None, {"fields": ["agent_id", "paused"]}),
        ("Daily limits", {"fields": ["daily_token_limit", "daily_job_limit"]}),
        ("Running jobs", {"fields": ["concurrent_jobs", "max_job_duration"]}),
        ("Models", {"fields": ["model_allowlist"]}),
    ]
    today_fieldset = ("Today", {"fields": ["usage_today", "refusals_today", "recent_jobs"]})

    def get_queryset(self, request):
        return selectors.allowances_for_people(timezone.now())

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj is None else [*self.fieldsets, self.today_fieldset]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.today_fieldset[1]["fields"]

    @admin.display(description="status")
    def status(self, obj):
        return display.badge(standing(selectors.agent_state_from(obj)))

    tokens_today = used_of_column("tokens today", "tokens_today", "daily_token_limit", bar=True)
    jobs_today = used_of_column("jobs today", "jobs_today", "daily_job_limit")
    running = used_of_column("running", "running_jobs", "concurrent_jobs")

    @admin.display(description="spend today", ordering="spend_today")
    def spend_today(self, obj):
        return display.dollars_from_microcents(obj.spend_today)

    @admin.display(description="last activity", ordering="last_activity_at")
    def last_activity(self, obj):
        return display.moment(obj.last_activity_at, empty="never")

    @admin.display(description="usage today")
    def usage_today(self, obj):
        # What counts against the limits counts since a reset, if there was one today.
        reset = selectors.usage_reset_today(obj.agent_id, now=timezone.now())
        since = f" since the reset at {display.clock(reset.at)} by {reset.actor}" if reset else ""
        tokens = f"tokens {display.used_of(obj.tokens_today, obj.daily_token_limit)}"
        spent = display.dollars_from_microcents(obj.spend_today)
        return usage_list(
            self.status(obj),
            [
                format_html(
                    "{}{}", display.bar(obj.tokens_today, obj.daily_token_limit, tokens), since
                ),
                f"jobs started {display.used_of(obj.jobs_today, obj.daily_job_limit)}"
                + (" since the reset" if reset else ""),
                f"running {display.used_of(obj.running_jobs, obj.concurrent_jobs)}",
                f"in all today: {display.count(obj.consumed_today, 'token')} in "
                f"{display.count(obj.jobs_run_today, 'job')}, costing {spent}",
            ],
        )

    @admin.display(description="refusals today")
    def refusals_today(self, obj):
        refusals = selectors.refusals_today(obj.agent_id, now=timezone.now())[:RECENT_REFUSALS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reason_words(refusal.reason_code),
                    refusal.model or "—",
                    refusal.repo or "—",
                    display.number(refusal.refusals),
                    display.moment(refusal.last_refused_at),
                )
                for refusal in refusals
            ),
        )
        query = urlencode({"agent_id": obj.agent_id, "day": EVERY_DAY})
        every_day = format_html(
            '<a href="{}?{}">Every refusal of {}, by day</a>',
            reverse("admin:quotas_refusalcount_changelist"),
            query,
            obj.agent_id,
        )
        if not rows:
            return format_html("No refusals today. {}", every_day)
        return format_html(
            '<div class="quota-scroll"><table class="quota-jobs"><thead><tr><th>reason</th>'
            "<th>model</th><th>repository</th><th>times</th><th>last</th></tr></thead>"
            "<tbody>{}</tbody></table></div>{}",
            rows,
            every_day,
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

    # Deleting: the confirmation says what the agents' next requests will meet.

    def render_delete_form(self, request, context):
        context["deletion_notes"] = deletion_notes([context["object"].agent_id])
        return super().render_delete_form(request, context)

    @admin.action(
        description=admin_actions.delete_selected.short_description, permissions=["delete"]
    )
    def delete_selected(self, request, queryset):
        response = admin_actions.delete_selected(self, request, queryset)
        if isinstance(response, TemplateResponse):
            agent_ids = list(queryset.values_list("agent_id", flat=True))
            response.context_data["deletion_notes"] = deletion_notes(agent_ids)
        return response


def deletion_notes(agent_ids: list[str]) -> list[str]:
    """What deleting these allowances means: an agent comes back as a copy of the ``*``
    default on its next request while there is one, and is refused without it."""
    notes = []
    deleting_default = DEFAULT_AGENT_ID in agent_ids
    agents = [agent_id for agent_id in agent_ids if agent_id != DEFAULT_AGENT_ID]
    if deleting_default:
        notes.append(
            f"Without the default allowance '{DEFAULT_AGENT_ID}', agents that have no allowance "
            "of their own will be refused ('allowance not found for agent: …') until one is "
            "added for them."
        )
    if not agents:
        return notes
    named = ", ".join(agents[:NAMED_AGENTS]) + (" and others" if len(agents) > NAMED_AGENTS else "")
    one = len(agents) == 1
    if not deleting_default and selectors.default_allowance_exists():
        notes.append(
            f"{named} will come back on {'its' if one else 'their'} next request, with a copy "
            f"of the default allowance '{DEFAULT_AGENT_ID}' (its limits, not the ones deleted "
            "here); today's usage still counts. To stop an agent, pause it instead."
        )
    else:
        notes.append(
            f"{named} will then be refused ('allowance not found for agent: …'). To stop an "
            "agent for a while, pause it instead."
        )
    return notes


@admin.register(ModelQuota)
class ModelQuotaAdmin(ReadableLimitAdmin, SimpleHistoryAdmin):
    form = ModelQuotaForm
    list_display = ["model", "tokens_today", "jobs_last_hour", "cost_today", "prices"]
    search_fields = ["model"]
    actions_on_bottom = True
    fieldsets = [
        (None, {"fields": ["model"]}),
        ("Daily limits", {"fields": ["daily_token_budget", "hourly_rate_limit", "cost_ceiling"]}),
        ("Prices", {"fields": ["input_price_per_mtok", "output_price_per_mtok"]}),
    ]
    today_fieldset = ("Today", {"fields": ["usage_today"]})

    def get_queryset(self, request):
        return selectors.model_quotas_with_usage(timezone.now())

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj is None else [*self.fieldsets, self.today_fieldset]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.today_fieldset[1]["fields"]

    @admin.display(description="usage today")
    def usage_today(self, obj):
        ceiling = cost_ceiling_microcents(obj.cost_ceiling)
        spent = display.dollars_from_microcents(obj.cost_today)
        of = display.dollars_from_cents(obj.cost_ceiling) if obj.cost_ceiling else "unlimited"
        return usage_list(
            display.badge(model_status(selectors.model_state_from(obj))),
            [
                display.bar(
                    obj.tokens_today,
                    obj.daily_token_budget,
                    f"tokens {display.used_of(obj.tokens_today, obj.daily_token_budget)}",
                ),
                display.bar(
                    obj.started_last_hour,
                    obj.hourly_rate_limit,
                    "requests in the last hour "
                    + display.used_of(obj.started_last_hour, obj.hourly_rate_limit),
                ),
                display.bar(obj.cost_today, ceiling, f"spent {spent} of {of}"),
            ],
        )

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
        prices = (obj.input_price_per_mtok, obj.output_price_per_mtok)
        return " / ".join(display.price(price) for price in prices)


@admin.register(RepoLimit)
class RepoLimitAdmin(ReadableLimitAdmin, SimpleHistoryAdmin):
    form = RepoLimitForm
    list_display = ["repo", "prs_today", "issues_today", "cooldown"]
    search_fields = ["repo"]
    actions = ["end_cooldowns"]
    actions_on_bottom = True

    def get_queryset(self, request):
        return selectors.repo_limits_with_usage(timezone.now())

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["cooldown_now"]

    prs_today = used_of_column("PRs today", "prs_today", "max_daily_prs")
    issues_today = used_of_column("issues today", "issues_today", "max_daily_issues")

    @admin.display(description="cooldown")
    def cooldown(self, obj):
        return self._cooling_down(obj) or "—"

    @admin.display(description="cooldown now")
    def cooldown_now(self, obj):
        return self._cooling_down(obj) or "not cooling down"

    @staticmethod
    def _cooling_down(limit) -> str:
        """'cooling down, 12 min left', or '' when the repository is not cooling down."""
        now = timezone.now()
        until = selectors.repo_state_from(limit).cooldown_until(now)
        return "" if until is None else f"cooling down, {display.minutes_left(until - now)} left"

    # Ending a cooldown early: a button on the page while it runs, an action in the list.

    def get_urls(self):
        end = self.admin_site.admin_view(self.end_cooldown_view)
        return [
            path("<path:object_id>/end-cooldown/", end, name="quotas_repolimit_end_cooldown"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        limit = self.get_object(request, unquote(object_id))
        tools = []
        if limit and self.has_change_permission(request, limit) and self._cooling_down(limit):
            tools.append(button("quotas_repolimit_end_cooldown", limit, "End the cooldown now"))
        extra_context = {**(extra_context or {}), "object_actions": tools}
        return super().change_view(request, object_id, form_url, extra_context)

    def end_cooldown_view(self, request, object_id):
        limit = self.get_object(request, unquote(object_id))
        if limit is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, limit):
            raise PermissionDenied
        if not self._cooling_down(limit):
            self.message_user(
                request, f"{limit.repo} is not cooling down: nothing to end.", messages.WARNING
            )
            return HttpResponseRedirect(change_url(limit))
        return act_on_one(
            self,
            request,
            limit,
            act=lambda actor, reason: self._end_cooldown(limit.repo, actor, reason),
            question=f"End the cooldown of {limit.repo} now, {self._cooling_down(limit)}?",
            consequence="Jobs may start on it again at once. Its next failure starts a new "
            "cooldown.",
            confirm_label="Yes, end the cooldown",
        )

    @staticmethod
    def _end_cooldown(repo: str, actor, reason: str) -> str:
        services.end_cooldown(repo=repo, actor=actor, reason=reason)
        return f"Ended the cooldown of {repo}: jobs may start on it again."

    @admin.action(
        description="End the cooldown of the selected repositories", permissions=["change"]
    )
    def end_cooldowns(self, request, queryset):
        confirmed = confirmation(
            self,
            request,
            queryset,
            question="End the cooldown of these repositories now?",
            consequence="Jobs may start on them again at once. A repository that is not "
            "cooling down is left as it is.",
            confirm_label="Yes, end the cooldowns",
        )
        if isinstance(confirmed, TemplateResponse):
            return confirmed
        actor, reason = confirmed
        ended, idle = [], []
        for repo in queryset.values_list("repo", flat=True):
            try:
                services.end_cooldown(repo=repo, actor=actor, reason=reason)
            except InvalidInput:
                idle.append(repo)
            else:
                ended.append(repo)
        done = f"Ended the cooldown of {', '.join(ended)}." if ended else "Ended no cooldown."
        note = f" Not cooling down: {', '.join(idle)}." if idle else ""
        self.message_user(request, done + note, messages.SUCCESS if ended else messages.WARNING)
