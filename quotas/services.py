"""The rules that change the books: check, dispatch, record usage, reset, expire, close days.

The admin, the API and the management commands call these functions and nothing else writes
usage. Each write is one transaction: either every counter moves or none does.
"""

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from functools import cached_property

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from quotas import prepared, selectors
from quotas.exceptions import AllowanceNotFound, InvalidInput, UsageConflict
from quotas.models import (
    AgentAllowance,
    AgentUsage,
    Job,
    ModelMinuteUsage,
    ModelQuota,
    ModelUsage,
    RefusalCount,
    RepoUsage,
    UsageEvent,
)
from quotas.periods import day_start, minute_start
from quotas.rules import (
    HOUR,
    OK,
    WARNING,
    AgentState,
    QuotaCheckResult,
    UsageRecord,
    evaluate,
    is_near,
    remaining,
)
from quotas.upserts import add_to_usage, lock_copy_of_default_allowance
from quotas.validators import (
    BIGINT_MAX,
    DEFAULT_AGENT_ID,
    require_token_counts,
    require_valid,
)

Kind = UsageEvent.Kind
FINAL_STATES = {
    Kind.JOB_COMPLETED: Job.State.COMPLETED,
    Kind.JOB_FAILED: Job.State.FAILED,
    Kind.JOB_CANCELLED: Job.State.CANCELLED,
}
ENDED_STATES = frozenset(FINAL_STATES.values())
# What a final report changes on a job it found in the ledger (the model, when the report
# names one for a job dispatched without).
ENDED_FIELDS = (
    "model",
    "state",
    "ended_at",
    "tokens_in",
    "tokens_out",
    "tokens_charged",
    "cost_charged_microcents",
)
REPO_EVENTS = (Kind.PR_OPENED, Kind.ISSUE_OPENED, Kind.REPO_FAILURE)


@dataclass(frozen=True)
class DispatchResult:
    result: QuotaCheckResult
    job: Job | None
    duplicate: bool = False


@dataclass(frozen=True)
class UsageResult:
    duplicate: bool
    usage: UsageRecord


@dataclass(frozen=True)
class Report:
    """A usage report as received: the server's clock, the reporter's timestamp, its tokens."""

    now: datetime
    timestamp: datetime | None = None
    tokens_in: int = 0
    tokens_out: int = 0

    @cached_property
    def period(self) -> datetime:
        """The quota day the report counts in (each of its writes needs it)."""
        return day_start(self.now)


# Decisions


def check(
    *, agent_id: str, model: str = "", repo: str = "", action: str = "", now: datetime | None = None
) -> QuotaCheckResult:
    """May this agent start a job now (on this model, on this repository, to open a PR or issue)?

    A refusal is an answer, not an error; an unknown agent raises ``AllowanceNotFound``.
    """
    require_valid(agent_id=agent_id, model=model, repo=repo, action=action)
    now = now or timezone.now()
    agent, model_state, repo_state = selectors.states(agent_id, model, repo, now=now)
    result = evaluate(
        agent=_usable_agent_state(agent, agent_id, now),
        model_name=model,
        model=model_state,
        repo_name=repo,
        repo=repo_state,
        action=action,
        now=now,
    )
    _count_refusal(agent_id, result, now)
    return result


