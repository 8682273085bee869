"""What the service stores: limits, per-day usage, the job ledger and the usage event log.

Names follow the Go original. Limits of 0 mean unlimited. Usage, jobs and events refer to
agents, models and repositories by their ids rather than by foreign key, so the books outlive
a deleted limit and usage can be recorded for a model or repository that has no limit.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from rest_framework_api_key.models import AbstractAPIKey
from simple_history.models import HistoricalRecords

from quotas.validators import (
    ID_MAX_LENGTH,
    validate_allowance_agent_id,
    validate_model_id,
    validate_model_list,
    validate_repo,
)
from quotas.vocabulary import (
    APIKeyRole,
    Change,
    EventKind,
    JobState,
    Permission,
    ReasonCode,
    Subject,
)

UNLIMITED_HELP = "0 means unlimited."
MICROCENTS_PER_CENT = 1_000_000


def non_negative(model_name: str, *fields: str, zero=0) -> list[models.CheckConstraint]:
    """One named database check per field, so a bug can never store a negative count (or
    duration, with ``zero=timedelta(0)``)."""
    return [
        models.CheckConstraint(
            condition=Q(**{f"{field}__gte": zero}), name=f"{model_name}_{field}_gte_0"
        )
        for field in fields
    ]


def counter(help_text: str = "", *, big: bool = False) -> models.Field:
    field = models.BigIntegerField if big else models.IntegerField
    return field(default=0, validators=[MinValueValidator(0)], help_text=help_text)


def limit_id(validator, help_text: str) -> models.CharField:
    return models.CharField(max_length=ID_MAX_LENGTH, validators=[validator], help_text=help_text)


def duration_limit(help_text: str) -> models.DurationField:
    return models.DurationField(default=timedelta(0), help_text=help_text)


def price(help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=12,
        decimal_places=4,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text=help_text,
    )


# The limits of each kind, in the order people read them; the admin, the API and the copy of
# the '*' default allowance all use these lists.
ALLOWANCE_LIMITS = (
    "daily_token_limit",
    "daily_job_limit",
    "concurrent_jobs",
    "max_job_duration",
    "model_allowlist",
    "paused",
)
MODEL_QUOTA_LIMITS = (
    "daily_token_budget",
    "hourly_rate_limit",
    "cost_ceiling",
    "input_price_per_mtok",
    "output_price_per_mtok",
)
REPO_LIMITS = ("max_daily_prs", "max_daily_issues", "cooldown_after_failure")


class HistoryActor(models.Model):
    """What a limit's history records beside each change: who made it, in words (a person's
    name, an API key's name, a command)."""

    history_actor = models.CharField(max_length=300, blank=True)

    class Meta:
        abstract = True


def limit_history(*not_limits: str) -> HistoricalRecords:
    """A kind of limit's history (its own model, HistoricalAgentAllowance...): every change of
    its limits, with who made it; not its timestamps, nor ``not_limits``, which are state kept
    beside the limits. Each kind names its own, so that every excluded field is one of its
    fields (simple-history rebuilds a past limit by them)."""
    return HistoricalRecords(
        excluded_fields=["created_at", "updated_at", *not_limits], bases=[HistoryActor]
    )


