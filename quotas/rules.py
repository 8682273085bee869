"""The quota rules as one pure function over a snapshot of limits and usage.

``evaluate`` reads nothing and writes nothing, so ``check`` (which only reads) and ``dispatch``
(which decides under row locks, then writes) cannot disagree about what a limit means.
"""

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

from django.conf import settings

from quotas.models import MICROCENTS_PER_CENT, AgentAllowance, ModelQuota, RepoLimit
from quotas.periods import next_day_start, seconds_until

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
UNLIMITED = -1

OK = "ok"
WARNING = "warning"
EXCEEDED = "exceeded"
PAUSED = "paused"

# Refusals that waiting cannot clear: only a person changing the allowance can.
PERMANENT_REFUSALS = frozenset({"agent_paused", "model_not_allowed"})


@dataclass(frozen=True)
class AgentState:
    allowance: AgentAllowance
    tokens_used: int
    jobs_started: int
    running_jobs: int
    oldest_running_at: datetime | None
    existing_job_pk: int | None = None
    overdue_jobs: int = 0


@dataclass(frozen=True)
class ModelState:
    quota: ModelQuota
    tokens_used: int
    cost_microcents: int
    started_last_hour: int
    oldest_in_window: datetime | None


@dataclass(frozen=True)
class RepoState:
    limit: RepoLimit
    prs_opened: int
    issues_opened: int
    last_failure_at: datetime | None


@dataclass(frozen=True)
class QuotaCheckResult:
    """The answer to "may this agent run a job?", shaped like Go's QuotaCheckResult."""

    allowed: bool
    status: str
    remaining_tokens: int
    remaining_jobs: int
    reason: str = ""
    retry_after: int | None = None
    reason_code: str = ""

    @property
    def retryable(self) -> bool:
        """Whether waiting ``retry_after`` (or a while) can turn this refusal into an admission."""
        return not self.allowed and self.reason_code not in PERMANENT_REFUSALS

    def as_dict(self) -> dict:
        """The answer as JSON values, in the order of Go's struct."""
        return {name: getattr(self, name) for name in RESULT_FIELDS}


RESULT_FIELDS = tuple(field.name for field in fields(QuotaCheckResult))


class Refusal(NamedTuple):
    code: str
    reason: str
    retry_after: int | None = None


def remaining(limit: int, used: int) -> int:
    return UNLIMITED if limit == 0 else max(0, limit - used)


def is_near(used: int, limit: int) -> bool:
    """Usage at or above ``QUOTAS_WARNING_RATIO`` of a limit (never for unlimited)."""
    ratio = warning_ratio(settings.QUOTAS_WARNING_RATIO)
    return limit > 0 and used * ratio.denominator >= limit * ratio.numerator


@lru_cache(maxsize=8)
def warning_ratio(setting: float) -> Fraction:
    """The setting as an exact fraction (0.8 is 4/5), so that comparisons stay exact for any
    64-bit count; made once per value, as a check compares up to three."""
    return Fraction(str(setting))


def agent_status(agent: AgentState) -> str:
    """The agent's own standing today, for usage records and the admin."""
    allowance = agent.allowance
    if allowance.paused or _at_limit(agent.tokens_used, allowance.daily_token_limit):
        return EXCEEDED
    if _at_limit(agent.jobs_started, allowance.daily_job_limit):
        return EXCEEDED
    return WARNING if is_near(agent.tokens_used, allowance.daily_token_limit) else OK


def model_status(model: ModelState) -> str:
    """A model's standing today against its daily limits (the hourly rate is not daily)."""
    quota = model.quota
    ceiling = quota.cost_ceiling * MICROCENTS_PER_CENT
    if _at_limit(model.tokens_used, quota.daily_token_budget) or _at_limit(
        model.cost_microcents, ceiling
    ):
        return EXCEEDED
    return WARNING if _model_near(model) else OK


def standing(agent: AgentState) -> str:
    """What a budget manager sees: paused, or else the agent's status today."""
    return PAUSED if agent.allowance.paused else agent_status(agent)


def evaluate(
    *,
    agent: AgentState,
    model_name: str,
    model: ModelState | None,
    repo_name: str,
    repo: RepoState | None,
    action: str,
    now: datetime,
) -> QuotaCheckResult:
    """Apply the rules in their documented order; the first one that fails decides."""
    refusal = (
        _agent_refusal(agent, model_name, now)
        or _model_refusal(model, now)
        or _repo_refusal(repo_name, repo, action, now)
    )
    allowance = agent.allowance
    tokens_left = remaining(allowance.daily_token_limit, agent.tokens_used)
    jobs_left = remaining(allowance.daily_job_limit, agent.jobs_started)
    if refusal is not None:
        return QuotaCheckResult(False, EXCEEDED, tokens_left, jobs_left, *_reason_fields(refusal))
    near = is_near(agent.tokens_used, allowance.daily_token_limit) or _model_near(model)
    return QuotaCheckResult(True, WARNING if near else OK, tokens_left, jobs_left)