def dispatch(
    *, agent_id: str, job_id: str, model: str = "", repo: str = "", now: datetime | None = None
) -> DispatchResult:
    """Check and, if allowed, start the job, in one transaction.

    The same ``job_id`` again returns the first admission and counts nothing twice. A refusal
    records nothing, so the dispatcher may retry the same ``job_id`` once the refusal clears.
    """
    require_valid(agent_id=agent_id, job_id=job_id, model=model, repo=repo)
    with transaction.atomic():
        # Locking the allowance row serializes every dispatch and report of this agent: two
        # dispatchers can never both take its last free slot or its last job of the day.
        # Locking the model quota does the same for the model's hourly limit across agents.
        duration = _lock(agent_id, model, now or timezone.now())
        # The clock is read once the locks are held, so the ledger's start and end times
        # follow the order in which the locks were granted.
        now = now or timezone.now()
        # Read only now, with every lock held: under READ COMMITTED a statement sees what was
        # committed before it began, so reading in the locking statement itself could miss
        # the jobs that the transaction we waited for had just started.
        running_since = now - duration if duration else None
        agent, model_state, repo_state = selectors.states(
            agent_id, model, repo, now=now, job_id=job_id, running_since=running_since
        )
        if agent.overdue_jobs:
            _expire(agent_id, running_since, now)
        if agent.existing_job_pk is not None:
            existing = Job.objects.get(pk=agent.existing_job_pk)
            return DispatchResult(_first_decision(existing, agent), existing, duplicate=True)
        result = evaluate(
            agent=agent,
            model_name=model,
            model=model_state,
            repo_name=repo,
            repo=repo_state,
            action="",
            now=now,
        )
        if not result.allowed:
            _count_refusal(agent_id, result, now)
            return DispatchResult(result, None)
        if result.remaining_jobs > 0:
            result = replace(result, remaining_jobs=result.remaining_jobs - 1)
        job = Job(
            agent_id=agent_id, job_id=job_id, model=model, repo=repo, decision=result.as_dict()
        )
        prepared.write(*_start_job(job, Report(now)))
        return DispatchResult(result, job)


# Usage reports


def record_usage(
    *,
    agent_id: str,
    job_id: str,
    event: str,
    model: str = "",
    tokens_in: int = 0,
    tokens_out: int = 0,
    timestamp: datetime | None = None,
    now: datetime | None = None,
) -> UsageResult:
    """Apply one usage report (Go's ``UsageReport``) to the job ledger and today's counters.

    The same (agent, job, event) again changes nothing and says so; a different final event
    for a job that has already ended raises ``UsageConflict``.
    """
    require_valid(agent_id=agent_id, job_id=job_id, model=model, event=event)
    require_token_counts(tokens_in=tokens_in, tokens_out=tokens_out)
    with transaction.atomic():
        # The allowance lock makes a retried report wait for the first one, then see it.
        duration = _lock(agent_id, "", now or timezone.now())
        now = now or timezone.now()  # after the lock, as in dispatch
        running_since = now - duration if duration else None
        # A final report naming its model needs that model's prices: read with the job, and
        # with the agent's state, which the report's answer shows as the report leaves it.
        priced = model if model and event != Kind.JOB_STARTED else ""
        job, quota, allowance = prepared.first_each(
            ("job", _job, {"agent_id": agent_id, "job_id": job_id}),
            ("model_quota", _model_quota, {"model": priced}) if priced else None,
            selectors.agent_read(agent_id, now=now, running_since=running_since),
        )
        job, named_late = _job_to_report(job, agent_id, job_id, model)
        ran_before = _counts_as_running(job, running_since)
        report = Report(now, timestamp, tokens_in, tokens_out)
        writes = _report_writes(job, Kind(event), report, {priced: quota} if priced else {})
        if writes and named_late:
            # Its start now counts in that model's hour, as the ledger says it should.
            writes.append(_count_start_minute(job, report))
        prepared.write(*(writes or []))
    agent = selectors.agent_state_from(allowance)
    if writes is not None:
        agent = _after_report(agent, job, Kind(event), ran_before, running_since)
    return UsageResult(writes is None, UsageRecord.of(agent, report.period))


def _job_to_report(job: Job | None, agent_id: str, job_id: str, model: str) -> tuple[Job, bool]:
    """The ledger's job the report is about (a new one if it has none), and whether the
    report names the model of a job that started without one."""
    if job is None:
        return Job(agent_id=agent_id, job_id=job_id, model=model), False
    if job.model and model and model != job.model:
        raise UsageConflict(
            f"job {job_id} was started on model {job.model}, not {model}", field="model"
        )
    if model and not job.model:
        # Dispatched without a model, the report names it: charge that model, as Go did.
        job.model = model
        return job, job.started_at is not None
    return job, False


