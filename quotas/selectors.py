"""Reads: today's usage beside each limit, each in one SQL query however much history exists.

Every figure comes from a correlated subquery on a unique or partial index, so the cost of a
check does not grow with the number of agents, jobs or days stored.
"""

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from operator import attrgetter

from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from quotas import prepared, rules
from quotas.exceptions import AllowanceNotFound, InvalidInput
from quotas.models import (
    AgentAllowance,
    AgentUsage,
    ChangeLog,
    Job,
    ModelMinuteUsage,
    ModelQuota,
    ModelUsage,
    RefusalCount,
    RepoLimit,
    RepoUsage,
    UsageEvent,
)
from quotas.periods import day_start, minute_start, quota_zone
from quotas.rules import (
    HOUR,
    MINUTE,
    AgentState,
    ModelState,
    RepoState,
    UsageRecord,
    agent_standing_sql,
    overdue_sql,
    running_sql,
)
from quotas.validators import DEFAULT_AGENT_ID, require_valid
from quotas.vocabulary import USAGE_EVENTS, Change, Subject

# Columns the hot path's reads leave out (fewer columns to send and load): the rules never
# look at when a limit was created or changed.
UNREAD = ("created_at", "updated_at")


def _value_or_zero(queryset: QuerySet, field: str, output_field) -> Coalesce:
    # A lookup by unique key: no ORDER BY (the model's default ordering) is needed.
    return Coalesce(
        Subquery(queryset.order_by().values(field)[:1], output_field=output_field),
        Value(0),
        output_field=output_field,
    )


def _count(queryset: QuerySet, group_by: str) -> Coalesce:
    # COUNT(*), not COUNT(id): the rows are counted from the index alone where it covers them.
    counted = queryset.order_by().values(group_by).annotate(n=Count("*")).values("n")
    return Coalesce(
        Subquery(counted, output_field=IntegerField()), Value(0), output_field=IntegerField()
    )


def _earliest(queryset: QuerySet, field: str) -> Subquery:
    # The first entry of an index on the field, where MIN() would read every matching row.
    return Subquery(queryset.order_by(field).values(field)[:1])


def allowances_with_usage(now: datetime) -> QuerySet[AgentAllowance]:
    """Allowances annotated with today's tokens and jobs and their running jobs."""
    return _allowances_with_usage(day_start(now))


def _allowances_with_usage(period: datetime) -> QuerySet[AgentAllowance]:
    usage = AgentUsage.objects.filter(agent_id=OuterRef("agent_id"), period_start=period)
    running = Job.objects.filter(running_sql(None), agent_id=OuterRef("agent_id"))
    return AgentAllowance.objects.annotate(
        tokens_today=_value_or_zero(usage, "tokens_used", BigIntegerField()),
        jobs_today=_value_or_zero(usage, "jobs_started", IntegerField()),
        running_jobs=_count(running, "agent_id"),
        oldest_running_at=_earliest(running, "started_at"),
        existing_job_pk=Value(None, output_field=BigIntegerField()),
        overdue_jobs=Value(0, output_field=IntegerField()),
    )


def filter_by_standing(queryset: QuerySet[AgentAllowance], wanted: str) -> QuerySet:
    """Narrow ``allowances_with_usage()`` to one standing, by rules.agent_standing in SQL, so
    that the admin's filter and its badges agree."""
    standing = agent_standing_sql(
        paused=F("paused"),
        tokens=F("tokens_today"),
        token_limit=F("daily_token_limit"),
        jobs=F("jobs_today"),
        job_limit=F("daily_job_limit"),
    )
    return queryset.alias(standing=standing).filter(standing=wanted)


# The annotation (of the querysets below) that each field of a state is read from, in the
# order of the state's fields after the limit itself.
AGENT_STATE = {
    "tokens_used": "tokens_today",
    "jobs_started": "jobs_today",
    "running_jobs": "running_jobs",
    "oldest_running_at": "oldest_running_at",
    "existing_job_pk": "existing_job_pk",
    "overdue_jobs": "overdue_jobs",
}
MODEL_STATE = {
    "tokens_used": "tokens_today",
    "cost_microcents": "cost_today",
    "started_last_hour": "started_last_hour",
    "oldest_in_window": "oldest_in_window",
}
REPO_STATE = {
    "prs_opened": "prs_today",
    "issues_opened": "issues_today",
    "last_failure_at": "last_failure_at",
}


