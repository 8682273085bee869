"""The quota rules, each written once, as pure functions over plain values.

Everything that decides something about limits and usage is here: whether a job may start
(``evaluate``, a chain of small rules that reads like the README's rule table), where an
agent or model stands, what a report charges, when a running job is overdue, when a
repository's cooldown ends. ``check`` and ``dispatch`` (services), the reads (selectors),
the admin, the dashboard, the exports and reconcile call these and decide nothing again.

Where a rule must also run inside the database (an admin filter or sort over thousands of
rows, the ledger's running and overdue jobs), its SQL expression is built here, beside it
(the ``*_sql`` functions), and tests/test_rules_sql.py holds the two equal over generated
states on SQLite and PostgreSQL.

Adding a counter (say, cache tokens per agent and day):
1. the field on the usage model (``counter()``), its name in that model's ``counters`` with
   the event log's delta field that sums to it, the delta field on ``UsageEvent``, and a
   migration (``manage.py makemigrations``);
2. the delta in ``Deltas`` below and in the rule that produces it (``start_deltas`` or
   ``end_deltas``); services, reconcile and a report's answer follow from the descriptions;
3. for an agent counter, the same name on ``AgentState`` and ``UsageRecord``.
tests/test_books.py fails until steps 1 to 3 agree.

Adding a limit: the field (``counter()``) and its name in ``ALLOWANCE_LIMITS``,
``MODEL_QUOTA_LIMITS`` or ``REPO_LIMITS`` (models.py), its usage on the state below, one
rule in the chain of ``evaluate`` with a ``ReasonCode``, a row in the README's rule table,
and a test in tests/test_check.py at the limit, one under and at 0 (unlimited).
"""

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

from django.conf import settings
from django.db.models import BigIntegerField, Case, FloatField, Q, Value, When
from django.db.models.functions import Cast
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual

from quotas.exceptions import InvalidInput
from quotas.models import MICROCENTS_PER_CENT, AgentAllowance, AgentUsage, ModelQuota, RepoLimit
from quotas.periods import next_day_start, seconds_until
from quotas.validators import BIGINT_MAX
from quotas.vocabulary import (
    FINAL_STATES,
    PERMANENT_REFUSALS,
    Action,
    EventKind,
    JobState,
    ReasonCode,
    Standing,
)

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
UNLIMITED = -1

OK, WARNING, EXCEEDED, PAUSED = Standing.OK, Standing.WARNING, Standing.EXCEEDED, Standing.PAUSED


# Limits: 0 means unlimited; exactly at a limit is over it, one under is not.


def remaining(limit: int, used: int) -> int:
    """What is left of a limit (-1 for unlimited, never below 0)."""
    return UNLIMITED if limit == 0 else max(0, limit - used)


def at_limit(used: int, limit: int) -> bool:
    return limit > 0 and used >= limit


def at_limit_sql(used, limit) -> Q:
    """``at_limit`` in SQL, over two expressions (``F("tokens_today")``, say)."""
    return Q(GreaterThan(limit, 0), GreaterThanOrEqual(used, limit))


def is_near(used: int, limit: int) -> bool:
    """Usage at or above ``QUOTAS_WARNING_RATIO`` of a limit (never for unlimited)."""
    ratio = warning_ratio(settings.QUOTAS_WARNING_RATIO)
    return limit > 0 and used * ratio.denominator >= limit * ratio.numerator


def near_sql(used, limit) -> Q:
    """``is_near`` in SQL. ``used * d >= limit * n`` could overflow 64 bits, so ``used`` is
    compared with the smallest whole number at or above ``limit * n / d``, worked out in
    integers that stay below ``limit`` (the ratio is at most 1): with ``q = limit / d`` and
    ``r = limit - q * d``, that is ``q * n + (r * n + d - 1) / d``."""
    ratio = warning_ratio(settings.QUOTAS_WARNING_RATIO)
    n, d = _bigint(ratio.numerator), _bigint(ratio.denominator)
    whole = limit / d
    threshold = whole * n + ((limit - whole * d) * n + d - _bigint(1)) / d
    return Q(GreaterThan(limit, 0), GreaterThanOrEqual(used, threshold))