def _report_writes(
    job: Job, event: Kind, report: Report, quotas: dict[str, ModelQuota | None]
) -> list[prepared.Write] | None:
    """The writes a report makes; None if it is a duplicate and changes nothing."""
    if event == Kind.JOB_STARTED:
        return None if job.started_at is not None else _start_job(job, report)
    return _end_job(job, event, report, quotas)


def _counts_as_running(job: Job, running_since: datetime | None) -> bool:
    """Whether the agent's running jobs (selectors.agent_state) include this job."""
    if job.state != Job.State.RUNNING or job.started_at is None:
        return False
    return running_since is None or job.started_at >= running_since


def _after_report(
    agent: AgentState, job: Job, event: Kind, ran_before: bool, running_since: datetime | None
) -> AgentState:
    """The agent's state read before a report, moved on by what the report changed: what a
    new read would give, without the statement (tests/test_usage.py holds them equal)."""
    started = event == Kind.JOB_STARTED
    return replace(
        agent,
        tokens_used=agent.tokens_used + (0 if started else job.tokens_charged),
        jobs_started=agent.jobs_started + (1 if started else 0),
        running_jobs=agent.running_jobs - ran_before + _counts_as_running(job, running_since),
    )


def job_charge(
    event: str, tokens_in: int, tokens_out: int, quota: ModelQuota | None
) -> tuple[int, int]:
    """Tokens and cost (microcents) a final report charges.

    A failed job gets half its tokens back, rounded in the agent's disfavour as in Go (7 tokens
    charge 4). A cancelled job is charged nothing. Deliberate difference from Go: Go subtracted
    a cancelled job's reported tokens from the agent's total even though they were never
    charged, erasing other jobs' usage; here a job is only ever charged by its one final
    report, so a cancel has nothing of its own to return and touches nobody else's usage.
    """
    if event == Kind.JOB_CANCELLED:
        return 0, 0
    tokens = tokens_in + tokens_out
    cost = _cost_microcents(quota, tokens_in, tokens_out)
    if event == Kind.JOB_FAILED:
        return tokens - tokens // 2, cost - cost // 2
    return tokens, cost


def _cost_microcents(quota: ModelQuota | None, tokens_in: int, tokens_out: int) -> int:
    if quota is None:
        return 0
    # Dollars per million tokens times tokens is millionths of dollars; x100 gives microcents.
    # A wide context keeps 19-digit token counts times 12-digit prices exact before rounding.
    context = Context(prec=60)
    dollars_e6 = context.add(
        context.multiply(Decimal(tokens_in), quota.input_price_per_mtok),
        context.multiply(Decimal(tokens_out), quota.output_price_per_mtok),
    )
    cost = int(context.multiply(dollars_e6, 100).to_integral_value(rounding=ROUND_HALF_UP))
    if cost > BIGINT_MAX:
        raise InvalidInput("the report's cost is too large to record", field="tokens_in")
    return cost


def _start_job(job: Job, report: Report) -> list[prepared.Write]:
    """The writes that count a start: the job runs (unless its final report came first), jobs
    +1, requests +1 on the day and in the minute."""
    job.started_at = report.now
    if job.pk is None:
        job.state = Job.State.RUNNING
        writes = [prepared.inserting(job)]
    else:
        writes = [prepared.updating(job, ["started_at", "model"])]
    writes.append(_count(AgentUsage, report, add={"jobs_started": 1}, agent_id=job.agent_id))
    if job.model:
        writes.append(_count(ModelUsage, report, add={"requests": 1}, model=job.model))
        writes.append(_count_start_minute(job, report))
    deltas = {"jobs_delta": 1, "requests_delta": 1 if job.model else 0}
    return [*writes, _log(job, Kind.JOB_STARTED, report, **deltas)]


