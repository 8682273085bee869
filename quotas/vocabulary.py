"""The words of the books, each defined once: job states, event kinds, what a check may be for,
why a job was refused, API key roles, the admin's own permissions, and the longest duration a
limit may hold.

The models, the engine, the API, the admin and the commands all take these words from here;
none of them writes one as a string of its own.
"""

from datetime import timedelta

from django.db import models


class JobState(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class EventKind(models.TextChoices):
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    USAGE_RESET = "usage_reset"
    PR_OPENED = "pr_opened"
    ISSUE_OPENED = "issue_opened"
    REPO_FAILURE = "failure"
    COOLDOWN_ENDED = "cooldown_ended"


# What a dispatcher reports about a job (POST /api/v1/usage), and the final ones among them
# with the state each leaves the job in.
USAGE_EVENTS = (
    EventKind.JOB_STARTED,
    EventKind.JOB_COMPLETED,
    EventKind.JOB_FAILED,
    EventKind.JOB_CANCELLED,
)
FINAL_STATES = {
    EventKind.JOB_COMPLETED: JobState.COMPLETED,
    EventKind.JOB_FAILED: JobState.FAILED,
    EventKind.JOB_CANCELLED: JobState.CANCELLED,
}
ENDED_STATES = frozenset(FINAL_STATES.values())
# What a dispatcher reports about a repository (POST /api/v1/repo-events).
REPO_EVENTS = (EventKind.PR_OPENED, EventKind.ISSUE_OPENED, EventKind.REPO_FAILURE)


class Standing(models.TextChoices):
    """Where an agent or a model stands today; the API's ``status`` is one of the first three."""

    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    EXCEEDED = "exceeded", "Exceeded"
    PAUSED = "paused", "Paused"


class Change(models.TextChoices):
    """What an entry of the change log records."""

    LIMIT_ADDED = "limit_added", "limit added"
    LIMIT_CHANGED = "limit_changed", "limit changed"
    LIMIT_DELETED = "limit_deleted", "limit deleted"
    PAUSED = "paused", "agent paused"
    RESUMED = "resumed", "agent resumed"
    USAGE_RESET = "usage_reset", "usage reset"
    COOLDOWN_ENDED = "cooldown_ended", "cooldown ended"
    JOB_CANCELLED = "job_cancelled", "job cancelled"
    IMPORT = "import", "limits imported"


class Subject(models.TextChoices):
    """What a change log entry is about."""

    AGENT = "agent"
    MODEL = "model"
    REPO = "repo", "repository"
    JOB = "job"


class Action(models.TextChoices):
    """What a checked job is for, when a repository's daily limits should apply to it."""

    ANY = "", "any job"
    PR = "pr", "open a pull request"
    ISSUE = "issue", "open an issue"


class ReasonCode(models.TextChoices):
    """Which rule refused a job: the API's ``reason_code`` and the refusal counts' key. The
    label is the refusal in words, as the refusals page shows it and the API's ``reason`` begins
    (rules.Refusal.reason adds the model or repository it names)."""

    AGENT_PAUSED = "agent_paused", "agent paused"
    MODEL_NOT_ALLOWED = "model_not_allowed", "model not in allowlist"
    DAILY_TOKEN_LIMIT = "daily_token_limit", "daily token limit exceeded"
    DAILY_JOB_LIMIT = "daily_job_limit", "daily job limit exceeded"
    CONCURRENT_JOBS = "concurrent_jobs", "concurrent job limit reached"
    MODEL_TOKEN_BUDGET = "model_token_budget", "global model token budget exceeded"
    MODEL_RATE_LIMIT = "model_rate_limit", "hourly rate limit reached"
    MODEL_COST_CEILING = "model_cost_ceiling", "cost ceiling reached"
    REPO_COOLDOWN = "repo_cooldown", "repository cooling down after failure"
    REPO_PR_LIMIT = "repo_pr_limit", "daily PR limit reached"
    REPO_ISSUE_LIMIT = "repo_issue_limit", "daily issue limit reached"


# Refusals that waiting cannot clear: only a person changing the allowance can.
PERMANENT_REFUSALS = frozenset({ReasonCode.AGENT_PAUSED, ReasonCode.MODEL_NOT_ALLOWED})


class APIKeyRole(models.TextChoices):
    DISPATCHER = "dispatcher", "Dispatcher: check, dispatch, report usage, read usage"
    ADMIN = "admin", "Admin: also change limits and reset usage"


class AdminRole(models.TextChoices):
    """The roles of the admin (quotas.roles); the value is the name of the group migration
    0004 makes, the label what a person is."""

    BUDGET_MANAGER = "Budget managers", "Budget manager"
    VIEWER = "Viewers", "Viewer"


class Permission(models.TextChoices):
    """The admin's permissions beyond Django's add, change, delete and view."""

    RESET_USAGE = "reset_usage", "Can reset an agent's usage today"
    EXPORT_USAGE = "export_usage", "Can export daily usage as CSV"

    @property
    def full_name(self) -> str:
        """The name ``user.has_perm`` takes: 'quotas.reset_usage'."""
        return f"quotas.{self.value}"


# The longest maximum job duration or repository cooldown a limit may hold, in the admin and
# in the API alike.
LONGEST_DURATION = timedelta(days=366)
