"""The engine's writes: check, dispatch, usage reports, repository events, pausing.

The admin, the API and the management commands call these functions and nothing else writes
usage. Each write is one transaction: either every counter moves or none does. What these
functions decide comes from rules.py, what they read from selectors.py; the day's
housekeeping (reset, expiry, closing days) is in housekeeping.py.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.db import transaction
from django.utils import timezone

from quotas import changelog, display, prepared, rules, selectors
from quotas.changelog import Actor
from quotas.exceptions import AllowanceNotFound, InvalidInput, UsageConflict
from quotas.housekeeping import expire_jobs
from quotas.models import (
    AgentAllowance,
    AgentUsage,
    Job,
    ModelMinuteUsage,
    ModelQuota,
    ModelUsage,
    RefusalCount,
    RepoLimit,
    RepoUsage,
    UsageEvent,
)
from quotas.periods import day_start, minute_start
from quotas.rules import AgentState, Deltas, QuotaCheckResult, UsageRecord
from quotas.upserts import add_to_usage, lock_copy_of_default_allowance
from quotas.validators import DEFAULT_AGENT_ID, require_token_counts, require_valid
from quotas.vocabulary import ENDED_STATES, REPO_EVENTS, Change, EventKind, JobState, Subject

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
# The repository counter each repository event adds one to.
OPENED = {event: counter for counter, event in RepoUsage.counted_events.items()}


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


@dataclass(frozen=True)
class Booking:
    """The writes that book one event, and what it changed, as the event log records it."""

    writes: list[prepared.Write | None]
    deltas: Deltas


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
    result = rules.evaluate(
        agent=_usable_agent_state(agent, agent_id, now),
        model_name=model,
        model=model_state,
        repo_name=repo,
        repo=repo_state,
        action=action,
        now=now,
    )
    _count_refusal(result, now, agent_id=agent_id, model=model, repo=repo)
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
        since = rules.running_since(duration, now)
        agent, model_state, repo_state = selectors.states(
            agent_id, model, repo, now=now, job_id=job_id, running_since=since
        )
        if agent.overdue_jobs:
            expire_jobs(agent_id=agent_id, running_since=since, now=now)
        if agent.existing_job_pk is not None:
            existing = Job.objects.get(pk=agent.existing_job_pk)
            decision = _first_decision(existing, agent, model_state)
            return DispatchResult(decision, existing, duplicate=True)
        result = rules.evaluate(
            agent=agent,
            model_name=model,
            model=model_state,
            repo_name=repo,
            repo=repo_state,
            action="",
            now=now,
        )
        if not result.allowed:
            _count_refusal(result, now, agent_id=agent_id, model=model, repo=repo)
            return DispatchResult(result, None)
        result = rules.counting_the_job(result)
        job = Job(
            agent_id=agent_id, job_id=job_id, model=model, repo=repo, decision=result.as_dict()
        )
        prepared.write(*_start_job(job, Report(now)).writes)
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
        since = rules.running_since(duration, now)
        # A final report naming its model needs that model's prices: read with the job, and
        # with the agent's state, which the report's answer shows as the report leaves it.
        priced = model if model and event != EventKind.JOB_STARTED else ""
        job, quota, allowance = prepared.first_each(
            selectors.job_read(agent_id=agent_id, job_id=job_id),
            selectors.model_prices_read(priced) if priced else None,
            selectors.agent_read(agent_id, now=now, running_since=since),
        )
        job, named_late = _job_to_report(job, agent_id, job_id, model)
        ran_before = rules.is_running(job.state, job.started_at, since)
        report = Report(now, timestamp, tokens_in, tokens_out)
        booking = _book(job, EventKind(event), report, {priced: quota} if priced else {})
        if booking is not None:
            if named_late:
                # Its start now counts in that model's hour, as the ledger says it should.
                booking.writes.append(_count_start_minute(job, report))
            prepared.write(*booking.writes)
    agent = selectors.agent_state_from(allowance)
    if booking is not None:
        running_change = rules.is_running(job.state, job.started_at, since) - ran_before
        agent = rules.after_report(agent, booking.deltas, running_change=running_change)
    return UsageResult(booking is None, UsageRecord.of(agent, report.period))


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


def _book(
    job: Job, event: EventKind, report: Report, quotas: dict[str, ModelQuota | None]
) -> Booking | None:
    """What a report books; None if it is a duplicate and changes nothing."""
    if event == EventKind.JOB_STARTED:
        return None if job.started_at is not None else _start_job(job, report)
    return _end_job(job, event, report, quotas)


def _start_job(job: Job, report: Report) -> Booking:
    """A start: the job runs (unless its final report came first), and the counters of its
    agent, its model and its model's minute each count it."""
    job.started_at = report.now
    if job.pk is None:
        job.state = JobState.RUNNING
        writes = [prepared.inserting(job)]
    else:
        writes = [prepared.updating(job, ["started_at", "model"])]
    deltas = rules.start_deltas(on_model=bool(job.model))
    writes += _counters_moved(job, report, deltas)
    if job.model:
        writes.append(_count_start_minute(job, report))
    return Booking([*writes, _log(job, EventKind.JOB_STARTED, report, deltas)], deltas)