def _end_job(
    job: Job, event: Kind, report: Report, quotas: dict[str, ModelQuota | None]
) -> list[prepared.Write] | None:
    """The writes that charge a final report; None if it is a duplicate and changes nothing.

    ``quotas`` holds the quota (None: the model has none) of any model already read.
    """
    final_state = FINAL_STATES[event]
    if job.state == final_state:
        return None
    if job.state in ENDED_STATES:
        raise UsageConflict(
            f"job {job.job_id} already ended as {job.state}; {event} cannot change that"
        )
    if job.model in quotas:
        quota = quotas[job.model]
    else:
        quota = prepared.first("model_quota", _model_quota, model=job.model) if job.model else None
    tokens, cost = job_charge(event, report.tokens_in, report.tokens_out, quota)
    job.state, job.ended_at = final_state, report.now
    job.tokens_in, job.tokens_out = report.tokens_in, report.tokens_out
    job.tokens_charged, job.cost_charged_microcents = tokens, cost
    writes = [prepared.inserting(job) if job.pk is None else prepared.updating(job, ENDED_FIELDS)]
    if tokens:
        writes.append(
            _count(AgentUsage, report, add={"tokens_used": tokens}, agent_id=job.agent_id)
        )
    if job.model and (tokens or cost):
        charge = {"tokens_used": tokens, "cost_microcents": cost}
        writes.append(_count(ModelUsage, report, add=charge, model=job.model))
    if event == Kind.JOB_FAILED and job.repo:
        writes.append(
            _count(RepoUsage, report, set_={"last_failure_at": report.now}, repo=job.repo)
        )
    deltas = {"tokens_delta": tokens, "model_tokens_delta": tokens, "cost_delta_microcents": cost}
    return [*writes, _log(job, event, report, **deltas)]


def _log(job: Job, event: Kind, report: Report, **deltas: int) -> prepared.Write:
    entry = UsageEvent(
        event=event,
        agent_id=job.agent_id,
        job_id=job.job_id,
        model=job.model,
        repo=job.repo,
        tokens_in=report.tokens_in,
        tokens_out=report.tokens_out,
        timestamp=report.timestamp,
        received_at=report.now,
        period_start=report.period,
        **deltas,
    )
    return prepared.inserting(entry)


# Repository events


def record_repo_event(
    *,
    repo: str,
    kind: str,
    agent_id: str = "",
    timestamp: datetime | None = None,
    now: datetime | None = None,
) -> selectors.RepoUsageRecord:
    """Count a PR or issue an agent opened, or start a repository's cooldown after a failure."""
    require_valid(repo=repo, agent_id=agent_id or None)
    if kind not in REPO_EVENTS:
        raise InvalidInput(f"kind must be one of: {', '.join(REPO_EVENTS)}", field="kind")
    now = now or timezone.now()
    report = Report(now, timestamp)
    if kind == Kind.REPO_FAILURE:
        counted = _count(RepoUsage, report, set_={"last_failure_at": now}, repo=repo)
    else:
        opened = "prs_opened" if kind == Kind.PR_OPENED else "issues_opened"
        counted = _count(RepoUsage, report, add={opened: 1}, repo=repo)
    entry = UsageEvent(
        event=kind,
        agent_id=agent_id,
        repo=repo,
        timestamp=timestamp,
        received_at=now,
        period_start=report.period,
    )
    with transaction.atomic():
        prepared.write(counted, prepared.inserting(entry))
    return selectors.repo_usage_record(repo=repo, now=now)


# Resets and housekeeping


def reset_usage(
    *, agent_id: str | None = None, now: datetime | None = None, dry_run: bool = False
) -> int:
    """Start today afresh for one agent (or every agent): tokens and jobs back to zero.

    Running jobs stay running. Each reset is logged with the amounts it removed, so the
    counters can still be recomputed from the event log. Returns how many agents were (or,
    with ``dry_run``, would be) reset.
    """
    now = now or timezone.now()
    period = day_start(now)
    with transaction.atomic():
        usage = AgentUsage.objects.filter(period_start=period).filter(
            Q(tokens_used__gt=0) | Q(jobs_started__gt=0)
        )
        if agent_id is not None:
            require_valid(agent_id=agent_id)
            # Same lock as dispatch and reports, so a reset never interleaves with them.
            if not AgentAllowance.objects.select_for_update().filter(agent_id=agent_id).exists():
                raise AllowanceNotFound(f"allowance not found for agent: {agent_id}")
            usage = usage.filter(agent_id=agent_id)
        rows = list(usage.select_for_update())
        if dry_run:
            return len(rows)
        UsageEvent.objects.bulk_create(
            UsageEvent(
                event=Kind.USAGE_RESET,
                agent_id=row.agent_id,
                received_at=now,
                period_start=period,
                tokens_delta=-row.tokens_used,
                jobs_delta=-row.jobs_started,
            )
            for row in rows
        )
        AgentUsage.objects.filter(pk__in=[row.pk for row in rows]).update(
            tokens_used=0, jobs_started=0, updated_at=now
        )
    return len(rows)