def _bigint(number: int) -> Cast:
    # A typed constant: a bare parameter may reach PostgreSQL as numeric, whose division is
    # not the integer division these comparisons rely on.
    return Cast(Value(number), BigIntegerField())


@lru_cache(maxsize=8)
def warning_ratio(setting: float) -> Fraction:
    """The setting as an exact fraction (0.8 is 4/5), so that comparisons stay exact for any
    64-bit count; made once per value, as a check compares up to three."""
    return Fraction(str(setting))


def share_used(used: int, limit: int) -> float:
    """The share of a limit used, for sorting by closeness to a limit; 0 for unlimited."""
    return used / limit if limit > 0 else 0.0


def share_used_sql(used, limit, *, scale: int = 1):
    """``share_used(used, limit * scale)`` in SQL, in floating point as in Python: the limit
    is scaled after it became a float, so that a large one cannot overflow 64 bits."""
    as_float = FloatField()
    denominator = Cast(limit, as_float)
    if scale != 1:
        denominator = denominator * Value(float(scale))
    return Case(
        When(GreaterThan(limit, 0), then=Cast(used, as_float) / denominator),
        default=Value(0.0),
        output_field=as_float,
    )


def percent_used(used: int, limit: int) -> int:
    """Whole percent of a limit used, rounded down so that 100% means the limit is reached."""
    return used * 100 // limit if limit > 0 else 0


def cost_ceiling_microcents(cost_ceiling: int):
    """A model's cost ceiling (whole cents, as the Go original stores it) in the microcents
    that spend is counted in; an expression in, an expression out."""
    return cost_ceiling * MICROCENTS_PER_CENT


# Standings: where an agent or a model is today.


def agent_standing(
    *, paused: bool, tokens: int, token_limit: int, jobs: int, job_limit: int
) -> Standing:
    """Paused; exceeded at its daily token or job limit; warning near its token limit."""
    if paused:
        return PAUSED
    if at_limit(tokens, token_limit) or at_limit(jobs, job_limit):
        return EXCEEDED
    return WARNING if is_near(tokens, token_limit) else OK


def agent_standing_sql(*, paused, tokens, token_limit, jobs, job_limit) -> Case:
    """``agent_standing`` in SQL, over expressions for the same values."""
    return Case(
        When(Exact(paused, True), then=Value(PAUSED)),
        When(
            at_limit_sql(tokens, token_limit) | at_limit_sql(jobs, job_limit), then=Value(EXCEEDED)
        ),
        When(near_sql(tokens, token_limit), then=Value(WARNING)),
        default=Value(OK),
    )


def model_standing(*, tokens: int, token_budget: int, cost: int, cost_ceiling: int) -> Standing:
    """Exceeded at its daily token budget or cost ceiling, warning near either. ``cost`` is in
    microcents, ``cost_ceiling`` in cents. The hourly rate is not a daily limit."""
    ceiling = cost_ceiling_microcents(cost_ceiling)
    if at_limit(tokens, token_budget) or at_limit(cost, ceiling):
        return EXCEEDED
    return WARNING if model_near(tokens, token_budget, cost, ceiling) else OK


def model_near(tokens: int, token_budget: int, cost: int, ceiling: int) -> bool:
    """Whether a model is near (or at) its daily token budget or cost ceiling (microcents):
    an allowed check on it says "warning"."""
    return is_near(tokens, token_budget) or is_near(cost, ceiling)


# Running jobs: a job older than its agent's maximum duration is overdue and holds no slot.


def running_since(max_job_duration: timedelta, now: datetime) -> datetime | None:
    """The earliest start of a job that still counts as running; None when no job of the
    agent is ever overdue (no maximum duration)."""
    return now - max_job_duration if max_job_duration else None


def frees_at(started_at: datetime, max_job_duration: timedelta) -> datetime:
    """When a job started at ``started_at`` becomes overdue and frees its slot."""
    return started_at + max_job_duration


def is_running(state: str, started_at: datetime | None, since: datetime | None) -> bool:
    """Whether a job holds one of its agent's slots (``since`` from ``running_since``)."""
    if state != JobState.RUNNING:
        return False
    return since is None or (started_at is not None and started_at >= since)