def _reader(state_class, annotations: dict[str, str]):
    """A function making a rules state of an annotated limit (once per read on the hot path,
    so the annotations are fetched by one attrgetter, positionally)."""
    if list(annotations) != [field.name for field in fields(state_class)][1:]:
        raise ValueError(f"{state_class.__name__}'s fields and their annotations disagree")
    values = attrgetter(*annotations.values())
    return lambda instance: state_class(instance, *values(instance))


_agent_state = _reader(AgentState, AGENT_STATE)
_model_state = _reader(ModelState, MODEL_STATE)
_repo_state = _reader(RepoState, REPO_STATE)


def agent_state_from(allowance: AgentAllowance) -> AgentState:
    """The state of an allowance annotated by allowances_with_usage()."""
    return _agent_state(allowance)


def agent_state(
    agent_id: str, *, now: datetime, job_id: str = "", running_since: datetime | None = None
) -> AgentState | None:
    """Today's state of one agent, or None if it has no allowance of its own.

    With ``job_id``, also whether the ledger already holds that job (saving a query when it
    does not, the common case). With ``running_since``, running jobs started before it are
    counted as overdue instead of running.
    """
    [allowance] = prepared.first_each(
        agent_read(agent_id, now=now, job_id=job_id, running_since=running_since)
    )
    return None if allowance is None else agent_state_from(allowance)


def states(
    agent_id: str,
    model: str,
    repo: str,
    *,
    now: datetime,
    job_id: str = "",
    running_since: datetime | None = None,
) -> tuple[AgentState | None, ModelState | None, RepoState | None]:
    """agent_state(), model_state() and repo_state() at once, in one query."""
    allowance, quota, limit = prepared.first_each(
        agent_read(agent_id, now=now, job_id=job_id, running_since=running_since),
        _model_read(model, now),
        _repo_read(repo, now),
    )
    return (
        None if allowance is None else agent_state_from(allowance),
        None if quota is None else model_state_from(quota),
        None if limit is None else repo_state_from(limit),
    )


def agent_read(
    agent_id: str, *, now: datetime, job_id: str = "", running_since: datetime | None = None
) -> prepared.Read:
    """agent_state()'s read, for ``prepared.first_each`` beside other reads: the allowance
    annotated with the agent's usage, for agent_state_from()."""
    values = {"agent_id": agent_id, "period": day_start(now), "job_id": job_id or None}
    return prepared.read(_agent_query, **values, running_since=running_since)


@prepared.statement("agent_state")
def _agent_query(
    *, agent_id: str, period: datetime, job_id: str | None, running_since: datetime | None
) -> QuerySet[AgentAllowance]:
    queryset = _allowances_with_usage(period).filter(agent_id=agent_id).defer(*UNREAD)
    if job_id:
        jobs = Job.objects.filter(agent_id=OuterRef("agent_id"), job_id=job_id)
        queryset = queryset.annotate(existing_job_pk=Subquery(jobs.order_by().values("pk")[:1]))
    if running_since is not None:
        jobs = Job.objects.filter(agent_id=OuterRef("agent_id"))
        current = jobs.filter(running_sql(running_since))
        queryset = queryset.annotate(
            running_jobs=_count(current, "agent_id"),
            oldest_running_at=_earliest(current, "started_at"),
            overdue_jobs=_count(jobs.filter(overdue_sql(running_since)), "agent_id"),
        )
    return queryset


def current_agent_state(agent_id: str, *, now: datetime) -> AgentState | None:
    """Like agent_state, but jobs past the agent's maximum duration no longer count as
    running even before anything has marked them expired (a second query only then)."""
    agent = agent_state(agent_id, now=now)
    if agent is not None and agent.has_overdue_job(now):
        since = rules.running_since(agent.allowance.max_job_duration, now)
        agent = agent_state(agent_id, now=now, running_since=since)
    return agent