def _reason_fields(refusal: Refusal) -> tuple[str, int | None, str]:
    return refusal.reason, refusal.retry_after, refusal.code


def _until_midnight(now: datetime) -> int:
    """retry_after of a daily limit: the seconds until the next quota day begins."""
    return seconds_until(next_day_start(now), now)


def _at_limit(used: int, limit: int) -> bool:
    return limit > 0 and used >= limit


def _agent_refusal(agent: AgentState, model_name: str, now: datetime) -> Refusal | None:
    allowance = agent.allowance
    if allowance.paused:
        return Refusal("agent_paused", "agent paused")
    if model_name and allowance.model_allowlist and model_name not in allowance.model_allowlist:
        return Refusal("model_not_allowed", f"model not in allowlist: {model_name}")
    if _at_limit(agent.tokens_used, allowance.daily_token_limit):
        return Refusal("daily_token_limit", "daily token limit exceeded", _until_midnight(now))
    if _at_limit(agent.jobs_started, allowance.daily_job_limit):
        return Refusal("daily_job_limit", "daily job limit exceeded", _until_midnight(now))
    if _at_limit(agent.running_jobs, allowance.concurrent_jobs):
        return Refusal(
            "concurrent_jobs", "concurrent job limit reached", _slot_frees_in(agent, now)
        )
    return None


def _slot_frees_in(agent: AgentState, now: datetime) -> int | None:
    """When the oldest running job will be expired, if the agent has a maximum job duration."""
    duration = agent.allowance.max_job_duration
    if not duration or agent.oldest_running_at is None:
        return None
    return seconds_until(agent.oldest_running_at + duration, now)


def _model_refusal(model: ModelState | None, now: datetime) -> Refusal | None:
    if model is None:
        return None
    quota = model.quota
    if _at_limit(model.tokens_used, quota.daily_token_budget):
        return Refusal(
            "model_token_budget",
            f"global model token budget exceeded for: {quota.model}",
            _until_midnight(now),
        )
    if _at_limit(model.started_last_hour, quota.hourly_rate_limit):
        frees_in = (
            seconds_until(model.oldest_in_window + HOUR, now) if model.oldest_in_window else None
        )
        return Refusal(
            "model_rate_limit", f"hourly rate limit reached for: {quota.model}", frees_in
        )
    if _at_limit(model.cost_microcents, quota.cost_ceiling * MICROCENTS_PER_CENT):
        return Refusal(
            "model_cost_ceiling", f"cost ceiling reached for: {quota.model}", _until_midnight(now)
        )
    return None


def _model_near(model: ModelState | None) -> bool:
    if model is None:
        return False
    quota = model.quota
    return is_near(model.tokens_used, quota.daily_token_budget) or is_near(
        model.cost_microcents, quota.cost_ceiling * MICROCENTS_PER_CENT
    )


def _repo_refusal(
    repo_name: str, repo: RepoState | None, action: str, now: datetime
) -> Refusal | None:
    if repo is None:
        return None
    limit = repo.limit
    cooldown = limit.cooldown_after_failure
    if cooldown and repo.last_failure_at and repo.last_failure_at + cooldown > now:
        return Refusal(
            "repo_cooldown",
            f"repository cooling down after failure: {repo_name}",
            seconds_until(repo.last_failure_at + cooldown, now),
        )
    if action == "pr" and _at_limit(repo.prs_opened, limit.max_daily_prs):
        return Refusal(
            "repo_pr_limit", f"daily PR limit reached for: {repo_name}", _until_midnight(now)
        )
    if action == "issue" and _at_limit(repo.issues_opened, limit.max_daily_issues):
        return Refusal(
            "repo_issue_limit", f"daily issue limit reached for: {repo_name}", _until_midnight(now)
        )
    return None


@dataclass(frozen=True)
class UsageRecord:
    """An agent's usage today beside its limits, shaped like Go's UsageRecord."""

    agent_id: str
    tokens_used: int
    jobs_started: int
    active_jobs: int
    period_start: datetime
    daily_token_limit: int
    daily_job_limit: int
    concurrent_jobs: int
    status: str

    @classmethod
    def of(cls, agent: AgentState, period_start: datetime) -> "UsageRecord":
        allowance = agent.allowance
        return cls(
            agent_id=allowance.agent_id,
            tokens_used=agent.tokens_used,
            jobs_started=agent.jobs_started,
            active_jobs=agent.running_jobs,
            period_start=period_start,
            daily_token_limit=allowance.daily_token_limit,
            daily_job_limit=allowance.daily_job_limit,
            concurrent_jobs=allowance.concurrent_jobs,
            status=agent_status(agent),
        )