def running_sql(since: datetime | None) -> Q:
    """``is_running`` in SQL, over a job's ``state`` and ``started_at``."""
    running = Q(state=JobState.RUNNING)
    return running if since is None else running & Q(started_at__gte=since)


def is_overdue(state: str, started_at: datetime | None, since: datetime | None) -> bool:
    """Whether a job runs past its agent's maximum duration and is to be marked expired."""
    if state != JobState.RUNNING or since is None or started_at is None:
        return False
    return started_at < since


def overdue_sql(since: datetime) -> Q:
    """``is_overdue`` in SQL, for an agent with a maximum duration (``since`` not None)."""
    return Q(state=JobState.RUNNING, started_at__lt=since)


# Repositories


def cooldown_until(
    last_failure_at: datetime | None,
    cooldown: timedelta,
    now: datetime,
    ended_at: datetime | None = None,
) -> datetime | None:
    """When a repository's cooldown after its last failure ends, if it is still running: not
    when a person ended it (``ended_at``) after that failure."""
    if not cooldown or last_failure_at is None:
        return None
    if ended_at is not None and ended_at >= last_failure_at:
        return None
    ends = last_failure_at + cooldown
    return ends if ends > now else None


# What a report charges and counts


class Prices(NamedTuple):
    """US dollars per million tokens."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal

    @classmethod
    def of(cls, quota: ModelQuota | None) -> "Prices | None":
        if quota is None:
            return None
        return cls(quota.input_price_per_mtok, quota.output_price_per_mtok)


class Charge(NamedTuple):
    tokens: int
    cost_microcents: int


def charge(event: str, tokens_in: int, tokens_out: int, prices: Prices | None) -> Charge:
    """Tokens and cost (microcents) a final report charges.

    A failed job gets half its tokens back, rounded in the agent's disfavour as in Go (7 tokens
    charge 4). A cancelled job is charged nothing. Deliberate difference from Go: Go subtracted
    a cancelled job's reported tokens from the agent's total even though they were never
    charged, erasing other jobs' usage; here a job is only ever charged by its one final
    report, so a cancel has nothing of its own to return and touches nobody else's usage.
    """
    if event == EventKind.JOB_CANCELLED:
        return Charge(0, 0)
    tokens = tokens_in + tokens_out
    cost = cost_microcents(prices, tokens_in, tokens_out)
    if event == EventKind.JOB_FAILED:
        return Charge(tokens - tokens // 2, cost - cost // 2)
    return Charge(tokens, cost)


def cost_microcents(prices: Prices | None, tokens_in: int, tokens_out: int) -> int:
    """What the tokens cost at the model's prices, to the nearest microcent (halves up)."""
    if prices is None:
        return 0
    # Dollars per million tokens times tokens is millionths of dollars; x100 gives microcents.
    # A wide context keeps 19-digit token counts times 12-digit prices exact before rounding.
    context = Context(prec=60)
    dollars_e6 = context.add(
        context.multiply(Decimal(tokens_in), prices.input_per_mtok),
        context.multiply(Decimal(tokens_out), prices.output_per_mtok),
    )
    cost = int(context.multiply(dollars_e6, 100).to_integral_value(rounding=ROUND_HALF_UP))
    if cost > BIGINT_MAX:
        raise InvalidInput("the report's cost is too large to record", field="tokens_in")
    return cost


class Deltas(NamedTuple):
    """What one event changes, as the event log records it. Each usage model's ``counters``
    names the delta that feeds each of its counters (models.py)."""

    tokens_delta: int = 0
    jobs_delta: int = 0
    model_tokens_delta: int = 0
    cost_delta_microcents: int = 0
    requests_delta: int = 0
    jobs_run_delta: int = 0


def start_deltas(*, on_model: bool) -> Deltas:
    """A start counts one job for the agent (against its limit, and as a job run) and, on a
    model, one request for the model."""
    return Deltas(jobs_delta=1, requests_delta=1 if on_model else 0, jobs_run_delta=1)


def end_deltas(charged: Charge) -> Deltas:
    """A final report charges its tokens to the agent and the model, and its cost to the model."""
    return Deltas(
        tokens_delta=charged.tokens,
        model_tokens_delta=charged.tokens,
        cost_delta_microcents=charged.cost_microcents,
    )