def hour_window(now: datetime) -> dict[str, datetime]:
    """The sliding hour before ``now``, as the bounds that _started_in_window() takes: jobs
    started after ``window_start``; whole minutes after ``minutes_after`` are summed from
    ModelMinuteUsage, and the minute the window begins in is read from the ledger up to
    ``edge_until``, so the count is exact to the microsecond."""
    window_start = now - HOUR
    cut = minute_start(window_start)
    return {"window_start": window_start, "minutes_after": cut, "edge_until": cut + MINUTE}


def _started_in_window(
    model, *, window_start: datetime, minutes_after: datetime, edge_until: datetime
) -> tuple[QuerySet[ModelMinuteUsage], QuerySet[Job]]:
    """What the jobs started on ``model`` (an id or an OuterRef) since ``window_start`` are
    counted from: at most 60 minute rows, and the ledger's jobs of at most one minute."""
    minutes = ModelMinuteUsage.objects.filter(model=model, minute_start__gt=minutes_after)
    edge = Job.objects.filter(model=model, started_at__gt=window_start, started_at__lt=edge_until)
    return minutes, edge


def model_quotas_with_usage(now: datetime) -> QuerySet[ModelQuota]:
    """Model quotas annotated with today's tokens and cost and the last hour's jobs."""
    return _model_quotas_with_usage(period=day_start(now), **hour_window(now))


def _model_quotas_with_usage(
    *,
    period: datetime,
    window_start: datetime,
    minutes_after: datetime,
    edge_until: datetime,
    only_if_rate_limited: bool = False,
) -> QuerySet[ModelQuota]:
    usage = ModelUsage.objects.filter(model=OuterRef("model"), period_start=period)
    minutes, edge = _started_in_window(
        OuterRef("model"),
        window_start=window_start,
        minutes_after=minutes_after,
        edge_until=edge_until,
    )
    summed = minutes.order_by().values("model").annotate(n=Sum("requests")).values("n")
    started = Coalesce(
        Subquery(summed, output_field=IntegerField()), Value(0), output_field=IntegerField()
    ) + _count(edge, "model")
    window = Job.objects.filter(model=OuterRef("model"), started_at__gt=window_start)
    oldest = _earliest(window, "started_at")
    if only_if_rate_limited:
        # Counting the last hour reads every job of it; a model without an hourly limit
        # skips that (the database evaluates the CASE's other branch only when taken).
        unlimited = Q(hourly_rate_limit=0)
        started = Case(When(unlimited, then=Value(0)), default=started)
        oldest = Case(When(unlimited, then=Value(None)), default=oldest)
    return ModelQuota.objects.annotate(
        tokens_today=_value_or_zero(usage, "tokens_used", BigIntegerField()),
        cost_today=_value_or_zero(usage, "cost_microcents", BigIntegerField()),
        started_last_hour=started,
        oldest_in_window=oldest,
    )


def model_state(model: str, *, now: datetime) -> ModelState | None:
    """Today's usage of a model beside its quota, or None if the model has no quota; for the
    rules, so the last hour is counted only when the model has an hourly limit."""
    [quota] = prepared.first_each(_model_read(model, now))
    return None if quota is None else model_state_from(quota)


def _model_read(model: str, now: datetime) -> prepared.Read | None:
    if not model:
        return None
    return prepared.read(_model_query, model=model, period=day_start(now), **hour_window(now))


def model_state_from(quota: ModelQuota) -> ModelState:
    """The state of a quota annotated by model_quotas_with_usage()."""
    return _model_state(quota)


def repo_limits_with_usage(now: datetime) -> QuerySet[RepoLimit]:
    """Repository limits annotated with today's PRs and issues and the last failure."""
    return _repo_limits_with_usage(day_start(now))


def _repo_limits_with_usage(period: datetime) -> QuerySet[RepoLimit]:
    usage = RepoUsage.objects.filter(repo=OuterRef("repo"), period_start=period)
    # A cooldown may run past midnight, so the last failure is looked up across days.
    failures = RepoUsage.objects.filter(repo=OuterRef("repo"), last_failure_at__isnull=False)
    return RepoLimit.objects.annotate(
        prs_today=_value_or_zero(usage, "prs_opened", IntegerField()),
        issues_today=_value_or_zero(usage, "issues_opened", IntegerField()),
        last_failure_at=Subquery(failures.order_by("-period_start").values("last_failure_at")[:1]),
    )


