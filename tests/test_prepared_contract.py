"""quotas.prepared keeps its contract: every hot-path read answers what the plain ORM answers,
a builder that breaks the contract is refused, and so is a batch that writes one row twice.

The reads are run over generated books (hypothesis): agents with and without allowances,
usage today and yesterday, jobs in every state started around the maximum duration's cut,
models with and without an hourly limit and their per-minute counts, repositories cooling
down or not, API keys revoked or not.
"""

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from quotas import prepared, selectors
from quotas.api import auth
from quotas.models import (
    AgentAllowance,
    AgentUsage,
    APIKey,
    Job,
    ModelMinuteUsage,
    ModelQuota,
    ModelUsage,
    RepoLimit,
    RepoUsage,
)
from quotas.periods import day_start, minute_start
from quotas.upserts import add_to_usage
from quotas.vocabulary import JobState
from tests.conftest import in_savepoint

EXAMPLES = hypothesis_settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
AGENTS = ["a", "b", "c"]
MODELS = ["m1", "m2", "m3"]
REPOS = ["o/one", "o/two"]
JOBS = ["j0", "j1", "j2", "j3"]
HOUR = timedelta(hours=1)


def seconds_around(now):
    return st.integers(-2 * 3600, 60).map(lambda s: now + timedelta(seconds=s, microseconds=s))


@st.composite
def books(draw, now):
    """A small world of limits and usage around ``now``, stored by ``store``."""
    world = {"allowances": [], "usage": [], "jobs": [], "quotas": [], "model_usage": []}
    world.update(minutes=[], repos=[], repo_usage=[], keys=[])
    for agent in draw(st.lists(st.sampled_from(AGENTS), unique=True)):
        duration = draw(st.sampled_from([timedelta(0), HOUR]))
        world["allowances"].append(
            AgentAllowance(
                agent_id=agent,
                daily_token_limit=draw(st.integers(0, 10**6)),
                max_job_duration=duration,
                paused=draw(st.booleans()),
                model_allowlist=draw(st.lists(st.sampled_from(MODELS), unique=True)),
            )
        )
    for agent in AGENTS:
        for days in draw(st.lists(st.sampled_from([0, 1]), unique=True)):
            world["usage"].append(
                AgentUsage(
                    agent_id=agent,
                    period_start=day_start(now - timedelta(days=days)),
                    tokens_used=draw(st.integers(0, 10**9)),
                    jobs_started=draw(st.integers(0, 1000)),
                )
            )
        for job_id in draw(st.lists(st.sampled_from(JOBS), unique=True)):
            state = draw(st.sampled_from(JobState.values))
            started = draw(st.one_of(st.none(), seconds_around(now)))
            world["jobs"].append(
                Job(
                    agent_id=agent,
                    job_id=job_id,
                    model=draw(st.sampled_from(["", *MODELS])),
                    state=state,
                    started_at=started,
                    tokens_charged=draw(st.integers(0, 10**6)),
                )
            )
    for model in draw(st.lists(st.sampled_from(MODELS), unique=True)):
        world["quotas"].append(
            ModelQuota(
                model=model,
                hourly_rate_limit=draw(st.sampled_from([0, 5])),
                input_price_per_mtok=draw(st.sampled_from([0, 3, "0.0375"])),
            )
        )
    for model in draw(st.lists(st.sampled_from(MODELS), unique=True)):
        world["model_usage"].append(
            ModelUsage(
                model=model, period_start=day_start(now), tokens_used=draw(st.integers(0, 99))
            )
        )
        for back in draw(st.lists(st.integers(0, 70), unique=True, max_size=5)):
            world["minutes"].append(
                ModelMinuteUsage(
                    model=model,
                    minute_start=minute_start(now - timedelta(minutes=back)),
                    requests=draw(st.integers(1, 9)),
                )
            )
    for repo in draw(st.lists(st.sampled_from(REPOS), unique=True)):
        cooldown = draw(st.sampled_from([timedelta(0), timedelta(minutes=30)]))
        world["repos"].append(RepoLimit(repo=repo, cooldown_after_failure=cooldown))
    for repo in draw(st.lists(st.sampled_from(REPOS), unique=True)):
        failed = draw(st.one_of(st.none(), seconds_around(now)))
        world["repo_usage"].append(
            RepoUsage(repo=repo, period_start=day_start(now), prs_opened=2, last_failure_at=failed)
        )
    world["keys"] = draw(st.lists(st.booleans(), max_size=3))  # revoked or not
    return world