def final_state(event: str) -> JobState:
    """The state a final report leaves its job in."""
    return FINAL_STATES[event]


# States: a snapshot of limits and usage, as selectors reads them


@dataclass(frozen=True)
class AgentState:
    allowance: AgentAllowance
    tokens_used: int
    jobs_started: int
    running_jobs: int
    oldest_running_at: datetime | None
    existing_job_pk: int | None = None
    overdue_jobs: int = 0

    @property
    def standing(self) -> Standing:
        allowance = self.allowance
        return agent_standing(
            paused=allowance.paused,
            tokens=self.tokens_used,
            token_limit=allowance.daily_token_limit,
            jobs=self.jobs_started,
            job_limit=allowance.daily_job_limit,
        )

    def has_overdue_job(self, now: datetime) -> bool:
        """Whether its oldest running job has run past the agent's maximum duration."""
        since = running_since(self.allowance.max_job_duration, now)
        return is_overdue(JobState.RUNNING, self.oldest_running_at, since)


@dataclass(frozen=True)
class ModelState:
    quota: ModelQuota
    tokens_used: int
    cost_microcents: int
    started_last_hour: int
    oldest_in_window: datetime | None

    @property
    def standing(self) -> Standing:
        quota = self.quota
        return model_standing(
            tokens=self.tokens_used,
            token_budget=quota.daily_token_budget,
            cost=self.cost_microcents,
            cost_ceiling=quota.cost_ceiling,
        )


@dataclass(frozen=True)
class RepoState:
    limit: RepoLimit
    prs_opened: int
    issues_opened: int
    last_failure_at: datetime | None

    def cooldown_until(self, now: datetime) -> datetime | None:
        limit = self.limit
        return cooldown_until(
            self.last_failure_at, limit.cooldown_after_failure, now, limit.cooldown_ended_at
        )


def agent_status(agent: AgentState) -> Standing:
    """The agent's standing as the Go original's UsageRecord says it: paused is exceeded."""
    return EXCEEDED if agent.standing == PAUSED else agent.standing


def model_status(model: ModelState) -> Standing:
    """A model's standing today against its daily limits."""
    return model.standing


def standing(agent: AgentState) -> Standing:
    """What a budget manager sees: paused, or else the agent's status today."""
    return agent.standing


def after_report(agent: AgentState, deltas: Deltas, *, running_change: int) -> AgentState:
    """The agent's state read before a report, moved on by what the report changed: what a
    new read would give, without the statement (tests/test_usage.py holds them equal)."""
    delta_of = AgentUsage.counters
    moved = {
        counter: getattr(agent, counter) + getattr(deltas, delta_of[counter])
        for counter in AgentUsage.limit_counters
    }
    return replace(agent, **moved, running_jobs=agent.running_jobs + running_change)


# The answer to a check


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

    @classmethod
    def from_dict(cls, stored: dict) -> "QuotaCheckResult":
        """An answer stored by ``as_dict``; fields it predates take their defaults."""
        return cls(**{name: value for name, value in stored.items() if name in RESULT_FIELDS})


RESULT_FIELDS = tuple(field.name for field in fields(QuotaCheckResult))


class Refusal(NamedTuple):
    code: ReasonCode
    retry_after: int | None = None
    subject: str = ""  # the model or repository the rule names

    @property
    def reason(self) -> str:
        """The refusal in words, as the Go original words it: 'concurrent job limit reached',
        'hourly rate limit reached for: opus', 'model not in allowlist: opus'."""
        if not self.subject:
            return self.code.label
        joiner = ": " if self.code in NAMED_PLAINLY else " for: "
        return f"{self.code.label}{joiner}{self.subject}"


# The refusals whose words run straight into what they name (the others say "for:").
NAMED_PLAINLY = frozenset({ReasonCode.MODEL_NOT_ALLOWED, ReasonCode.REPO_COOLDOWN})


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
    if refusal is None:
        return admission(agent, model)
    allowance = agent.allowance
    return QuotaCheckResult(
        False,
        EXCEEDED,
        remaining(allowance.daily_token_limit, agent.tokens_used),
        remaining(allowance.daily_job_limit, agent.jobs_started),
        refusal.reason,
        refusal.retry_after,
        refusal.code,
    )