@prepared.statement("model_state")
def _model_query(*, model: str, period: datetime, **window: datetime) -> QuerySet:
    queryset = _model_quotas_with_usage(period=period, only_if_rate_limited=True, **window)
    # The rules never look at the prices; a final report reads them with the job.
    return queryset.filter(model=model).defer(
        *UNREAD, "input_price_per_mtok", "output_price_per_mtok"
    )


@prepared.statement("repo_state")
def _repo_query(*, repo: str, period: datetime) -> QuerySet:
    return _repo_limits_with_usage(period).filter(repo=repo).defer(*UNREAD)


def repo_state(repo: str, *, now: datetime) -> RepoState | None:
    """Today's activity on a repository beside its limit, or None if it has no limit."""
    [limit] = prepared.first_each(_repo_read(repo, now))
    return None if limit is None else repo_state_from(limit)


def _repo_read(repo: str, now: datetime) -> prepared.Read | None:
    return prepared.read(_repo_query, repo=repo, period=day_start(now)) if repo else None


def repo_state_from(limit: RepoLimit) -> RepoState:
    """The state of a limit annotated by repo_limits_with_usage()."""
    return _repo_state(limit)


@dataclass(frozen=True)
class RepoUsageRecord:
    repo: str
    prs_opened: int
    issues_opened: int
    cooldown_until: datetime | None
    period_start: datetime


@dataclass(frozen=True)
class ModelUsageRecord:
    model: str
    tokens_used: int
    cost_microcents: int
    requests_last_hour: int
    period_start: datetime


def usage_record(*, agent_id: str, now: datetime | None = None) -> UsageRecord:
    """The agent's usage today beside its limits. Reading never creates an allowance."""
    require_valid(agent_id=agent_id)
    now = now or timezone.now()
    agent = current_agent_state(agent_id, now=now)
    if agent is None:
        raise AllowanceNotFound(f"allowance not found for agent: {agent_id}")
    return UsageRecord.of(agent, day_start(now))


def repo_usage_record(*, repo: str, now: datetime | None = None) -> RepoUsageRecord:
    """A repository's PRs and issues today and the end of its cooldown, if one is running."""
    require_valid(repo=repo)
    now = now or timezone.now()
    state = repo_state(repo, now=now)
    if state is None:
        today = RepoUsage.objects.filter(repo=repo, period_start=day_start(now)).first()
        return RepoUsageRecord(
            repo,
            today.prs_opened if today else 0,
            today.issues_opened if today else 0,
            None,
            day_start(now),
        )
    return RepoUsageRecord(
        repo, state.prs_opened, state.issues_opened, state.cooldown_until(now), day_start(now)
    )


def model_usage_record(*, model: str, now: datetime | None = None) -> ModelUsageRecord:
    """A model's tokens and cost today and the jobs started on it in the last 60 minutes."""
    require_valid(model=model)
    if not model:
        raise InvalidInput("model is required", field="model")
    now = now or timezone.now()
    today = ModelUsage.objects.filter(model=model, period_start=day_start(now)).first()
    minutes, edge = _started_in_window(model, **hour_window(now))
    started = (minutes.aggregate(n=Sum("requests"))["n"] or 0) + edge.count()
    return ModelUsageRecord(
        model=model,
        tokens_used=today.tokens_used if today else 0,
        cost_microcents=today.cost_microcents if today else 0,
        requests_last_hour=started,
        period_start=day_start(now),
    )


def daily_usage(kind: str, *, first_day: date, last_day: date, per_day: bool = True) -> QuerySet:
    """What was consumed from ``first_day`` to ``last_day`` (both included) per agent, per
    model or per agent and model (``kind``: a key of ``CONSUMPTION``), for export.

    Per day, rows ``(period_start, *subject, tokens, cost_microcents, jobs)``, oldest first;
    over the whole range, the same without ``period_start``, by subject. A values_list, read
    in chunks: no model instance per row. Never the counters a reset zeroes.
    """
    source, subject, consumed = CONSUMPTION[kind]
    rows = source.objects.filter(_days_between(first_day, last_day)).order_by()
    keys = ["period_start", *subject] if per_day else list(subject)
    if source is UsageEvent:
        # Resets and repository events consume nothing: no rows of zeros for them.
        rows = rows.filter(event__in=USAGE_EVENTS)
    elif per_day:
        # Already one row per subject and day: read in the order of the day index, ungrouped.
        return rows.order_by(*keys).values_list(*keys, *consumed)
    sums = {name: Sum(field) for name, field in zip(FIGURES, consumed, strict=True)}
    return rows.values(*keys).annotate(**sums).order_by(*keys).values_list(*keys, *sums)