def _end_job(
    job: Job, event: EventKind, report: Report, quotas: dict[str, ModelQuota | None]
) -> Booking | None:
    """A final report: the job's charge (rules.charge) booked on the job, its agent and its
    model; None if it is a duplicate and changes nothing.

    ``quotas`` holds the quota (None: the model has none) of any model already read.
    """
    final_state = rules.final_state(event)
    if job.state == final_state:
        return None
    if job.state in ENDED_STATES:
        raise UsageConflict(
            f"job {job.job_id} already ended as {job.state}; {event} cannot change that"
        )
    if job.model in quotas:
        quota = quotas[job.model]
    else:
        [quota] = prepared.first_each(selectors.model_prices_read(job.model) if job.model else None)
    charged = rules.charge(event, report.tokens_in, report.tokens_out, rules.Prices.of(quota))
    job.state, job.ended_at = final_state, report.now
    job.tokens_in, job.tokens_out = report.tokens_in, report.tokens_out
    job.tokens_charged, job.cost_charged_microcents = charged
    deltas = rules.end_deltas(charged)
    writes = [prepared.inserting(job) if job.pk is None else prepared.updating(job, ENDED_FIELDS)]
    writes += _counters_moved(job, report, deltas)
    if event == EventKind.JOB_FAILED and job.repo:
        writes.append(
            _count(RepoUsage, report, set_={"last_failure_at": report.now}, repo=job.repo)
        )
    return Booking([*writes, _log(job, event, report, deltas)], deltas)


def _counters_moved(job: Job, report: Report, deltas: Deltas) -> list[prepared.Write | None]:
    """The job's agent's and model's counters of the day, each moved by its delta."""
    agent = _count(AgentUsage, report, add=_added(AgentUsage, deltas), agent_id=job.agent_id)
    if not job.model:
        return [agent]
    return [agent, _count(ModelUsage, report, add=_added(ModelUsage, deltas), model=job.model)]


def _added(usage_model, deltas: Deltas) -> dict[str, int]:
    """What each counter of ``usage_model`` (its ``counters``) gains; moves of 0 left out."""
    moved = {counter: getattr(deltas, delta) for counter, delta in usage_model.counters.items()}
    return {counter: amount for counter, amount in moved.items() if amount}


def _log(job: Job, event: EventKind, report: Report, deltas: Deltas) -> prepared.Write:
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
        **deltas._asdict(),
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
    if kind == EventKind.REPO_FAILURE:
        counted = _count(RepoUsage, report, set_={"last_failure_at": now}, repo=repo)
    else:
        counted = _count(RepoUsage, report, add={OPENED[kind]: 1}, repo=repo)
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


# Limits


def set_paused(
    *, agent_ids: list[str], paused: bool, actor: Actor | None = None, reason: str = ""
) -> int:
    """Pause or resume agents; returns how many changed.

    Each allowance is saved on its own rather than bulk-updated, so that its history and the
    change log record who paused it, when and why.
    """
    changed = 0
    with transaction.atomic(), changelog.acting(actor or changelog.current()):
        allowances = AgentAllowance.objects.select_for_update().filter(agent_id__in=agent_ids)
        for allowance in allowances.exclude(paused=paused):
            allowance.paused = paused
            allowance._change_reason = reason  # read by the history
            allowance.save(update_fields=["paused", "updated_at"])
            changed += 1
    return changed


# Actions of people on the books