def admission(agent: AgentState, model: ModelState | None) -> QuotaCheckResult:
    """An allowed answer: what remains of the agent's day, and a warning when the agent or the
    model is near a limit."""
    allowance = agent.allowance
    near = is_near(agent.tokens_used, allowance.daily_token_limit) or _model_near(model)
    return QuotaCheckResult(
        True,
        WARNING if near else OK,
        remaining(allowance.daily_token_limit, agent.tokens_used),
        remaining(allowance.daily_job_limit, agent.jobs_started),
    )


def counting_the_job(result: QuotaCheckResult) -> QuotaCheckResult:
    """A dispatch's admission, which counts the job it starts among the agent's jobs today."""
    if result.remaining_jobs > 0:
        return replace(result, remaining_jobs=result.remaining_jobs - 1)
    return result


def _until_midnight(now: datetime) -> int:
    """retry_after of a daily limit: the seconds until the next quota day begins."""
    return seconds_until(next_day_start(now), now)


def _agent_refusal(agent: AgentState, model_name: str, now: datetime) -> Refusal | None:
    allowance = agent.allowance
    if allowance.paused:
        return Refusal(ReasonCode.AGENT_PAUSED)
    if model_name and allowance.model_allowlist and model_name not in allowance.model_allowlist:
        return Refusal(ReasonCode.MODEL_NOT_ALLOWED, subject=model_name)
    if at_limit(agent.tokens_used, allowance.daily_token_limit):
        return Refusal(ReasonCode.DAILY_TOKEN_LIMIT, _until_midnight(now))
    if at_limit(agent.jobs_started, allowance.daily_job_limit):
        return Refusal(ReasonCode.DAILY_JOB_LIMIT, _until_midnight(now))
    if at_limit(agent.running_jobs, allowance.concurrent_jobs):
        return Refusal(ReasonCode.CONCURRENT_JOBS, _slot_frees_in(agent, now))
    return None


def _slot_frees_in(agent: AgentState, now: datetime) -> int | None:
    """When the oldest running job will be expired, if the agent has a maximum job duration."""
    duration = agent.allowance.max_job_duration
    if not duration or agent.oldest_running_at is None:
        return None
    return seconds_until(frees_at(agent.oldest_running_at, duration), now)


def _model_refusal(model: ModelState | None, now: datetime) -> Refusal | None:
    if model is None:
        return None
    quota = model.quota
    if at_limit(model.tokens_used, quota.daily_token_budget):
        return Refusal(ReasonCode.MODEL_TOKEN_BUDGET, _until_midnight(now), quota.model)
    if at_limit(model.started_last_hour, quota.hourly_rate_limit):
        frees_in = (
            seconds_until(model.oldest_in_window + HOUR, now) if model.oldest_in_window else None
        )
        return Refusal(ReasonCode.MODEL_RATE_LIMIT, frees_in, quota.model)
    if at_limit(model.cost_microcents, cost_ceiling_microcents(quota.cost_ceiling)):
        return Refusal(ReasonCode.MODEL_COST_CEILING, _until_midnight(now), quota.model)
    return None


def _model_near(model: ModelState | None) -> bool:
    if model is None:
        return False
    quota = model.quota
    ceiling = cost_ceiling_microcents(quota.cost_ceiling)
    return model_near(model.tokens_used, quota.daily_token_budget, model.cost_microcents, ceiling)


def _repo_refusal(
    repo_name: str, repo: RepoState | None, action: str, now: datetime
) -> Refusal | None:
    if repo is None:
        return None
    limit = repo.limit
    cooling_until = repo.cooldown_until(now)
    if cooling_until is not None:
        return Refusal(ReasonCode.REPO_COOLDOWN, seconds_until(cooling_until, now), repo_name)
    if action == Action.PR and at_limit(repo.prs_opened, limit.max_daily_prs):
        return Refusal(ReasonCode.REPO_PR_LIMIT, _until_midnight(now), repo_name)
    if action == Action.ISSUE and at_limit(repo.issues_opened, limit.max_daily_issues):
        return Refusal(ReasonCode.REPO_ISSUE_LIMIT, _until_midnight(now), repo_name)
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