# The engine's other reads, each compiled once per connection (quotas.prepared)


def allowance_lock_read(agent_id: str) -> prepared.Read:
    """The agent's allowance row, locked until the transaction ends: its maximum job duration."""
    return prepared.read(_allowance_for_update, agent_id=agent_id)


@prepared.statement("lock_allowance")
def _allowance_for_update(*, agent_id: str) -> QuerySet:
    allowance = AgentAllowance.objects.select_for_update().filter(agent_id=agent_id)
    return allowance.values_list("max_job_duration")


def model_quota_lock_read(model: str) -> prepared.Read:
    """The model's quota row, locked until the transaction ends (its key)."""
    return prepared.read(_model_quota_for_update, model=model)


@prepared.statement("lock_model_quota")
def _model_quota_for_update(*, model: str) -> QuerySet:
    return _model_prices(model=model).select_for_update().values_list("pk")


def model_prices_read(model: str) -> prepared.Read:
    """The model's quota with its prices only: what a final report charges by."""
    return prepared.read(_model_prices, model=model)


@prepared.statement("model_prices")
def _model_prices(*, model: str) -> QuerySet[ModelQuota]:
    # Fewer columns keep a report's read short enough for psycopg to cache its parsing
    # (tests/test_query_counts.py).
    prices = ("model", "input_price_per_mtok", "output_price_per_mtok")
    return ModelQuota.objects.filter(model=model).only(*prices)


def job_read(*, agent_id: str, job_id: str) -> prepared.Read:
    """The ledger's job a report is about."""
    return prepared.read(_job, agent_id=agent_id, job_id=job_id)


@prepared.statement("job")
def _job(*, agent_id: str, job_id: str) -> QuerySet[Job]:
    # A report never looks at the decision the job was admitted with, nor when it was made.
    return Job.objects.filter(agent_id=agent_id, job_id=job_id).defer("decision", "created_at")


def overdue_jobs(running_since: datetime) -> QuerySet[Job]:
    """Running jobs started before ``running_since`` (rules.is_overdue)."""
    return Job.objects.filter(overdue_sql(running_since))


def allowances_with_duration(agent_id: str | None = None) -> QuerySet[AgentAllowance]:
    """Allowances whose jobs can be overdue (a maximum job duration), or the one of an agent."""
    allowances = AgentAllowance.objects.filter(max_job_duration__gt=timedelta(0))
    return allowances if agent_id is None else allowances.filter(agent_id=agent_id)


# What was consumed, for the dashboard and the exports

# The figures every export row and dashboard total gives: tokens, cost and jobs.
FIGURES = ("tokens", "cost_microcents", "jobs")
# The facts a reset never changes, per agent (AgentUsage), per model (ModelUsage, never
# reset) and per agent and model (the event log's deltas that feed the agent's facts).
AGENT_CONSUMED = ("tokens_consumed", "cost_microcents", "jobs_run")
CONSUMPTION = {
    "agent": (AgentUsage, ("agent_id",), AGENT_CONSUMED),
    "model": (ModelUsage, ("model",), ("tokens_used", "cost_microcents", "requests")),
    "agent_model": (
        UsageEvent,
        ("agent_id", "model"),
        tuple(AgentUsage.counters[counter] for counter in AGENT_CONSUMED),
    ),
}


def _days_between(first_day: date, last_day: date) -> Q:
    """The quota days from ``first_day`` to ``last_day``, both included, by their start."""
    zone = quota_zone()
    since = datetime.combine(first_day, time.min, tzinfo=zone)
    until = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=zone)
    return Q(period_start__gte=since, period_start__lt=until)