def end_cooldown(
    *, repo: str, actor: Actor | None = None, reason: str = "", now: datetime | None = None
) -> None:
    """End a repository's cooldown after a failure now, rather than when it would run out."""
    require_valid(repo=repo)
    now = now or timezone.now()
    with transaction.atomic():
        state = selectors.repo_state(repo, now=now)
        until = state.cooldown_until(now) if state else None
        if until is None:
            raise InvalidInput(f"{repo} is not cooling down", field="repo")
        # An update, not a save: the end of a cooldown is not a change of the limit.
        RepoLimit.objects.filter(repo=repo).update(cooldown_ended_at=now)
        entry = UsageEvent(
            event=EventKind.COOLDOWN_ENDED, repo=repo, received_at=now, period_start=day_start(now)
        )
        entry.save()
        left = display.minutes_left(until - now)
        changelog.record(
            change=Change.COOLDOWN_ENDED,
            subject_kind=Subject.REPO,
            subject=repo,
            summary=f"cooldown ended {left} early",
            actor=actor,
            reason=reason,
            at=now,
        )


def cancel_job(
    *,
    agent_id: str,
    job_id: str,
    actor: Actor | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> UsageResult:
    """Cancel a running job as its dispatcher would (a ``job_cancelled`` report: it frees its
    slot and is charged nothing), on behalf of a person; the change log says who."""
    with transaction.atomic():
        job = Job.objects.filter(agent_id=agent_id, job_id=job_id).first()
        if job is None or job.state != JobState.RUNNING:
            state = "not known" if job is None else job.state
            raise InvalidInput(f"job {job_id} of {agent_id} is not running ({state})")
        outcome = record_usage(
            agent_id=agent_id, job_id=job_id, event=EventKind.JOB_CANCELLED, now=now
        )
        changelog.record(
            change=Change.JOB_CANCELLED,
            subject_kind=Subject.JOB,
            subject=f"{agent_id}/{job_id}",
            summary="cancelled: its slot is free, nothing charged",
            actor=actor,
            reason=reason,
            at=now,
        )
    return outcome


# Helpers


def _usable_agent_state(agent: AgentState | None, agent_id: str, now: datetime) -> AgentState:
    """The agent's state as read for a check (no locks), made usable: its allowance created
    from the ``*`` default on first use, overdue jobs expired so that they hold no slot."""
    if agent is None:
        lock_copy_of_default_allowance(agent_id, DEFAULT_AGENT_ID, now=now)
        agent = selectors.agent_state(agent_id, now=now)
        if agent is None:
            raise AllowanceNotFound(f"allowance not found for agent: {agent_id}")
    if agent.has_overdue_job(now):
        since = rules.running_since(agent.allowance.max_job_duration, now)
        expire_jobs(agent_id=agent_id, running_since=since, now=now)
        agent = selectors.agent_state(agent_id, now=now)
    return agent


def _lock(agent_id: str, model: str, now: datetime) -> timedelta:
    """Lock the agent's allowance row, then the model's quota row if there is a model, until
    the transaction ends (in one statement, always in this order); create the allowance from
    the ``*`` default on first use; return the agent's maximum job duration."""
    duration, _ = prepared.first_value_each(
        selectors.allowance_lock_read(agent_id),
        selectors.model_quota_lock_read(model) if model else None,
    )
    if duration is not None:
        return duration
    if not lock_copy_of_default_allowance(agent_id, DEFAULT_AGENT_ID, now=now):
        raise AllowanceNotFound(f"allowance not found for agent: {agent_id}")
    return timedelta(0)  # just created, or by a racing first request: no job can be overdue


def _first_decision(job: Job, agent: AgentState, model: rules.ModelState | None):
    """What the first dispatch of this job answered; for a job first seen through a usage
    report (never dispatched here) an admission reflecting the agent and model now."""
    if job.decision:
        return QuotaCheckResult.from_dict(job.decision)
    return rules.admission(agent, model)


def _count_refusal(result: QuotaCheckResult, now: datetime, **subject: str) -> None:
    """Tally a refusal (of agent_id=, on model= and repo=) for budget managers to look into;
    the books themselves do not change."""
    if not result.allowed:
        counted = _count(
            RefusalCount,
            Report(now),
            add={"refusals": 1},
            set_={"last_refused_at": now},
            reason_code=result.reason_code,
            **subject,
        )
        prepared.write(counted)


def _count(
    usage_model, report: Report, *, add=None, set_=None, **subject: str
) -> prepared.Write | None:
    """Change the usage row of ``subject`` (agent_id=, model= or repo=) for the report's day;
    None if there is nothing to change."""
    if not add and not set_:
        return None
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