class Limit(models.Model):
    """What every kind of limit has besides its limits: the id it is known by (in its URL and
    in the books) and when it was created and last changed. Each kind keeps its own history of
    who changed what (limit_history)."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    id_field = ""  # read by __str__ and by the API's serializers and URLs

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return getattr(self, self.id_field)


def limit_constraints(name: str, id_field: str, *limits: str, durations=()) -> list:
    """One limit per id, and no negative limit."""
    return [
        models.UniqueConstraint(fields=[id_field], name=f"{name}_{id_field}_unique"),
        *non_negative(name, *durations, zero=timedelta(0)),
        *non_negative(name, *limits),
    ]


class AgentAllowance(Limit):
    agent_id = limit_id(
        validate_allowance_agent_id,
        "The agent's id as the dispatcher sends it. '*' is the default allowance that "
        "new agents are created from on first use.",
    )
    daily_token_limit = counter(f"Tokens this agent may use per day. {UNLIMITED_HELP}", big=True)
    daily_job_limit = counter(f"Jobs this agent may start per day. {UNLIMITED_HELP}")
    concurrent_jobs = counter(f"Jobs this agent may run at the same time. {UNLIMITED_HELP}")
    max_job_duration = duration_limit(
        "A running job older than this is marked expired and frees its slot. 0 means unlimited."
    )
    model_allowlist = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_model_list],
        help_text="The models this agent may use. Empty means every model.",
    )
    paused = models.BooleanField(
        default=False, help_text="A paused agent may not start any job until it is resumed."
    )

    id_field = "agent_id"
    limit_fields = ALLOWANCE_LIMITS
    history = limit_history()

    class Meta:
        ordering = ["agent_id"]
        permissions = Permission.choices
        constraints = limit_constraints(
            "agent_allowance",
            "agent_id",
            "daily_token_limit",
            "daily_job_limit",
            "concurrent_jobs",
            durations=["max_job_duration"],
        )


class ModelQuota(Limit):
    model = limit_id(
        validate_model_id,
        "The model id as the dispatcher sends it, e.g. 'anthropic/claude-sonnet-4'.",
    )
    daily_token_budget = counter(
        f"Tokens all agents together may use on this model per day. {UNLIMITED_HELP}", big=True
    )
    hourly_rate_limit = counter(
        f"Jobs all agents together may start on this model in any 60 minutes. {UNLIMITED_HELP}"
    )
    cost_ceiling = counter(
        f"US cents all agents together may spend on this model per day. {UNLIMITED_HELP}", big=True
    )
    input_price_per_mtok = price("US dollars per million input tokens.")
    output_price_per_mtok = price("US dollars per million output tokens.")

    id_field = "model"
    limit_fields = MODEL_QUOTA_LIMITS
    history = limit_history()

    class Meta:
        ordering = ["model"]
        constraints = limit_constraints(
            "model_quota",
            "model",
            "daily_token_budget",
            "hourly_rate_limit",
            "cost_ceiling",
            "input_price_per_mtok",
            "output_price_per_mtok",
        )


class RepoLimit(Limit):
    repo = limit_id(validate_repo, "owner/name")
    max_daily_prs = counter(f"Pull requests agents may open per day. {UNLIMITED_HELP}")
    max_daily_issues = counter(f"Issues agents may open per day. {UNLIMITED_HELP}")
    cooldown_after_failure = duration_limit(
        "After a failure, no job may start on this repository for this long. 0 means no cooldown."
    )
    # Read with the limit by every check on the repository, so that ending a cooldown adds
    # no lookup to the hot path; not a limit, so not in its history (the change log has it).
    cooldown_ended_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When a person last ended a cooldown early.",
    )

    id_field = "repo"
    limit_fields = REPO_LIMITS
    history = limit_history("cooldown_ended_at")

    class Meta:
        ordering = ["repo"]
        constraints = limit_constraints(
            "repo_limit",
            "repo",
            "max_daily_prs",
            "max_daily_issues",
            durations=["cooldown_after_failure"],
        )


class DailyUsage(models.Model):
    """Usage of one subject (agent, model or repository) in one quota day.

    Rows of past days are kept as history; the day that is over simply stops being today.
    """

    period_start = models.DateTimeField(
        help_text="Midnight, in QUOTAS_TIME_ZONE, that began the day."
    )
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the reset command closed out the finished day."
    )
    updated_at = models.DateTimeField(auto_now=True)

    subject_field = ""

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{getattr(self, self.subject_field)} on {self.period_start:%Y-%m-%d}"


def daily_usage_constraints(name: str, subject: str, *counters: str) -> list:
    """One row per subject and day, and no negative counter."""
    return [
        models.UniqueConstraint(fields=[subject, "period_start"], name=f"{name}_day_unique"),
        *non_negative(name, *counters),
    ]


def day_index(name: str, subject: str) -> models.Index:
    """A day's rows of every subject (the dashboard's totals, closing finished days).

    The subject comes second so that this index, too, finds one subject's row of a day in
    one step: with the day alone, a planner whose statistics predate today (every morning,
    on a large table) may pick it for a single subject's lookup and then scan every row of
    the day, as many as there are active agents, on every check.
    """
    return models.Index(fields=["period_start", subject], name=f"{name}_period_idx")


class AgentUsage(DailyUsage):
    """What one agent used in one quota day."""

    agent_id = models.CharField(max_length=ID_MAX_LENGTH)
    tokens_used = counter(
        "Tokens that count against the daily limit: since a reset, if any.", big=True
    )
    jobs_started = counter("Jobs that count against the daily limit: since a reset, if any.")
    tokens_consumed = counter("Every token charged today; a reset does not change it.", big=True)
    cost_microcents = counter(
        "What the agent's jobs cost today, in millionths of a cent.", big=True
    )
    jobs_run = counter("Every job started today; a reset does not change it.")

    subject_field = "agent_id"
    # Each counter, and the event log's delta (rules.Deltas) that it is the sum of over the
    # agent's events of the day: services write both from one Deltas, reconcile sums it back.
    # Only limit_counters count against the daily limits: the rules read them, and a reset's
    # event gives them back. What was consumed and spent stays a fact (model_tokens_delta is
    # every charged token, on a model or not).
    counters = {
        "tokens_used": "tokens_delta",
        "jobs_started": "jobs_delta",
        "tokens_consumed": "model_tokens_delta",
        "cost_microcents": "cost_delta_microcents",
        "jobs_run": "jobs_run_delta",
    }
    limit_counters = ("tokens_used", "jobs_started")

    class Meta:
        ordering = ["-period_start", "agent_id"]
        verbose_name_plural = "agent usage"
        constraints = daily_usage_constraints(
            "agent_usage",
            "agent_id",
            "tokens_used",
            "jobs_started",
            "tokens_consumed",
            "cost_microcents",
            "jobs_run",
        )
        indexes = [day_index("agent_usage", "agent_id")]


class ModelUsage(DailyUsage):
    """What all agents together used of one model in one quota day."""

    model = models.CharField(max_length=ID_MAX_LENGTH)
    tokens_used = counter(big=True)
    cost_microcents = counter("Millionths of a US cent, so that sums stay exact.", big=True)
    requests = counter("Jobs started on this model during the day.")

    subject_field = "model"
    # As AgentUsage.counters, over the events of jobs on the model.
    counters = {
        "tokens_used": "model_tokens_delta",
        "cost_microcents": "cost_delta_microcents",
        "requests": "requests_delta",
    }

    class Meta:
        ordering = ["-period_start", "model"]
        verbose_name_plural = "model usage"
        constraints = daily_usage_constraints(
            "model_usage", "model", "tokens_used", "cost_microcents", "requests"
        )
        indexes = [day_index("model_usage", "model")]


class RepoUsage(DailyUsage):
    """What agents did on one repository in one quota day."""

    repo = models.CharField(max_length=ID_MAX_LENGTH)
    prs_opened = counter()
    issues_opened = counter()
    last_failure_at = models.DateTimeField(null=True, blank=True)

    subject_field = "repo"
    # Each counter, and the repository event it counts; each moment, and the events whose
    # latest it is (reconcile recomputes both from the event log).
    counted_events = {"prs_opened": EventKind.PR_OPENED, "issues_opened": EventKind.ISSUE_OPENED}
    moments = {"last_failure_at": (EventKind.REPO_FAILURE, EventKind.JOB_FAILED)}

    class Meta:
        ordering = ["-period_start", "repo"]
        verbose_name_plural = "repo usage"
        constraints = daily_usage_constraints("repo_usage", "repo", "prs_opened", "issues_opened")
        indexes = [day_index("repo_usage", "repo")]


class ModelMinuteUsage(models.Model):
    """Jobs started on one model in one minute (UTC), for its sliding-hour rate limit.

    Counting a model's last hour in the job ledger reads every job of that hour on every
    check and dispatch, a cost that grows with the model's traffic. Summed per minute, an
    hour is at most 60 rows; the one minute the window cuts through is counted exactly from
    the ledger (selectors.hour_window). Rows over an hour old never count again.
    """

    model = models.CharField(max_length=ID_MAX_LENGTH)
    minute_start = models.DateTimeField(help_text="The minute's first instant, in UTC.")
    requests = counter("Jobs started on this model in this minute.")

    class Meta:
        ordering = ["-minute_start", "model"]
        verbose_name = verbose_name_plural = "model usage per minute"
        constraints = [
            models.UniqueConstraint(fields=["model", "minute_start"], name="model_minute_unique"),
            *non_negative("model_minute", "requests"),
        ]

    def __str__(self) -> str:
        return f"{self.model} at {self.minute_start:%Y-%m-%d %H:%M}"


class RefusalCount(DailyUsage):
    """How often an agent was refused, by which rule, on which model and repository, in one
    quota day, and when last. A statistic for budget managers, not part of the books: it
    limits nothing."""

    agent_id = models.CharField(max_length=ID_MAX_LENGTH)
    reason_code = models.CharField(max_length=32, choices=ReasonCode.choices)
    model = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    repo = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    refusals = counter()
    last_refused_at = models.DateTimeField(null=True)

    subject_field = "agent_id"

    class Meta:
        ordering = ["-period_start", "-last_refused_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent_id", "reason_code", "model", "repo", "period_start"],
                name="refusal_count_day_unique",
            ),
            *non_negative("refusal_count", "refusals"),
        ]
        indexes = [
            models.Index(fields=["period_start"], name="refusal_count_period_idx"),
            # An agent's refusals, newest first (its page, and its last activity).
            models.Index(fields=["agent_id", "-last_refused_at"], name="refusal_count_agent_idx"),
        ]


class Job(models.Model):
    """The job ledger: one row per (agent, job_id), whatever order its reports arrive in."""

    State = JobState

    agent_id = models.CharField(max_length=ID_MAX_LENGTH)
    job_id = models.CharField(max_length=ID_MAX_LENGTH)
    model = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    repo = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    state = models.CharField(max_length=16, choices=State.choices)
    started_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the service learned the job started; empty if it never did.",
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    tokens_in = counter(big=True)
    tokens_out = counter(big=True)
    tokens_charged = counter(big=True)
    cost_charged_microcents = counter(big=True)
    decision = models.JSONField(
        null=True, blank=True, help_text="The check result the job was admitted with, for retries."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["agent_id", "job_id"], name="job_agent_job_unique"),
            models.CheckConstraint(condition=Q(state__in=JobState.values), name="job_state_valid"),
            *non_negative(
                "job", "tokens_in", "tokens_out", "tokens_charged", "cost_charged_microcents"
            ),
        ]
        indexes = [
            # Counting an agent's running jobs (and finding overdue ones) reads only this
            # small partial index, however long the ledger grows.
            models.Index(
                fields=["agent_id", "started_at"],
                condition=Q(state=JobState.RUNNING),
                name="job_running_idx",
            ),
            # The sliding-hour rate limit counts a model's jobs by start time.
            models.Index(fields=["model", "started_at"], name="job_model_started_idx"),
            # Finished jobs by state and age, for the lists. Running jobs are left out so that
            # an agent's running jobs are always looked up in job_running_idx: with both on
            # offer, a planner whose statistics saw few running jobs may take this one and
            # read every running job of every agent to count one agent's.
            models.Index(
                fields=["state", "created_at"],
                condition=~Q(state=JobState.RUNNING),
                name="job_state_created_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}/{self.job_id}"


class UsageEvent(models.Model):
    """Append-only log of every accepted report and what it changed.

    The deltas are signed: summing them per (agent, day) gives the agent usage row, per
    (model, day) the model usage row; counting repo events per (repo, day) gives repo usage.
    """

    Kind = EventKind

    event = models.CharField(max_length=16, choices=Kind.choices)
    agent_id = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    job_id = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    model = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    repo = models.CharField(max_length=ID_MAX_LENGTH, blank=True)
    tokens_in = counter(big=True)
    tokens_out = counter(big=True)
    timestamp = models.DateTimeField(null=True, blank=True, help_text="As the reporter sent it.")
    received_at = models.DateTimeField()
    period_start = models.DateTimeField(help_text="The quota day the event counted in.")
    tokens_delta = models.BigIntegerField(default=0)
    jobs_delta = models.IntegerField(default=0)
    model_tokens_delta = models.BigIntegerField(default=0)
    cost_delta_microcents = models.BigIntegerField(default=0)
    requests_delta = models.IntegerField(default=0)
    jobs_run_delta = models.IntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # A retried report must hit this, never count twice.
            models.UniqueConstraint(
                fields=["agent_id", "job_id", "event"],
                condition=~Q(job_id=""),
                name="usage_event_job_event_unique",
            ),
            models.CheckConstraint(
                condition=Q(event__in=EventKind.values),
                name="usage_event_kind_valid",
            ),
            *non_negative("usage_event", "tokens_in", "tokens_out"),
        ]
        indexes = [
            models.Index(fields=["agent_id", "period_start"], name="usage_event_agent_period_idx"),
            models.Index(fields=["period_start"], name="usage_event_period_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.agent_id}/{self.job_id}"


class ChangeLog(models.Model):
    """Every change to a limit and every action on the books, with who did it and why.

    Append-only, like the event log: limit changes are written when their history is
    (quotas.changelog), actions by the services that carry them out.
    """

    at = models.DateTimeField()
    actor = models.CharField(max_length=300, help_text="Who: a person, an API key, a command.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change = models.CharField(max_length=20, choices=Change.choices)
    subject_kind = models.CharField(max_length=8, choices=Subject.choices)
    subject = models.CharField(max_length=2 * ID_MAX_LENGTH + 1)
    summary = models.TextField(help_text="What changed, in words and units.")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = verbose_name_plural = "change log"
        indexes = [
            models.Index(fields=["-at"], name="change_log_at_idx"),
            # One subject's changes, newest first: an agent's last reset today, say.
            models.Index(
                fields=["subject_kind", "subject", "change", "-at"], name="change_log_subject_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_change_display()} {self.subject} by {self.actor}"


class APIKey(AbstractAPIKey):
    """A dispatcher's or an administrator's key. Only a hash of the key is stored."""

    Role = APIKeyRole

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DISPATCHER)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractAPIKey.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=APIKeyRole.values), name="api_key_role_valid"
            )
        ]