def usage_without_model(*, first_day: date, last_day: date, per_day: bool = True) -> list[tuple]:
    """What jobs reported without a model consumed, as ``daily_usage('model', ...)`` rows
    with the model ``''``: one per day where it is not all zero (one for the whole range
    without ``per_day``).

    Every charged token counts on its agent, and also on its model when the job has one
    (services moves both from one rules.Deltas), so all agents' facts of a day less all
    models' are exactly what no model holds. Two reads of one row per day, where summing the
    event log would read every report; and the per-model export, with this row, then adds up
    to the per-agent export and the dashboard's totals by construction (reconcile proves both
    tables against the event log).
    """
    days = _days_between(first_day, last_day)
    agents, models = (
        _summed(CONSUMPTION[kind], days, per_day=per_day) for kind in ("agent", "model")
    )
    nothing = (0,) * len(FIGURES)
    rows = []
    for day in sorted(agents.keys() | models.keys()):
        left = tuple(
            a - m for a, m in zip(agents.get(day, nothing), models.get(day, nothing), strict=True)
        )
        if any(left):
            rows.append((*([day] if per_day else []), "", *left))
    return rows


def _summed(consumption: tuple, days: Q, *, per_day: bool) -> dict:
    """``{period_start: (tokens, cost, jobs)}`` of one source, or ``{0: ...}`` for the range."""
    source, _, consumed = consumption
    sums = {name: Sum(field) for name, field in zip(FIGURES, consumed, strict=True)}
    rows = source.objects.filter(days).order_by()
    if not per_day:
        total = rows.aggregate(**sums)
        return {0: tuple(int(total[name] or 0) for name in sums)}
    grouped = rows.values("period_start").annotate(**sums).values_list("period_start", *sums)
    return {day: tuple(int(value or 0) for value in values) for day, *values in grouped}


# What the admin's pages show beside the limits: spend, last activity, refusals, resets


def allowances_for_people(now: datetime) -> QuerySet[AgentAllowance]:
    """allowances_with_usage(), with what the agent spent, consumed and ran today (facts a
    reset never changes) and its last activity: its latest usage or refusal, whichever came
    later (an agent refused all day has been active, though it used nothing)."""
    usage = AgentUsage.objects.filter(agent_id=OuterRef("agent_id"), period_start=day_start(now))
    latest_usage = AgentUsage.objects.filter(agent_id=OuterRef("agent_id"))
    latest_refusal = RefusalCount.objects.filter(
        agent_id=OuterRef("agent_id"), last_refused_at__isnull=False
    )
    # Each the first entry of an index: (agent_id, period_start) and refusal_count_agent_idx.
    used = Subquery(latest_usage.order_by("-period_start").values("updated_at")[:1])
    refused = Subquery(latest_refusal.order_by("-last_refused_at").values("last_refused_at")[:1])
    return allowances_with_usage(now).annotate(
        spend_today=_value_or_zero(usage, "cost_microcents", BigIntegerField()),
        consumed_today=_value_or_zero(usage, "tokens_consumed", BigIntegerField()),
        jobs_run_today=_value_or_zero(usage, "jobs_run", IntegerField()),
        # Greatest of a NULL is NULL on SQLite, the other value on PostgreSQL: never NULL here
        # unless both are.
        last_activity_at=Greatest(Coalesce(used, refused), Coalesce(refused, used)),
    )


def refusals_today(agent_id: str, *, now: datetime) -> QuerySet[RefusalCount]:
    """An agent's refusals today, by rule, model and repository, the latest first."""
    today = RefusalCount.objects.filter(agent_id=agent_id, period_start=day_start(now))
    return today.order_by("-last_refused_at", "reason_code")


def usage_reset_today(agent_id: str, *, now: datetime) -> ChangeLog | None:
    """The latest reset of the agent's usage today (who and when), if there was one: what
    counts against its daily limits counts since then."""
    resets = ChangeLog.objects.filter(
        change=Change.USAGE_RESET,
        subject_kind=Subject.AGENT,
        subject=agent_id,
        at__gte=day_start(now),
        at__lte=now,
    )
    return resets.order_by("-at", "-id").first()


def default_allowance_exists() -> bool:
    """Whether agents without an allowance of their own get a copy of the ``*`` default."""
    return AgentAllowance.objects.filter(agent_id=DEFAULT_AGENT_ID).exists()