def store(world) -> list[str]:
    """Save a world; the API keys' prefixes (hashing real keys would only make it slow: the
    read looks keys up by prefix, and never checks a hash)."""
    for name, model in [
        ("allowances", AgentAllowance),
        ("usage", AgentUsage),
        ("jobs", Job),
        ("quotas", ModelQuota),
        ("model_usage", ModelUsage),
        ("minutes", ModelMinuteUsage),
        ("repos", RepoLimit),
        ("repo_usage", RepoUsage),
    ]:
        model.objects.bulk_create(world[name])
    keys = [
        APIKey(id=f"p{i}.h", prefix=f"p{i}", hashed_key="h", name=f"k{i}", revoked=revoked)
        for i, revoked in enumerate(world["keys"])
    ]
    APIKey.objects.bulk_create(keys)
    return [key.prefix for key in keys]


def fields_of(instance) -> dict | None:
    """What a read handed over: every loaded field and annotation."""
    if instance is None:
        return None
    return {name: value for name, value in vars(instance).items() if not name.startswith("_")}


def plain(entry: prepared.Read):
    """The same read through the ORM, as if it had never been prepared."""
    return entry.build(**entry.values).order_by("pk").first()


def assert_same(entries: list[prepared.Read]) -> None:
    """Each read alone, and all of them in one statement, answer what the ORM answers."""
    expected = [fields_of(plain(entry)) for entry in entries]
    assert [fields_of(prepared.first(entry)) for entry in entries] == expected
    assert [fields_of(found) for found in prepared.first_each(*entries)] == expected


# Every read the engine registers, and how the test below runs it (arguments drawn from the
# world's pools). A read registered without a line here fails test_every_read_is_covered.
def state_reads(draw, now):
    at = now + timedelta(seconds=draw(st.integers(-90, 90)))
    since = draw(st.one_of(st.none(), seconds_around(now)))
    job_id = draw(st.sampled_from(["", *JOBS]))
    agent = draw(st.sampled_from([*AGENTS, "nobody"]))
    return [
        selectors.agent_read(agent, now=at, job_id=job_id, running_since=since),
        selectors._model_read(draw(st.sampled_from([*MODELS, "m-none"])), at),
        selectors._repo_read(draw(st.sampled_from([*REPOS, "o/none"])), at),
    ]


def row_reads(draw, now):
    agent = draw(st.sampled_from([*AGENTS, "nobody"]))
    return [
        selectors.job_read(agent_id=agent, job_id=draw(st.sampled_from(JOBS))),
        selectors.model_prices_read(draw(st.sampled_from([*MODELS, "m-none"]))),
    ]


COVERED = {
    "agent_state",
    "model_state",
    "repo_state",
    "job",
    "model_prices",
    "lock_allowance",
    "lock_model_quota",
    "api_key",
}


def test_every_read_is_covered():
    engine = {
        name for name, build in prepared.READS.items() if build.__module__.startswith("quotas.")
    }
    assert engine == COVERED


def state_reads_agree(draw, now, prefixes) -> None:
    assert_same(state_reads(draw, now))


def report_reads_agree(draw, now, prefixes) -> None:
    assert_same(row_reads(draw, now))


def lock_reads_agree(draw, now, prefixes) -> None:
    entries = [
        selectors.allowance_lock_read(draw(st.sampled_from([*AGENTS, "x"]))),
        selectors.model_quota_lock_read(draw(st.sampled_from([*MODELS, "x"]))),
    ]
    expected = [(plain(entry) or [None])[0] for entry in entries]
    assert prepared.first_value_each(*entries) == expected