def set_paused(*, agent_ids: list[str], paused: bool) -> int:
    """Pause or resume agents; returns how many changed.

    Each allowance is saved on its own rather than bulk-updated, so that its history records
    who paused it and when.
    """
    changed = 0
    with transaction.atomic():
        allowances = AgentAllowance.objects.select_for_update().filter(agent_id__in=agent_ids)
        for allowance in allowances.exclude(paused=paused):
            allowance.paused = paused
            allowance.save(update_fields=["paused", "updated_at"])
            changed += 1
    return changed


def expire_overdue_jobs(
    *, agent_id: str | None = None, now: datetime | None = None, dry_run: bool = False
) -> int:
    """Mark running jobs older than their agent's ``max_job_duration`` as expired.

    Expired jobs stop holding a concurrency slot; a late final report is still charged.
    Returns how many jobs were (or, with ``dry_run``, would be) expired.
    """
    now = now or timezone.now()
    allowances = AgentAllowance.objects.filter(max_job_duration__gt=timedelta(0))
    if agent_id is not None:
        allowances = allowances.filter(agent_id=agent_id)
    durations = allowances.order_by().values_list("max_job_duration", flat=True).distinct()
    expired = 0
    # One statement per distinct duration (there are few) rather than one per agent.
    for duration in list(durations):
        agents = allowances.filter(max_job_duration=duration).values("agent_id")
        overdue = _overdue_jobs(now - duration).filter(agent_id__in=agents)
        expired += (
            overdue.count() if dry_run else overdue.update(state=Job.State.EXPIRED, ended_at=now)
        )
    return expired


