"""The rules that also run inside the database agree with their Python selves on every state.

Each test generates a few hundred states with hypothesis, edges included (exactly at a
limit, one under, at the warning threshold and one under it, limit 0 = unlimited, 64-bit
extremes), stores them, and compares what the SQL expression built in rules.py gives for
each row with what the Python rule gives for the same values. They run on SQLite and on
PostgreSQL, like the rest of the suite.
"""

import math
from datetime import timedelta
from fractions import Fraction

import pytest
from django.db.models import F
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from quotas import rules, selectors
from quotas.models import AgentAllowance, AgentUsage, Job, ModelQuota, ModelUsage
from quotas.periods import day_start
from quotas.validators import BIGINT_MAX, INT_MAX
from quotas.vocabulary import JobState, Standing
from tests.conftest import in_savepoint

# A dozen examples of up to 40 stored states each: a few hundred states per test and case.
EXAMPLES = hypothesis_settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SAMPLING = hypothesis_settings(max_examples=200, deadline=None, database=None)
RATIOS = [0.8, 0.85, 1.0, 0.001]


def near_edges(limit: int, ratio: float) -> list[int]:
    """Usage at the warning threshold of ``limit``, one under and one over it."""
    exact = Fraction(str(ratio))
    threshold = -(-limit * exact.numerator // exact.denominator)
    return [max(0, threshold - 1), threshold, threshold + 1]


def used_of(limit_strategy, maximum: int, ratio: float):
    """(used, limit) pairs: random, and the edges of the limit and of its warning threshold."""

    def edges(limit):
        around = [limit - 1, limit, limit + 1, *near_edges(limit, ratio), 0, maximum]
        return st.sampled_from([u for u in around if 0 <= u <= maximum])

    return limit_strategy.flatmap(
        lambda limit: st.tuples(st.one_of(edges(limit), st.integers(0, maximum)), st.just(limit))
    )


def limits(maximum: int):
    return st.one_of(
        st.just(0),
        st.integers(1, 1000),
        st.integers(1, maximum),
        st.sampled_from([1, 4, 5, maximum - 1, maximum]),
    )


EDGE_LIMITS = [0, 1, 4, 5, 17, 20, 1000, INT_MAX - 1, INT_MAX, BIGINT_MAX - 1, BIGINT_MAX]


def edge_pairs(maximum: int, ratio: float) -> list[tuple[int, int]]:
    """Every limit of EDGE_LIMITS that fits, with usage at it, one under, one over, and at,
    under and over its warning threshold."""
    pairs = []
    for limit in (limit for limit in EDGE_LIMITS if limit <= maximum):
        around = {0, limit - 1, limit, limit + 1, *near_edges(limit, ratio)}
        pairs += [(used, limit) for used in sorted(around) if 0 <= used <= maximum]
    return pairs


def agent_rows(ratio: float):
    """The edges of both limits (each with the other unused), a paused agent, and random
    agents: a few hundred states over a test's examples."""
    tokens = used_of(limits(BIGINT_MAX), BIGINT_MAX, ratio)
    jobs = used_of(limits(INT_MAX), INT_MAX, ratio)
    edges = [(False, pair, (0, 0)) for pair in edge_pairs(BIGINT_MAX, ratio)]
    edges += [(False, (0, 0), pair) for pair in edge_pairs(INT_MAX, ratio)]
    edges.append((True, (0, 0), (0, 0)))
    randoms = st.lists(st.tuples(st.booleans(), tokens, jobs), min_size=10, max_size=40)
    return randoms.map(lambda rows: edges + rows)


def stored_agents(rows, now) -> dict[str, dict]:
    """Allowances with today's usage, one per generated row; the values of each, by agent."""
    values = {}
    for index, (paused, (tokens, token_limit), (jobs, job_limit)) in enumerate(rows):
        agent_id = f"agent-{index}"
        values[agent_id] = {
            "paused": paused,
            "tokens": tokens,
            "token_limit": token_limit,
            "jobs": jobs,
            "job_limit": job_limit,
        }
    AgentAllowance.objects.bulk_create(
        AgentAllowance(
            agent_id=agent_id,
            paused=v["paused"],
            daily_token_limit=v["token_limit"],
            daily_job_limit=v["job_limit"],
        )
        for agent_id, v in values.items()
    )
    AgentUsage.objects.bulk_create(
        AgentUsage(
            agent_id=agent_id,
            period_start=day_start(now),
            tokens_used=v["tokens"],
            jobs_started=v["jobs"],
        )
        for agent_id, v in values.items()
    )
    return values


@pytest.mark.parametrize("ratio", RATIOS)
def test_an_agents_standing_is_the_same_in_sql_and_in_python(db, settings, now, ratio):
    settings.QUOTAS_WARNING_RATIO = ratio

    @EXAMPLES
    @given(rows=agent_rows(ratio))
    def agree(rows):
        def check():
            values = stored_agents(rows, now)
            standing = rules.agent_standing_sql(
                paused=F("paused"),
                tokens=F("tokens_today"),
                token_limit=F("daily_token_limit"),
                jobs=F("jobs_today"),
                job_limit=F("daily_job_limit"),
            )
            in_sql = dict(
                selectors.allowances_with_usage(now)
                .annotate(standing=standing)
                .values_list("agent_id", "standing")
            )
            in_python = {agent_id: rules.agent_standing(**v) for agent_id, v in values.items()}
            assert in_sql == in_python
            # The admin's filter is the same expression: the four standings split the agents.
            filtered = {
                wanted: set(
                    selectors.filter_by_standing(
                        selectors.allowances_with_usage(now), wanted
                    ).values_list("agent_id", flat=True)
                )
                for wanted in Standing.values
            }
            assert filtered == {
                wanted: {a for a, s in in_python.items() if s == wanted}
                for wanted in Standing.values
            }

        in_savepoint(check)

    agree()


def test_the_generated_states_reach_every_standing_and_edge(settings):
    """The strategies above are only as good as the states they make: over a sample, every
    standing is reached, and usage sits exactly at a limit and one under it."""
    settings.QUOTAS_WARNING_RATIO = 0.8
    seen, edges = set(), set()

    @SAMPLING
    @given(rows=agent_rows(0.8))
    def sample(rows):
        for paused, (tokens, token_limit), (jobs, job_limit) in rows:
            seen.add(
                rules.agent_standing(
                    paused=paused,
                    tokens=tokens,
                    token_limit=token_limit,
                    jobs=jobs,
                    job_limit=job_limit,
                )
            )
            if token_limit:
                edges.add(tokens - token_limit)
            if token_limit == 0:
                edges.add("unlimited")

    sample()
    assert seen == set(Standing.values)
    assert {-1, 0, "unlimited"} <= edges


def job_states(now):
    instants = st.sampled_from([-3601, -3600, -1, 0, 1, 3600]).map(
        lambda seconds: now + timedelta(seconds=seconds)
    )
    micro = st.integers(-(10**10), 10**10).map(lambda us: now + timedelta(microseconds=us))
    started = st.one_of(st.none(), instants, micro)
    return st.lists(st.tuples(st.sampled_from(JobState.values), started), max_size=40)


@pytest.mark.parametrize("max_job_duration", [timedelta(0), timedelta(hours=1)])
def test_running_and_overdue_jobs_are_the_same_in_sql_and_in_python(db, now, max_job_duration):
    @EXAMPLES
    @given(jobs=job_states(now), shift=st.integers(-5, 5))
    def agree(jobs, shift):
        at = now + timedelta(microseconds=shift)
        since = rules.running_since(max_job_duration, at)

        # Every state with no start, and a start one microsecond before the cut, at it and after.
        cut = since or at
        starts = [None, *(cut + timedelta(microseconds=us) for us in (-1, 0, 1))]
        edges = [(state, started) for state in JobState.values for started in starts]

        def check():
            stored = Job.objects.bulk_create(
                Job(agent_id="a", job_id=f"j{i}", state=state, started_at=started)
                for i, (state, started) in enumerate(edges + jobs)
            )
            by_id = {job.job_id: (job.state, job.started_at) for job in stored}
            running = set(
                Job.objects.filter(rules.running_sql(since)).values_list("job_id", flat=True)
            )
            assert running == {j for j, v in by_id.items() if rules.is_running(*v, since)}
            expected = {j for j, v in by_id.items() if rules.is_overdue(*v, since)}
            if since is None:
                assert expected == set()  # without a maximum duration nothing is overdue
            else:
                overdue = Job.objects.filter(rules.overdue_sql(since))
                assert set(overdue.values_list("job_id", flat=True)) == expected

        in_savepoint(check)

    agree()


def share_pairs(maximum: int):
    return used_of(limits(maximum), maximum, 0.8)


@pytest.mark.parametrize("scale", [1, 1_000_000])
def test_the_share_of_a_limit_used_is_the_same_in_sql_and_in_python(db, now, scale):
    """The dashboard sorts by it: a model's cost ceiling is in cents, its spend in microcents."""

    @EXAMPLES
    @given(pairs=st.lists(share_pairs(BIGINT_MAX), min_size=1, max_size=40))
    def agree(pairs):
        def check():
            ModelQuota.objects.bulk_create(
                ModelQuota(model=f"m{i}", cost_ceiling=limit) for i, (_, limit) in enumerate(pairs)
            )
            ModelUsage.objects.bulk_create(
                ModelUsage(model=f"m{i}", period_start=day_start(now), cost_microcents=used)
                for i, (used, _) in enumerate(pairs)
            )
            share = rules.share_used_sql(F("cost_today"), F("cost_ceiling"), scale=scale)
            in_sql = dict(
                selectors.model_quotas_with_usage(now)
                .annotate(share=share)
                .values_list("model", "share")
            )
            for i, (used, limit) in enumerate(pairs):
                expected = rules.share_used(used, limit * scale)
                assert math.isclose(in_sql[f"m{i}"], expected, rel_tol=1e-12), (used, limit)

        in_savepoint(check)

    agree()