def api_key_read_agrees(draw, now, prefixes) -> None:
    entry = prepared.read(auth._unrevoked_with_prefix, prefix=draw(st.sampled_from(prefixes)))
    assert fields_of(prepared.first(entry)) == fields_of(plain(entry))


@pytest.mark.parametrize(
    "agree", [state_reads_agree, report_reads_agree, lock_reads_agree, api_key_read_agrees]
)
def test_every_read_answers_what_the_orm_answers(db, now, agree):
    @EXAMPLES
    @given(world=books(now), data=st.data())
    def on_generated_books(world, data):
        def check():
            prefixes = [*store(world), "unknown"]
            for _ in range(4):
                agree(data.draw, now, prefixes)

        in_savepoint(check)

    on_generated_books()


# Builders that break the contract


@prepared.statement("tests.branches_on_a_value")
def branches_on_a_value(*, agent_id):
    if agent_id == "a":
        return AgentAllowance.objects.filter(agent_id=agent_id, paused=False)
    return AgentAllowance.objects.filter(agent_id=agent_id)


CALLS = []


@prepared.statement("tests.reads_more_than_its_arguments")
def reads_more_than_its_arguments(*, agent_id):
    CALLS.append(agent_id)  # stands for the clock, a setting or the database
    return AgentAllowance.objects.filter(agent_id=agent_id, daily_token_limit__gte=len(CALLS))


def test_a_builder_that_branches_on_a_value_is_refused_at_its_first_compile(db):
    with pytest.raises(prepared.ShapeError, match="branches_on_a_value builds another"):
        prepared.first(prepared.read(branches_on_a_value, agent_id="a"))
    # The same builder, compiled with a value that takes the other branch, passes the check
    # but would answer "a" wrongly later: the property tests above are the second guard.
    assert prepared.first(prepared.read(branches_on_a_value, agent_id="b")) is None


def test_a_builder_that_reads_anything_but_its_arguments_is_refused(db):
    with pytest.raises(prepared.ShapeError, match="reads_more_than_its_arguments"):
        prepared.first(prepared.read(reads_more_than_its_arguments, agent_id="a"))


@prepared.statement("tests.empty_means_all")
def empty_means_all(*, agent_id):
    queryset = AgentAllowance.objects.all()
    return queryset.filter(agent_id=agent_id) if agent_id else queryset


def test_a_value_that_changes_what_is_built_is_refused(db):
    with pytest.raises(prepared.ShapeError):
        prepared.first(prepared.read(empty_means_all, agent_id=""))


# Batches of writes


def usage_write(agent_id, now, tokens):
    key = {"agent_id": agent_id, "period_start": day_start(now)}
    return add_to_usage(AgentUsage, key, now=now, add={"tokens_used": tokens}, done=lambda _: None)


def test_a_batch_writing_one_usage_row_twice_is_refused_and_writes_nothing(db, now):
    with pytest.raises(prepared.SameRowTwice, match="quotas_agentusage"):
        prepared.write(usage_write("a", now, 1), usage_write("b", now, 2), usage_write("a", now, 3))
    assert AgentUsage.objects.count() == 0
    # Different days of one agent are different rows.
    prepared.write(usage_write("a", now, 1), usage_write("a", now - timedelta(days=1), 2))
    assert sorted(AgentUsage.objects.values_list("tokens_used", flat=True)) == [1, 2]


def test_a_batch_updating_one_job_twice_is_refused_and_writes_nothing(db, now):
    job = Job(agent_id="a", job_id="j", state=JobState.RUNNING, started_at=now)
    prepared.write(prepared.inserting(job))
    job.state = JobState.COMPLETED
    first = prepared.updating(job, ["state"])
    job.state = JobState.FAILED
    with pytest.raises(prepared.SameRowTwice):
        prepared.write(first, prepared.updating(job, ["state"]))
    assert Job.objects.get().state == JobState.RUNNING