def close_finished_days(*, now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Mark usage rows of days that are over as closed; they are history from now on.

    Correctness never depends on this: a past day's usage stops counting at midnight anyway.
    """
    now = now or timezone.now()
    closed = {}
    for label, usage_model in (("agent", AgentUsage), ("model", ModelUsage), ("repo", RepoUsage)):
        finished = usage_model.objects.filter(
            period_start__lt=day_start(now), closed_at__isnull=True
        )
        closed[label] = finished.count() if dry_run else finished.update(closed_at=now)
    return closed


def prune_minute_usage(*, now: datetime | None = None, dry_run: bool = False) -> int:
    """Delete the per-minute job counts that can no longer fall in any model's sliding hour.

    Correctness never depends on this: the rate limit reads only the minutes of the last
    hour. Returns how many rows were (or, with ``dry_run``, would be) deleted.
    """
    now = now or timezone.now()
    stale = ModelMinuteUsage.objects.filter(minute_start__lt=minute_start(now - HOUR))
    return stale.count() if dry_run else stale.delete()[0]


# Helpers


def _usable_agent_state(agent: AgentState | None, agent_id: str, now: datetime) -> AgentState:
    """The agent's state as read for a check (no locks), made usable: its allowance created
    from the ``*`` default on first use, overdue jobs expired so that they hold no slot."""
    if agent is None:
        lock_copy_of_default_allowance(agent_id, DEFAULT_AGENT_ID, now=now)
        agent = selectors.agent_state(agent_id, now=now)
        if agent is None:
            raise AllowanceNotFound(f"allowance not found for agent: {agent_id}")
    duration = agent.allowance.max_job_duration
    if duration and agent.oldest_running_at and agent.oldest_running_at < now - duration:
        _expire(agent_id, now - duration, now)
        agent = selectors.agent_state(agent_id, now=now)
    return agent


def _lock(agent_id: str, model: str, now: datetime) -> timedelta:
    """Lock the agent's allowance row, then the model's quota row if there is a model, until
    the transaction ends (in one statement, always in this order); create the allowance from
    the ``*`` default on first use; return the agent's maximum job duration."""
    duration, _ = prepared.first_value_each(
        ("lock_allowance", _allowance_for_update, {"agent_id": agent_id}),
        ("lock_model_quota", _model_quota_for_update, {"model": model}) if model else None,
    )
    if duration is not None:
        return duration
    if not lock_copy_of_default_allowance(agent_id, DEFAULT_AGENT_ID, now=now):
        raise AllowanceNotFound(f"allowance not found for agent: {agent_id}")
    return timedelta(0)  # just created, or by a racing first request: no job can be overdue


# The hot path's other statements, each compiled once per connection (quotas.prepared).


def _allowance_for_update(*, agent_id: str) -> models.QuerySet:
    allowance = AgentAllowance.objects.select_for_update().filter(agent_id=agent_id)
    return allowance.values_list("max_job_duration")


def _model_quota(*, model: str) -> models.QuerySet[ModelQuota]:
    # A final report needs only the prices (and fewer columns keep the report's read short
    # enough for psycopg to cache its parsing: tests/test_query_counts.py).
    prices = ("model", "input_price_per_mtok", "output_price_per_mtok")
    return ModelQuota.objects.filter(model=model).only(*prices)


def _model_quota_for_update(*, model: str) -> models.QuerySet:
    return _model_quota(model=model).select_for_update().values_list("pk")


def _job(*, agent_id: str, job_id: str) -> models.QuerySet[Job]:
    # A report never looks at the decision the job was admitted with, nor when it was made.
    return Job.objects.filter(agent_id=agent_id, job_id=job_id).defer("decision", "created_at")


def _expire(agent_id: str, started_before: datetime, now: datetime) -> None:
    _overdue_jobs(started_before).filter(agent_id=agent_id).update(
        state=Job.State.EXPIRED, ended_at=now
    )


def _overdue_jobs(started_before: datetime) -> models.QuerySet[Job]:
    return Job.objects.filter(state=Job.State.RUNNING, started_at__lt=started_before)


def _first_decision(job: Job, agent: AgentState) -> QuotaCheckResult:
    """What the first dispatch of this job answered; for a job first seen through a usage
    report (never dispatched here) an admission reflecting the agent's usage now."""
    if job.decision:
        # Only the fields the result has now, should a stored decision predate one of them.
        names = {field.name for field in fields(QuotaCheckResult)}
        return QuotaCheckResult(**{k: v for k, v in job.decision.items() if k in names})
    allowance = agent.allowance
    return QuotaCheckResult(
        allowed=True,
        status=WARNING if is_near(agent.tokens_used, allowance.daily_token_limit) else OK,
        remaining_tokens=remaining(allowance.daily_token_limit, agent.tokens_used),
        remaining_jobs=remaining(allowance.daily_job_limit, agent.jobs_started),
    )


def _count_refusal(agent_id: str, result: QuotaCheckResult, now: datetime) -> None:
    """Tally a refusal for the dashboard; the books themselves do not change."""
    if not result.allowed:
        counted = _count(
            RefusalCount,
            Report(now),
            add={"refusals": 1},
            agent_id=agent_id,
            reason_code=result.reason_code,
        )
        prepared.write(counted)


def _count(usage_model, report: Report, *, add=None, set_=None, **subject: str) -> prepared.Write:
    """Change the usage row of ``subject`` (agent_id=, model= or repo=) for the report's day."""
    key = {**subject, "period_start": report.period}
    return add_to_usage(usage_model, key, now=report.now, add=add, set_=set_, done=_no_overflow)


def _count_start_minute(job: Job, report: Report) -> prepared.Write:
    """One more job started on the job's model in the minute it started."""
    key = {"model": job.model, "minute_start": minute_start(job.started_at)}
    return add_to_usage(
        ModelMinuteUsage, key, now=report.now, add={"requests": 1}, done=_no_overflow
    )


def _no_overflow(counted) -> None:
    if counted is None:
        raise InvalidInput("this report would overflow a 64-bit usage counter", field="tokens_in")
